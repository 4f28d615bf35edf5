//! The services as child processes.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::client::Api;

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A number no earlier call in this process returned (keeps log files apart).
pub fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// How to start one process: program, flags, environment, an optional wrapper (such as
/// `strace -f ...`), the port it serves and the directory its log goes to. Kept by the
/// [`Proc`] it starts, so the same process can be started again.
#[derive(Debug, Clone)]
pub struct Launch {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    wrapper: Vec<OsString>,
    port: u16,
    log_dir: PathBuf,
    /// The CA to trust when the process serves HTTPS.
    tls_ca: Option<PathBuf>,
}

impl Launch {
    /// `program` serving `port`, logging into the system's temp directory.
    pub fn new(name: &str, program: impl Into<PathBuf>, port: u16) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args: Vec::new(),
            envs: vec![("RUST_LOG".into(), "info".into())],
            wrapper: Vec::new(),
            port,
            log_dir: std::env::temp_dir(),
            tls_ca: None,
        }
    }

    /// The process serves HTTPS with a certificate signed by the CA of the PEM `ca_file`:
    /// its [`Proc::url`] is `https://` and [`Proc::api`] trusts that CA.
    #[must_use]
    pub fn https(mut self, ca_file: &Path) -> Self {
        self.tls_ca = Some(ca_file.to_path_buf());
        self
    }

    /// storaged on `127.0.0.1:port` with its data in `data_dir`, its S3 face off (many
    /// run at once; [`Self::s3`] turns it on).
    pub fn storaged(data_dir: &Path, port: u16) -> Self {
        Self::new("storaged", crate::storaged_bin(), port)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .env("STORAGED_S3_LISTEN", "")
            // The smallest write-log segment: tests start many storaged, each making one.
            .env("STORAGED_LOG_SEGMENT_SIZE", "8 MiB")
    }

    /// storaged's S3 face on `127.0.0.1:port`.
    #[must_use]
    pub fn s3(self, port: u16) -> Self {
        self.arg("--s3-listen").arg(format!("127.0.0.1:{port}"))
    }

    /// catalogd on `127.0.0.1:port` against the storaged at `storaged_url`.
    pub fn catalogd(storaged_url: &str, port: u16) -> Self {
        Self::new("catalogd", crate::catalogd_bin(), port)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--storaged-url")
            .arg(storaged_url)
    }

    /// Runs `program` instead (another build of the same service).
    #[must_use]
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// Adds a flag or argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable.
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Sets environment variables.
    #[must_use]
    pub fn envs<K: Into<OsString>, V: Into<OsString>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.envs
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Runs the program under `wrapper` (its argv up to the program, e.g.
    /// `["strace", "-f", "-o", "trace.txt"]`); the process group holds both.
    #[must_use]
    pub fn under<S: Into<OsString>>(mut self, wrapper: impl IntoIterator<Item = S>) -> Self {
        self.wrapper = wrapper.into_iter().map(Into::into).collect();
        self
    }

    /// Puts the log files into `dir`.
    #[must_use]
    pub fn log_dir(mut self, dir: &Path) -> Self {
        self.log_dir = dir.to_path_buf();
        self
    }

    /// The port the process serves.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The command this launch runs (without output redirection).
    pub fn command(&self) -> Command {
        let mut command = match self.wrapper.split_first() {
            Some((wrapper, flags)) => {
                let mut c = Command::new(wrapper);
                c.args(flags).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        command
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Starts the process; its output goes to a new log file in the log directory.
    pub fn spawn(&self) -> Proc {
        let log = self
            .log_dir
            .join(format!("{}-{}-{}.log", self.name, self.port, unique()));
        let mut proc = Proc::spawn(self.command(), self.port, log);
        proc.launch = Some(self.clone());
        proc.tls_ca.clone_from(&self.tls_ca);
        proc
    }
}

/// A running child process in a process group of its own (so a wrapper such as strace
/// dies with its tracee), logging to a file. Dropping it kills the group; when the
/// current thread is panicking (a failed test), the end of the log is printed first.
#[derive(Debug)]
pub struct Proc {
    /// The child (the wrapper, when there is one).
    pub child: Child,
    /// The port it serves (0 for a process that serves none).
    pub port: u16,
    /// Its log file.
    pub log: PathBuf,
    launch: Option<Launch>,
    tls_ca: Option<PathBuf>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log_tail();
        }
        self.kill_group();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `command` in a new process group, stdout and stderr appended to `log`.
    pub fn spawn(mut command: Command, port: u16, log: PathBuf) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("cannot open the log {}: {e}", log.display()));
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("a second log handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Self {
            child,
            port,
            log,
            launch: None,
            tls_ca: None,
        }
    }

    /// A client for the port the process serves (over HTTPS, trusting its CA, when it
    /// was launched with [`Launch::https`]).
    pub fn api(&self) -> Api {
        match &self.tls_ca {
            Some(ca) => Api::at_with_ca(&self.url(), ca),
            None => Api::new(self.port),
        }
    }

    /// `http://127.0.0.1:<port>`, or `https://127.0.0.1:<port>` for an HTTPS process.
    pub fn url(&self) -> String {
        match &self.tls_ca {
            Some(_) => format!("https://127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn print_log_tail(&self) {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(80)..];
        eprintln!(
            "---- last {} lines of {} (pid {}) ----\n{}\n----",
            tail.len(),
            self.log.display(),
            self.pid(),
            tail.join("\n")
        );
    }

    /// Sends `sig` (`-TERM`, `-KILL`, `-STOP`, `-CONT`...) to the process itself.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {} failed", self.pid());
    }

    fn kill_group(&self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pid())])
            .stderr(Stdio::null())
            .status();
    }

    /// SIGKILL to the whole process group, then reaps the child.
    pub fn kill(&mut self) -> ExitStatus {
        self.kill_group();
        self.child.wait().expect("reaping a killed child")
    }

    /// The exit status, if the process has exited within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling a child") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then waits up to `within` for the exit; kills the group if it did not
    /// stop. Returns the exit status of a graceful stop.
    pub fn stop(&mut self, within: Duration) -> Option<ExitStatus> {
        self.signal("-TERM");
        let status = self.wait_exit(within);
        if status.is_none() {
            self.kill();
        }
        status
    }

    /// Kills the process group (SIGKILL) and starts the same launch again (same port,
    /// flags and environment; a new log file).
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Stops the process with SIGTERM (see [`Self::stop`]) and starts the same launch
    /// again; returns the exit status of the graceful stop.
    pub fn restart_gracefully(&mut self, within: Duration) -> Option<ExitStatus> {
        let status = self.stop(within);
        self.start_again();
        status
    }

    fn start_again(&mut self) {
        let launch = self
            .launch
            .clone()
            .expect("only a process started from a Launch can be restarted");
        let old = std::mem::replace(self, launch.spawn());
        drop(old);
    }

    /// Waits until `/readyz` answers 200, or panics with the log (60 s).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let api = self.api();
        loop {
            if let Ok(r) = api.get("/readyz").await {
                if r.code() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready in 60 s; log:\n{}",
                self.url(),
                self.log_text()
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process exits by itself within `within` (killed by an injected fault,
    /// say); if it does not, it is killed now.
    pub fn exited_or_killed(&mut self, within: Duration) -> bool {
        let exited = self.wait_exit(within).is_some();
        if !exited {
            self.kill();
        }
        exited
    }

    /// Waits until `/readyz` answers 200 (true) or the process exits first (false), for
    /// processes that may be killed during start-up on purpose.
    pub async fn ready_or_exited(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if self
                .api()
                .get("/readyz")
                .await
                .is_ok_and(|r| r.code() == 200)
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "never ready:\n{}",
                self.log_text()
            );
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// [`Self::wait_ready`] without an async runtime (a plain socket, polled every 5 ms);
    /// returns when `/readyz` first answered 200.
    pub fn wait_ready_blocking(&self, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            if probe_ready(self.port) {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready in {within:?}; log:\n{}",
                self.url(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The number of open file descriptors of the process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, Iterator::count)
    }

    /// `VmRSS` and `VmHWM` of the process, in MiB.
    pub fn memory_mib(&self) -> (f64, f64) {
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
}

/// A blocking `GET /readyz` over a plain socket.
fn probe_ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let addr = format!("127.0.0.1:{port}");
    let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && &buf[9..12] == b"200"
}

/// storaged (data in `data_dir`) and a catalogd on it, both ready, logging into `logs`.
pub async fn storaged_and_catalogd(data_dir: &Path, logs: &Path) -> (Proc, Proc) {
    let storaged = Launch::storaged(data_dir, free_port())
        .log_dir(logs)
        .spawn();
    storaged.wait_ready().await;
    let catalogd = Launch::catalogd(&storaged.url(), free_port())
        .log_dir(logs)
        .spawn();
    catalogd.wait_ready().await;
    (storaged, catalogd)
}
