//! Stopping never depends on the log sink: with the reader of their stdout and stderr gone
//! (a closed terminal, a crashed log shipper), both services still stop on SIGTERM and
//! exit 0 within the drain time.

use std::process::Command;
use std::time::Duration;

use testkit::{free_port, Launch, Proc};

/// A FIFO at `path` with a reader draining it (the reader must exist before a writer can
/// open the FIFO).
fn fifo_with_reader(path: &std::path::Path) -> Proc {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let mut reader = Command::new("cat");
    reader.arg(path);
    Proc::spawn(reader, 0, path.with_extension("reader.log"))
}

/// Starts `launch` logging into a FIFO, kills the FIFO's reader once the service is ready,
/// then sends SIGTERM: the service must exit 0 within 15 s.
async fn stops_with_its_log_pipe_gone(launch: &Launch, dir: &std::path::Path, name: &str) {
    let fifo = dir.join(format!("{name}.fifo"));
    let mut reader = fifo_with_reader(&fifo);
    let mut service = Proc::spawn(launch.command(), launch.port(), fifo.clone());
    service.wait_ready().await;
    reader.kill();
    // Log lines written from now on hit a pipe without a reader (EPIPE).
    let _ = service.api().get("/v1/no-such-route").await;
    let status = service.stop(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "{name} did not exit 0 after SIGTERM with its log pipe gone: {status:?}"
    );
}

#[actix_web::test]
async fn both_services_stop_on_sigterm_with_their_log_pipe_gone() {
    let dir = tempfile::tempdir().unwrap();
    let storaged = Launch::storaged(&dir.path().join("data"), free_port());
    stops_with_its_log_pipe_gone(&storaged, dir.path(), "storaged").await;

    // catalogd needs a storaged to become ready; this one logs to a file.
    let backing = storaged.log_dir(dir.path()).spawn();
    backing.wait_ready().await;
    let catalogd = Launch::catalogd(&backing.url(), free_port());
    stops_with_its_log_pipe_gone(&catalogd, dir.path(), "catalogd").await;
}
