//! A fault-injecting TCP proxy, to put between catalogd and storaged.
//!
//! It runs on a thread of its own (so it keeps working whatever the test's runtime does).
//! The fault is chosen per connection when it is accepted; changing the fault closes every
//! open connection, so a pooled client connection cannot carry the old behaviour over.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards both ways untouched.
    Pass,
    /// Waits this long before forwarding each chunk the client sends (roughly: each
    /// request), then forwards it even if the client has given up meanwhile.
    Delay(Duration),
    /// Accepts and reads, never forwards and never answers.
    Blackhole,
    /// Resets the connection when the client sends its first bytes; nothing is forwarded.
    ResetBeforeForward,
    /// Forwards the request; once the upstream starts answering (it has committed),
    /// passes the first `pass` bytes of the answer and resets the connection.
    ResetAfterReply { pass: usize },
    /// Forwards both ways at this many bytes per second.
    Slow { bytes_per_second: usize },
    /// Answers every request itself with this status and closes; nothing is forwarded.
    Reply(u16),
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    fault: Arc<Mutex<Fault>>,
    changed: watch::Sender<u64>,
    connections: Arc<std::sync::atomic::AtomicU64>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> Self {
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let (changed, watcher) = watch::channel(0);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let connections = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (f, c) = (fault.clone(), connections.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let accept = async {
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            continue;
                        };
                        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let fault = *f.lock().unwrap();
                        let mut watcher = watcher.clone();
                        watcher.borrow_and_update();
                        tokio::spawn(async move {
                            // The change is checked first on every wake-up: bytes a client
                            // sends after `set` returned are never forwarded under the
                            // old fault (unbiased, a wake-up with both ready could pick
                            // the forwarding branch first).
                            tokio::select! {
                                biased;
                                _ = watcher.changed() => {}
                                () = serve(client, upstream, fault) => {}
                            }
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Self {
            port,
            fault,
            changed,
            connections,
            _stop: stop,
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Applies `fault` to new connections and closes the open ones.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
        self.changed.send_modify(|n| *n += 1);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, fault: Fault) {
    let mut buf = vec![0; 64 * 1024];
    match fault {
        Fault::Pass => pipe(client, upstream, Duration::ZERO, None).await,
        Fault::Delay(d) => pipe(client, upstream, d, None).await,
        Fault::Slow { bytes_per_second } => {
            pipe(client, upstream, Duration::ZERO, Some(bytes_per_second)).await;
        }
        Fault::Blackhole => while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {},
        Fault::ResetBeforeForward => {
            let _ = client.read(&mut buf).await;
            reset(client);
        }
        Fault::ResetAfterReply { pass } => {
            let Ok(mut up) = TcpStream::connect(upstream).await else {
                return reset(client);
            };
            let (mut cr, mut cw) = client.split();
            let (mut ur, mut uw) = up.split();
            let forward = async {
                forward(&mut cr, &mut uw, Duration::ZERO, None).await;
                std::future::pending::<()>().await;
            };
            let first_answer = async {
                let n = ur.read(&mut buf).await.unwrap_or(0);
                let _ = cw.write_all(&buf[..n.min(pass)]).await;
            };
            tokio::select! {
                () = forward => {}
                () = first_answer => {}
            }
            reset(client);
        }
        Fault::Reply(status) => {
            if read_request(&mut client).await {
                let head = format!(
                    "HTTP/1.1 {status} Injected\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = client.write_all(head.as_bytes()).await;
                let _ = client.shutdown().await;
                let _ = client.read(&mut buf).await;
            }
        }
    }
}

/// Closes with RST instead of FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Reads one request (head, then a Content-Length body); false if the client went away.
async fn read_request(client: &mut TcpStream) -> bool {
    let mut data = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return true;
            }
        }
        match client.read(&mut buf).await {
            Ok(n) if n > 0 => data.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
}

/// Forwards both ways; each client chunk waits `delay` first; `rate` limits both ways.
async fn pipe(mut client: TcpStream, upstream: SocketAddr, delay: Duration, rate: Option<usize>) {
    let Ok(mut up) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = up.split();
    let to_upstream = async {
        forward(&mut cr, &mut uw, delay, rate).await;
        let _ = uw.shutdown().await;
    };
    let to_client = async {
        forward(&mut ur, &mut cw, Duration::ZERO, rate).await;
        let _ = cw.shutdown().await;
    };
    futures_util::future::join(to_upstream, to_client).await;
}

/// Copies `from` to `to` until either ends; each chunk waits `delay` first, and `rate`
/// limits the bytes per second.
async fn forward<R: AsyncReadExt + Unpin, W: AsyncWriteExt + Unpin>(
    from: &mut R,
    to: &mut W,
    delay: Duration,
    rate: Option<usize>,
) {
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if send(to, &buf[..n], rate).await.is_err() {
            break;
        }
    }
}

async fn send<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    data: &[u8],
    rate: Option<usize>,
) -> std::io::Result<()> {
    let Some(rate) = rate else {
        return w.write_all(data).await;
    };
    // Ten slices a second.
    let slice = (rate / 10).max(1);
    for part in data.chunks(slice) {
        w.write_all(part).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
