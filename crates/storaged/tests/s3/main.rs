//! storaged's S3 face against the clients people use (boto3, the aws CLI, ...), each
//! driving the real storaged binary; the scripts live in `clients/` and assert as they go.

mod boto3;
mod hostile;
mod object_store;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testkit::{free_port, Launch, Proc};

const READY: Duration = Duration::from_secs(60);

/// The real storaged with its S3 face on, in a scratch directory.
struct S3Stack {
    storaged: Proc,
    s3_port: u16,
    dir: tempfile::TempDir,
}

impl S3Stack {
    /// Open mode: no credentials, any key pair is accepted.
    fn open() -> Self {
        Self::start(None)
    }

    /// With `credentials` (TOML) as its credentials file.
    fn with_credentials(credentials: &str) -> Self {
        Self::start(Some(credentials))
    }

    fn start(credentials: Option<&str>) -> Self {
        Self::start_with(credentials, &[])
    }

    /// With `credentials` and the environment variables `env`.
    fn start_with(credentials: Option<&str>, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let s3_port = free_port();
        let mut launch = Launch::storaged(&dir.path().join("data"), free_port())
            .s3(s3_port)
            .envs(env.iter().copied());
        if let Some(text) = credentials {
            let file = dir.path().join("credentials.toml");
            std::fs::write(&file, text).unwrap();
            launch = launch.arg("--credentials-file").arg(file);
        }
        let storaged = launch.spawn();
        storaged.wait_ready_blocking(READY);
        Self {
            storaged,
            s3_port,
            dir,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    fn native(&self) -> String {
        self.storaged.url()
    }

    /// Creates `bucket` with an unsigned S3 request (the open mode takes it).
    fn create_bucket(&self, bucket: &str) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).unwrap();
        let request = format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    /// The native `/metrics` text.
    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.storaged.port)).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }

    /// The value of the metric line that starts with `series`.
    fn metric(&self, series: &str) -> Option<f64> {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/s3/clients")
        .join(name)
}

/// Runs the client script `name` with `args` on the venv's Python; its last stdout line,
/// which must be JSON.
fn run_python(name: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(testkit::venv_python())
        .arg(script(name))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{name}: {e}: {last:?}"))
}
