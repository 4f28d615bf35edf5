//! Builds and runs the server. `main.rs` and the tests both go through [`Application`].

use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};

use service_kit::credentials::CredentialStore;

use crate::backend::{Backend, FsyncPolicy, LocalFs, LogConfig, S3Store};
use crate::config::{BackendKind, Settings};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::s3::{S3Face, S3Server};
use crate::Error;

/// How often the credentials file is checked for changes.
const CREDENTIALS_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Seconds in-flight requests get to finish after a shutdown signal.
const DRAIN_SECONDS: u64 = 10;

/// A bound, ready-to-run storaged.
pub struct Application {
    port: u16,
    server: Server,
    s3: Option<S3Server>,
    /// Reloads the credentials file; aborted when the server stops.
    credentials_watch: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Opens the configured backend: the local data directory (sweeping temp files, indexing
/// objects) or the S3 bucket (probing it for conditional writes).
async fn open_backend(settings: &Settings, metrics: &Metrics) -> Result<Arc<dyn Backend>, Error> {
    match (settings.backend, &settings.s3) {
        (BackendKind::S3, Some(s3)) => {
            let store = S3Store::open(s3).await?;
            tracing::info!(
                endpoint = s3.endpoint.as_deref().unwrap_or("aws"),
                bucket = %s3.bucket,
                prefix = %s3.prefix,
                "s3 backend ready"
            );
            Ok(Arc::new(store))
        }
        (BackendKind::S3, None) => {
            Err(Error::Config("backend = \"s3\" needs an [s3] table".into()))
        }
        (BackendKind::Local, _) => {
            let fsync = FsyncPolicy::new(settings.fsync, Some(metrics.fsync_seconds.clone()));
            let log = LogConfig::new(
                settings.log_max_object_size.as_u64(),
                settings.log_segment_size.as_u64(),
            );
            let (backend, report) =
                LocalFs::open_with_log(&settings.data_dir, fsync, log, metrics.log.clone()).await?;
            tracing::info!(
                data_dir = %settings.data_dir.display(),
                objects = report.objects,
                swept_temp_files = report.swept,
                skipped_files = report.skipped,
                log_max_object_size = log.max_object_size,
                "data directory ready"
            );
            if !settings.fsync {
                tracing::warn!("fsync is off: acknowledged writes can be lost in a crash");
            }
            Ok(Arc::new(backend))
        }
    }
}

impl Application {
    /// Opens the backend (see `open_backend`) and binds
    /// `settings.listen`; port 0 picks a free port, see [`Application::port`].
    pub async fn build(settings: Settings) -> Result<Self, Error> {
        let metrics = Metrics::new()
            .map_err(|e| Error::io("registering metrics", std::io::Error::other(e)))?;
        let backend = open_backend(&settings, &metrics).await?;
        let credentials = Arc::new(
            CredentialStore::open(
                settings.credentials_file.clone(),
                settings.auth_token.clone(),
            )
            .map_err(Error::Credentials)?,
        );
        if !credentials.current().is_empty() {
            tracing::info!(
                file = ?settings.credentials_file,
                legacy_auth_token = settings.auth_token.is_some(),
                "credentials required on every route but the probes"
            );
        }
        let credentials_watch = actix_web::rt::spawn(credentials.clone().watch(CREDENTIALS_POLL));
        let listener = std::net::TcpListener::bind(settings.listen)
            .map_err(|e| Error::io("binding the listen address", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?
            .port();
        let s3 = match settings.s3_addr() {
            None => None,
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .map_err(|e| Error::io("binding the s3_listen address", e))?;
                let face = S3Face::new(
                    backend.clone(),
                    credentials.clone(),
                    metrics.clone(),
                    settings.max_object_size.as_u64(),
                );
                let server = S3Server::start(
                    listener,
                    face,
                    settings.s3_domain.as_deref(),
                    settings.multipart_expiry,
                )
                .map_err(|e| Error::io("starting the s3 face", e))?;
                tracing::info!(port = server.port(), "s3 face listening");
                Some(server)
            }
        };
        let state = web::Data::new(AppState {
            backend,
            max_object_size: settings.max_object_size.as_u64(),
            body_idle_timeout: settings.body_idle_timeout,
            credentials: credentials.clone(),
            metrics_open: settings.metrics_open,
            metrics,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(http::routes)
                .default_service(web::to(service_kit::http::no_route))
                .wrap(middleware::from_fn(http::record_metrics))
        })
        // A streamed answer's head and body go out as separate writes: with Nagle on, the
        // body waits for the client's delayed ACK (40 ms).
        .tcp_nodelay(true)
        .disable_signals()
        .shutdown_timeout(DRAIN_SECONDS);
        let tls = service_kit::tls::serve(
            settings.tls_cert_file.as_deref(),
            settings.tls_key_file.as_deref(),
        )
        .map_err(|e| Error::io("configuring tls", std::io::Error::other(e)))?;
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config),
            None => server.listen(listener),
        }
        .map_err(|e| Error::io("listening", e))?
        .run();
        tracing::info!(port, "listening");
        Ok(Self {
            port,
            server,
            s3,
            credentials_watch,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The S3 face's port, when it is on.
    pub fn s3_port(&self) -> Option<u16> {
        self.s3.as_ref().map(S3Server::port)
    }

    /// A handle that stops the server (`stop(true)` drains in-flight requests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Runs until stopped through a [`ServerHandle`].
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Some(s3) = self.s3 {
            s3.stop().await;
        }
        self.credentials_watch.abort();
        result
    }

    /// Runs until SIGTERM or Ctrl-C, then stops accepting, drains in-flight requests for up
    /// to 10 s and returns.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        actix_web::rt::spawn(async move {
            service_kit::shutdown_signal().await;
            tracing::info!("shutdown signal received; draining in-flight requests");
            handle.stop(true).await;
        });
        let result = self.server.await;
        if let Some(s3) = self.s3 {
            s3.stop().await;
        }
        self.credentials_watch.abort();
        result?;
        tracing::info!("stopped");
        Ok(())
    }
}
