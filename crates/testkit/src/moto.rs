//! moto's S3 server (pinned in the project venv) as a real S3 store for the tests of
//! storaged's S3 backend: started on a free port, killed with its process group on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::{free_port, venv_python, Launch, Proc};

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    proc: Proc,
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub fn start() -> Self {
        let port = free_port();
        let launch = Launch::new("moto", venv_python(), port)
            .arg("-m")
            .arg("moto.server")
            .arg("-H")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(port.to_string());
        let proc = launch.spawn();
        let deadline = Instant::now() + Duration::from_secs(60);
        while request(port, "GET", "/").is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not answer within 60 s; log:\n{}",
                proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { proc }
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.proc.port
    }

    /// The server's URL, e.g. `http://127.0.0.1:34547`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.proc.port)
    }

    /// Creates `bucket` (names of 3 to 63 lowercase letters, digits and dashes).
    pub fn create_bucket(&self, bucket: &str) {
        let answer = request(self.proc.port, "PUT", &format!("/{bucket}"))
            .unwrap_or_else(|e| panic!("creating bucket {bucket}: {e}"));
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "creating bucket {bucket}: {answer}"
        );
    }

    /// The ListObjectsV2 answer (XML) for `bucket` (up to 1,000 keys under `prefix`).
    pub fn list_xml(&self, bucket: &str, prefix: &str) -> String {
        request(
            self.proc.port,
            "GET",
            &format!("/{bucket}?list-type=2&prefix={prefix}"),
        )
        .unwrap_or_else(|e| panic!("listing bucket {bucket}: {e}"))
    }

    /// storaged's environment for the `s3` backend on `bucket` of this server.
    pub fn storaged_env(&self, bucket: &str) -> Vec<(String, String)> {
        [
            ("STORAGED_BACKEND", "s3".to_owned()),
            ("STORAGED_S3_ENDPOINT", self.endpoint()),
            ("STORAGED_S3_BUCKET", bucket.to_owned()),
            ("STORAGED_S3_ALLOW_HTTP", "true".to_owned()),
            ("STORAGED_S3_ACCESS_KEY_ID", "testing".to_owned()),
            ("STORAGED_S3_SECRET_ACCESS_KEY", "testing".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The server process (to stop or restart it).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// One HTTP/1.0 request without a body (so the server closes the connection after its
/// answer); the answer's head and body as text.
fn request(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}
