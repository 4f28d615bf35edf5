//! HTTP adapters: parse the request, call the backend, shape the response. The route
//! table is [`ROUTES`]; `docs/openapi/storaged.json` documents exactly those routes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::{web, HttpRequest};

use crate::backend::Backend;
use crate::config::Secret;
use crate::metrics::Metrics;
use crate::Error;

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
    /// Bearer token required on every route but the probes, if set.
    pub auth_token: Option<Secret>,
    /// This instance's metrics.
    pub metrics: Metrics,
}

impl AppState {
    /// Checks the bearer token, in constant time, when one is configured.
    fn authorize(&self, req: &HttpRequest) -> Result<(), Error> {
        let Some(token) = &self.auth_token else {
            return Ok(());
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if token.is_bearer(given) {
            Ok(())
        } else {
            Err(Error::Unauthorized)
        }
    }
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
