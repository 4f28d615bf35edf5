//! The S3 listener: a multi-threaded tokio runtime on its own threads, serving HTTP/1.1
//! with hyper, one s3s service for signed requests and one for the open mode.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use s3s::service::{S3Service, S3ServiceBuilder};

use super::access::{CredentialsAccess, CredentialsAuth};
use super::S3Face;

/// Seconds in-flight S3 requests get to finish after a stop.
const DRAIN: Duration = Duration::from_secs(10);

/// The name of the operation a request turned out to be, for the metrics; set by the
/// operation (or the access check), `other` when s3s answered before either ran.
#[derive(Debug, Clone, Default)]
pub(super) struct Operation(Arc<OnceLock<String>>);

impl Operation {
    pub(super) fn set(&self, name: &str) {
        let _ = self.0.set(name.to_owned());
    }

    fn get(&self) -> &str {
        self.0.get().map_or("other", String::as_str)
    }
}

/// A running S3 listener; stopped (draining for up to 10 s) by [`S3Server::stop`] or when
/// dropped.
#[derive(Debug)]
pub struct S3Server {
    port: u16,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Services {
    signed: S3Service,
    open: S3Service,
    face: S3Face,
}

impl S3Server {
    /// Serves `face` on `listener` from now on; `domain` turns on virtual-host addressing;
    /// multipart uploads older than `expiry` are swept away.
    pub fn start(
        listener: TcpListener,
        face: S3Face,
        domain: Option<&str>,
        expiry: Duration,
    ) -> std::io::Result<Self> {
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let build = |signed: bool| -> std::io::Result<S3Service> {
            let mut builder = S3ServiceBuilder::new(face.clone());
            if let Some(domain) = domain {
                let host = s3s::host::SingleDomain::new(domain).map_err(std::io::Error::other)?;
                builder.set_host(host);
            }
            if signed {
                builder.set_auth(CredentialsAuth(face.credentials.clone()));
                builder.set_access(CredentialsAccess(face.credentials.clone()));
            }
            Ok(builder.build())
        };
        let services = Arc::new(Services {
            signed: build(true)?,
            open: build(false)?,
            face,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3")
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("s3-listener".into())
            .spawn(move || {
                runtime.spawn(sweep(services.face.clone(), expiry, stopped.clone()));
                runtime.block_on(accept(listener, services, stopped));
                runtime.shutdown_timeout(DRAIN);
            })?;
        Ok(Self {
            port,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting, lets in-flight requests finish (up to 10 s) and waits.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}

/// Removes expired multipart uploads every quarter of `expiry` (at least every 10 min).
async fn sweep(face: S3Face, expiry: Duration, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let every = (expiry / 4).clamp(Duration::from_millis(100), Duration::from_secs(600));
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
        match super::multipart::sweep(&face, expiry).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "s3: expired multipart staging removed"),
            Err(e) => {
                tracing::warn!(error = %service_kit::ErrorChain(&e), "s3: multipart sweep failed");
            }
        }
    }
}

async fn accept(
    listener: TcpListener,
    services: Arc<Services>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "s3 face cannot listen");
            return;
        }
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "s3 face: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let services = services.clone();
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(services.clone(), req));
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

async fn handle(
    services: Arc<Services>,
    req: hyper::Request<Incoming>,
) -> Result<s3s::HttpResponse, s3s::HttpError> {
    let started = Instant::now();
    let operation = Operation::default();
    let mut req = req.map(s3s::Body::from);
    req.extensions_mut().insert(operation.clone());
    let has_body = req.headers().contains_key(hyper::header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let open = services.face.credentials.current().is_empty();
    let mut result = if open {
        super::open::unsign(&mut req);
        services.open.call(req).await
    } else {
        services.signed.call(req).await
    };
    // An error may leave the request body unread; closing the connection after the answer
    // keeps a client from sending its next request behind those bytes.
    if let Ok(response) = &mut result {
        if has_body && (response.status().is_client_error() || response.status().is_server_error())
        {
            response.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
        }
    }
    let status = match &result {
        Ok(response) => response.status(),
        Err(_) => hyper::StatusCode::INTERNAL_SERVER_ERROR,
    };
    let metrics = &services.face.metrics;
    let labels = [operation.get(), status.as_str()];
    metrics.s3_requests.with_label_values(&labels).inc();
    metrics
        .s3_latency
        .with_label_values(&[operation.get()])
        .observe(started.elapsed().as_secs_f64());
    result
}
