//! The real services as child processes on loopback, fsync on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Service {
    child: Child,
    pub(crate) url: String,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Service {
    pub(crate) fn spawn(bin: &Path, args: &[String], log: &Path, port: u16) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("service log");
        let child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `/readyz` until 200; returns when it first answered so.
    pub(crate) fn wait_ready(&self) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(600);
        let addr = self.url.trim_start_matches("http://").to_owned();
        loop {
            if probe_ready(&addr) {
                return Instant::now();
            }
            assert!(Instant::now() < deadline, "{} never became ready", self.url);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `VmRSS` and `VmHWM` of the process, in MiB.
    pub(crate) fn memory_mib(&self) -> (f64, f64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
                .map_or(0.0, |kib| kib / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A blocking `GET /readyz` over a plain socket (no runtime needed).
fn probe_ready(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(
        format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && &buf[9..12] == b"200"
}

pub(crate) fn storaged(bin: &Path, dir: &Path) -> Service {
    let port = free_port();
    let args = vec![
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--data-dir".into(),
        dir.join("storaged").display().to_string(),
    ];
    Service::spawn(bin, &args, &dir.join("storaged.log"), port)
}

pub(crate) fn catalogd(bin: &Path, dir: &Path, storaged_url: &str, port: u16) -> Service {
    let args = vec![
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--storaged-url".into(),
        storaged_url.to_owned(),
    ];
    Service::spawn(bin, &args, &dir.join("catalogd.log"), port)
}

/// The service binaries: next to this one (built by `make bench`), or given.
pub(crate) fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}
