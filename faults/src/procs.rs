//! The service binaries as child processes: each in a process group of its own (so a
//! wrapper such as strace dies with its tracee), logging to a file, killed on drop.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::client::Api;

/// The directory holding this build's binaries (`target/debug` or `target/release`), with
/// `storaged` and `catalogd` built into it (a test cannot use another package's
/// `CARGO_BIN_EXE_*`).
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        // target/<profile>/deps/<test>-<hash>
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binaries live in target/<profile>/deps")
            .to_path_buf();
        let mut cargo = Command::new(option_env!("CARGO").unwrap_or("cargo"));
        cargo.args([
            "build", "--quiet", "-p", "storaged", "-p", "catalogd", "--bins",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("running cargo build");
        assert!(status.success(), "building the services failed");
        dir
    })
    .clone()
}

pub fn storaged_bin() -> PathBuf {
    bin_dir().join("storaged")
}

pub fn catalogd_bin() -> PathBuf {
    bin_dir().join("catalogd")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A number no earlier call returned (keeps log files of restarted processes apart).
pub fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A running child process (and its process group), killed on drop.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `command` in a new process group, output appended to `log`.
    pub fn spawn(mut command: Command, port: u16, log: PathBuf) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Self { child, port, log }
    }

    pub fn api(&self) -> Api {
        Api::new(self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `sig` (e.g. `-KILL`, `-STOP`) to the process itself.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// SIGKILL to the whole group, then reaps the child.
    pub fn kill(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        self.child.wait().unwrap()
    }

    /// The exit status, if the process has exited within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `/readyz` answers 200, or panics with the log.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.api().get("/readyz").await {
                if r.code() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "not ready in 60 s; log:\n{}",
                self.log_text()
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The number of open file descriptors of the process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, Iterator::count)
    }
}

/// How to start storaged: the command (possibly wrapped) and its data directory.
pub fn storaged_command(data_dir: &Path, port: u16) -> Command {
    let mut c = Command::new(storaged_bin());
    storaged_args(&mut c, data_dir, port);
    c
}

/// Adds storaged's flags and environment to `c` (which may be a wrapper such as strace).
pub fn storaged_args(c: &mut Command, data_dir: &Path, port: u16) {
    c.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "info");
}

/// Starts storaged on `port` with its data in `data_dir`, logging into `logs`.
pub fn storaged(data_dir: &Path, port: u16, logs: &Path) -> Proc {
    Proc::spawn(
        storaged_command(data_dir, port),
        port,
        logs.join(format!("storaged-{port}-{}.log", unique())),
    )
}

/// Starts catalogd on `port` against the storaged at `storaged_port`; `env` adds
/// `CATALOGD_*` settings (e.g. the storaged timeout).
pub fn catalogd(storaged_port: u16, port: u16, env: &[(&str, &str)], logs: &Path) -> Proc {
    let mut c = Command::new(catalogd_bin());
    c.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--storaged-url")
        .arg(format!("http://127.0.0.1:{storaged_port}"))
        .env("RUST_LOG", "info")
        .envs(env.iter().copied());
    Proc::spawn(
        c,
        port,
        logs.join(format!("catalogd-{port}-{}.log", unique())),
    )
}

/// storaged (data in `data_dir`) and a catalogd on it, both ready, logging into `logs`.
pub async fn storaged_and_catalogd(data_dir: &Path, logs: &Path) -> (Proc, Proc) {
    let storaged = storaged(data_dir, free_port(), logs);
    storaged.wait_ready().await;
    let catalogd = catalogd(storaged.port, free_port(), &[], logs);
    catalogd.wait_ready().await;
    (storaged, catalogd)
}
