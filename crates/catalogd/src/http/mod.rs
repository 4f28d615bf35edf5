//! HTTP adapters: parse the request, call the catalog, shape the response. The route
//! table is [`ROUTES`]; `docs/openapi/catalogd.json` documents exactly those routes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::web;

use actix_web::HttpMessage;
use service_kit::credentials::{Authentication, CredentialStore};

use crate::catalog::Catalog;
use crate::metrics::Metrics;
use crate::Error;

pub mod auth;
mod body;
mod datasets;
mod health;
mod history;
mod register;

/// What every worker shares.
#[derive(Debug)]
pub struct ServiceState {
    /// Set once the index has been rebuilt from storaged.
    pub ready: AtomicBool,
    /// Largest register body accepted.
    pub max_body_size: u64,
    /// Most objects one register may list.
    pub max_objects: usize,
    /// The credentials in force (none: everything is open).
    pub credentials: Arc<CredentialStore<auth::CatalogdScope>>,
    /// `/metrics` without credentials.
    pub metrics_open: bool,
    /// This instance's metrics.
    pub metrics: Metrics,
}

/// One worker's state: its catalog handle (with its own storaged client) and the shared
/// part.
#[derive(Debug)]
pub struct AppState {
    /// This worker's handle on the catalog.
    pub catalog: Catalog,
    /// Shared by every worker.
    pub service: Arc<ServiceState>,
}

impl AppState {
    /// Refuses API calls until the index is complete: serving a partial index would
    /// answer 404 for datasets that exist, and a register could race the rebuild.
    fn ensure_ready(&self) -> Result<(), Error> {
        if self.service.ready.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Error::NotReady)
        }
    }
}

// The route table. `manifest.parquet` comes before `by-id/{id}` so that a dataset named
// `by-id` still has its manifest route.
service_kit::route_table! {
    "/healthz" => { get: health::healthz },
    "/readyz" => { get: health::readyz },
    "/metrics" => { get: health::metrics },
    "/openapi.json" => { get: health::openapi },
    "/v1/changes" => { get: history::changes },
    "/v1/datasets" => { post: register::register, get: datasets::list },
    "/v1/datasets/{name}/manifest.parquet" => { get: datasets::manifest_parquet },
    "/v1/datasets/{name}/versions" => { get: history::versions, delete: history::expire },
    "/v1/datasets/{name}/versions/{version}" => { get: history::version },
    "/v1/datasets/{name}/versions/{version}/manifest.parquet" => { get: history::version_parquet },
    "/v1/datasets/{name}/undrop" => { post: history::undrop },
    "/v1/datasets/by-id/{id}" => { get: datasets::by_id },
    "/v1/datasets/{name}" => { get: datasets::get, delete: datasets::delete },
}

/// Answers 401 for a missing or unknown bearer token and 403 (naming the scope needed)
/// for a credential without the route's scope, when credentials are configured; the
/// probes and the API document are open. Counts every decision by credential, logs the
/// refusals, and leaves the caller's name in the request for the audit log.
pub async fn require_scope<B: MessageBody>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(service) = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.service.clone())
    else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let Some(needed) = auth::needed(req.method(), req.path(), service.metrics_open) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let credentials = service.credentials.current();
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let count = |name: &str, outcome: &str| {
        service
            .metrics
            .credential_requests
            .with_label_values(&[name, outcome])
            .inc();
    };
    let refusal = match credentials.authenticate(given) {
        Authentication::Open => None,
        Authentication::Unknown => {
            count("-", "unauthorized");
            tracing::info!(method = %req.method(), path = req.path(), credential = "-", "refused: no valid bearer token");
            Some(Error::Unauthorized)
        }
        Authentication::Known(credential) if auth::allows(&credential.scopes, needed) => {
            count(&credential.name, "allowed");
            req.extensions_mut()
                .insert(auth::CallerName(credential.name.clone()));
            None
        }
        Authentication::Known(credential) => {
            count(&credential.name, "forbidden");
            tracing::info!(method = %req.method(), path = req.path(), credential = %credential.name, scope_needed = needed.name(), "refused: scope missing");
            Some(Error::Forbidden {
                credential: credential.name.clone(),
                needed: needed.name(),
            })
        }
    };
    if let Some(error) = refusal {
        let response = actix_web::ResponseError::error_response(&error);
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Records request count and latency for every response.
pub async fn record_metrics<B: MessageBody>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.service.metrics.clone());
    let method = req.method().to_string();
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let status = response.status();
        let labels = [route.as_str(), method.as_str(), status.as_str()];
        metrics.requests.with_label_values(&labels).inc();
        metrics
            .latency
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}
