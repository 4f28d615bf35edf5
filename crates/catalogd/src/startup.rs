//! Builds and runs the server. `main.rs` and the tests both go through [`Application`].

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};

use service_kit::credentials::CredentialStore;

use crate::catalog::{
    checkpoint_once, keep_checkpoint, keep_refreshed, keep_retention, Catalog, CatalogError,
    Retention, SystemClock,
};
use crate::config::Settings;
use crate::http::{self, AppState, ServiceState};
use crate::metrics::Metrics;
use crate::store::{HttpManifestStore, Instrumented, ManifestStore, StoreError};
use crate::Error;

/// How often the credentials file is checked for changes.
const CREDENTIALS_POLL: Duration = Duration::from_millis(500);

/// Seconds in-flight requests get to finish after a shutdown signal.
const DRAIN_SECONDS: u64 = 10;

/// Longest a checkpoint at shutdown may take.
const SHUTDOWN_CHECKPOINT: Duration = Duration::from_secs(10);

/// Longest wait between attempts to reach storaged during start-up.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// A bound catalogd whose index is being rebuilt in the background.
pub struct Application {
    port: u16,
    server: Server,
    /// Rebuilds the index, then runs the maintenance loops; aborted when the server stops.
    startup: tokio::task::JoinHandle<Result<(), CatalogError>>,
    /// Reloads the credentials file; aborted when the server stops.
    credentials_watch: tokio::task::JoinHandle<()>,
    /// For the checkpoint written at shutdown (`None` when checkpoints are off).
    checkpoint: Option<(Catalog, Arc<ServiceState>)>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

fn store(
    settings: &Settings,
    tls: Option<&Arc<service_kit::tls::ClientConfig>>,
    metrics: &Metrics,
) -> Rc<dyn ManifestStore> {
    let mut store = HttpManifestStore::new(
        &settings.storaged_url,
        settings
            .storaged_token
            .as_ref()
            .map(|t| t.expose().to_owned()),
        settings.storaged_timeout,
    );
    if let Some(tls) = tls {
        store = store.with_tls(tls.clone());
    }
    Rc::new(Instrumented::new(
        store,
        metrics.storaged_latency.clone(),
        metrics.storaged_errors.clone(),
    ))
}

impl Application {
    /// Binds `settings.listen` (port 0 picks a free port, see [`Application::port`]) and
    /// starts rebuilding the index from storaged. Until the rebuild finishes `/readyz` and
    /// every API route answer 503; `/healthz` answers at once.
    #[allow(
        clippy::unused_async,
        reason = "must run inside the actix runtime: it spawns the rebuild task"
    )]
    pub async fn build(settings: Settings) -> Result<Self, Error> {
        let metrics = Metrics::new()
            .map_err(|e| Error::io("registering metrics", std::io::Error::other(e)))?;
        let tls = settings
            .storaged_url
            .starts_with("https://")
            .then(|| service_kit::tls::client_config(settings.storaged_ca_file.as_deref()))
            .transpose()
            .map_err(|e| Error::io("configuring tls to storaged", std::io::Error::other(e)))?
            .map(Arc::new);
        let catalog = Catalog::new(
            store(&settings, tls.as_ref(), &metrics),
            Arc::new(SystemClock),
        );
        catalog.set_max_versions(settings.max_versions);
        let credentials = Arc::new(
            CredentialStore::open(
                settings.credentials_file.clone(),
                settings.auth_token.clone(),
            )
            .map_err(Error::Credentials)?,
        );
        let credentials_watch = actix_web::rt::spawn(credentials.clone().watch(CREDENTIALS_POLL));
        let service = Arc::new(ServiceState {
            ready: AtomicBool::new(false),
            max_body_size: settings.max_body_size.as_u64(),
            max_objects: settings.max_objects,
            credentials: credentials.clone(),
            metrics_open: settings.metrics_open,
            metrics: metrics.clone(),
        });
        let listener = std::net::TcpListener::bind(settings.listen)
            .map_err(|e| Error::io("binding the listen address", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?
            .port();
        let state = catalog.state();
        let worker_service = service.clone();
        let worker_tls = tls.clone();
        let worker_settings = settings.clone();
        let server = HttpServer::new(move || {
            let app_state = AppState {
                catalog: state.attach(store(
                    &worker_settings,
                    worker_tls.as_ref(),
                    &worker_service.metrics,
                )),
                service: worker_service.clone(),
            };
            App::new()
                .app_data(web::Data::new(app_state))
                .configure(http::routes)
                .default_service(web::to(service_kit::http::no_route))
                .wrap(middleware::from_fn(http::require_scope))
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
        tracing::info!(port, storaged = %settings.storaged_url, "listening; rebuilding the index");
        let checkpoint =
            (!settings.checkpoint_interval.is_zero()).then(|| (catalog.clone(), service.clone()));
        let retention = Retention {
            changes: settings.changes_retention,
            idempotency_window: settings.idempotency_window,
            deleted: settings.deleted_retention,
            max_versions: settings.max_versions,
        };
        let startup = actix_web::rt::spawn(rebuild_index(
            catalog,
            service,
            settings.checkpoint_interval,
            (retention, settings.maintenance_interval),
            settings.index_refresh,
        ));
        Ok(Self {
            port,
            server,
            startup,
            credentials_watch,
            checkpoint,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the server (`stop(true)` drains in-flight requests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Runs until stopped through a [`ServerHandle`], or until the index rebuild fails
    /// for good (a manifest that cannot be decoded), which stops the server and returns
    /// the error.
    pub async fn run_until_stopped(self) -> Result<(), Error> {
        let handle = self.server.handle();
        let mut server = self.server;
        let mut startup = self.startup;
        let result = tokio::select! {
            result = &mut server => result.map_err(|e| Error::io("serving", e)),
            joined = &mut startup => {
                let failure = match joined {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(Error::Catalog(e)),
                    Err(e) => Some(Error::io("rebuilding the index", std::io::Error::other(e))),
                };
                match failure {
                    // The rebuild failed for good: stop serving.
                    Some(e) => {
                        let _ = futures_util::future::join(handle.stop(false), &mut server).await;
                        Err(e)
                    }
                    None => (&mut server).await.map_err(|e| Error::io("serving", e)),
                }
            }
        };
        // The maintenance loops and the credentials watch end with the server, so that a
        // stopped catalogd neither refreshes nor writes checkpoints any more.
        startup.abort();
        self.credentials_watch.abort();
        result
    }

    /// Runs until SIGTERM or Ctrl-C, then stops accepting, drains in-flight requests for up
    /// to 10 s and returns.
    ///
    /// Then, if the index was rebuilt and changed since the last checkpoint, writes one
    /// (for at most 10 s), so that the next start reads one file instead of the manifests
    /// registered since.
    pub async fn run_until_signalled(mut self) -> Result<(), Error> {
        let handle = self.server.handle();
        actix_web::rt::spawn(async move {
            service_kit::shutdown_signal().await;
            tracing::info!("shutdown signal received; draining in-flight requests");
            handle.stop(true).await;
        });
        let checkpoint = self.checkpoint.take();
        self.run_until_stopped().await?;
        if let Some((catalog, service)) = checkpoint {
            let once = checkpoint_once(&catalog, &service.metrics);
            if service.ready.load(Ordering::Acquire)
                && tokio::time::timeout(SHUTDOWN_CHECKPOINT, once)
                    .await
                    .is_err()
            {
                tracing::warn!(
                    "no checkpoint at shutdown: it took longer than {SHUTDOWN_CHECKPOINT:?}"
                );
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Rebuilds the index, retrying while storaged is unreachable; a manifest that cannot be
/// read or decoded ends start-up. Once ready, keeps the checkpoint current, refreshes the
/// index and applies retention every `maintenance.1`, until the task is aborted.
async fn rebuild_index(
    catalog: Catalog,
    service: Arc<ServiceState>,
    checkpoint_interval: Duration,
    maintenance: (Retention, Duration),
    index_refresh: Duration,
) -> Result<(), CatalogError> {
    let mut delay = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        match catalog.rehydrate().await {
            Ok(loaded) => {
                if !loaded.checkpoint_found && !checkpoint_interval.is_zero() {
                    // The change feed is durable from the first checkpoint on: write it
                    // before the first change can be acknowledged.
                    if let Err(e) = catalog.write_checkpoint().await {
                        tracing::warn!(error = %service_kit::ErrorChain(&e), retry_in = ?delay, "cannot write the first checkpoint yet; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(MAX_RETRY_DELAY);
                        continue;
                    }
                }
                let seconds = started.elapsed().as_secs_f64();
                let metrics = &service.metrics;
                metrics.rehydration_seconds.set(seconds);
                metrics
                    .rehydration_manifests
                    .set(i64::try_from(loaded.datasets).unwrap_or(i64::MAX));
                metrics
                    .rehydration_fetched
                    .set(i64::try_from(loaded.fetched).unwrap_or(i64::MAX));
                metrics
                    .foreign_manifest_keys
                    .set(i64::try_from(loaded.foreign_keys).unwrap_or(i64::MAX));
                metrics.ready.set(1);
                service.ready.store(true, Ordering::Release);
                tracing::info!(
                    datasets = loaded.datasets,
                    fetched = loaded.fetched,
                    foreign_keys = loaded.foreign_keys,
                    seconds,
                    "index rebuilt; ready"
                );
                let refresh = async {
                    if !index_refresh.is_zero() {
                        keep_refreshed(catalog.clone(), index_refresh).await;
                    }
                };
                let checkpoint = async {
                    if !checkpoint_interval.is_zero() {
                        keep_checkpoint(
                            catalog.clone(),
                            service.metrics.clone(),
                            checkpoint_interval,
                        )
                        .await;
                    }
                };
                futures_util::future::join3(
                    keep_retention(catalog.clone(), maintenance.0, maintenance.1),
                    refresh,
                    checkpoint,
                )
                .await;
                return Ok(());
            }
            Err(CatalogError::Storage(
                e @ (StoreError::Unavailable(_) | StoreError::Unknown(_)),
            )) => {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot rebuild the index yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(e) => {
                tracing::error!(error = %service_kit::ErrorChain(&e), "cannot rebuild the index; catalogd will not start");
                return Err(e);
            }
        }
    }
}
