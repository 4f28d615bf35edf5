//! HTTP adapters: parse the request, call the backend, shape the response. The route
//! table is [`ROUTES`]; `docs/openapi/storaged.json` documents exactly those routes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::{web, HttpRequest};

use service_kit::credentials::{Authentication, CredentialStore};

use crate::backend::Backend;
use crate::metrics::Metrics;
use crate::Error;

mod attrs;
pub mod auth;
mod body;
mod conditions;
mod health;
mod list;
mod objects;

/// Shared by every worker.
#[derive(Debug)]
pub struct AppState {
    /// Where objects live.
    pub backend: Arc<dyn Backend>,
    /// Largest accepted object.
    pub max_object_size: u64,
    /// Upload idle timeout.
    pub body_idle_timeout: Duration,
    /// The credentials in force (none: everything is open).
    pub credentials: Arc<CredentialStore<auth::StoragedScope>>,
    /// `/metrics` without credentials.
    pub metrics_open: bool,
    /// This instance's metrics.
    pub metrics: Metrics,
}

impl AppState {
    /// Who is calling, and whether their credential allows `access`: 401 for a missing
    /// or unknown token, 403 naming the scope needed for a known one without it. Every
    /// decision is counted by credential; refusals are logged.
    fn authorize(&self, req: &HttpRequest, access: auth::Access<'_>) -> Result<Authorized, Error> {
        let credentials = self.credentials.current();
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let authenticated = credentials.authenticate(given);
        let count = |name: &str, outcome: &str| {
            self.metrics
                .credential_requests
                .with_label_values(&[name, outcome])
                .inc();
        };
        match authenticated {
            Authentication::Open => Ok(Authorized {
                caller: auth::Caller::Anonymous,
                visibility: auth::Visibility::All,
            }),
            Authentication::Unknown => {
                count("-", "unauthorized");
                tracing::info!(method = %req.method(), path = req.path(), credential = "-", "refused: no valid bearer token");
                Err(Error::Unauthorized)
            }
            Authentication::Known(credential) if auth::allows(&credential.scopes, access) => {
                count(&credential.name, "allowed");
                // Only a listing needs to know what the caller may see.
                let visibility = if matches!(access, auth::Access::List(_)) {
                    auth::Visibility::of(&authenticated)
                } else {
                    auth::Visibility::All
                };
                Ok(Authorized {
                    caller: auth::caller(credential),
                    visibility,
                })
            }
            Authentication::Known(credential) => {
                count(&credential.name, "forbidden");
                let needed = access.needed();
                tracing::info!(method = %req.method(), path = req.path(), credential = %credential.name, scope_needed = %needed, "refused: scope missing");
                Err(Error::Forbidden {
                    credential: credential.name.clone(),
                    needed,
                })
            }
        }
    }
}

/// A request that passed [`AppState::authorize`].
#[derive(Debug)]
pub(crate) struct Authorized {
    /// Who made it (for the audit log).
    pub(crate) caller: auth::Caller,
    /// What its listings may show.
    pub(crate) visibility: auth::Visibility,
}

service_kit::route_table! {
    "/healthz" => { get: health::healthz },
    "/readyz" => { get: health::readyz },
    "/metrics" => { get: health::metrics },
    "/openapi.json" => { get: health::openapi },
    "/v1/objects" => { get: list::list },
    "/v1/objects/{key:.*}" => {
        put: objects::put,
        get: objects::get,
        head: objects::head,
        delete: objects::delete,
    },
}

/// Records request count, latency and error codes for every response.
pub async fn record_metrics<B: MessageBody>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
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
        if let Some(error) = response.response().error() {
            let kind = error.as_error::<Error>().map_or("other", Error::code);
            metrics.errors.with_label_values(&[kind]).inc();
        }
    }
    Ok(response)
}
