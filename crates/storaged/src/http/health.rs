//! Probes and metrics.

use actix_web::{web, HttpRequest, HttpResponse};

use super::AppState;
use crate::Error;

/// Liveness: the process answers.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: the data directory is usable.
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.backend.is_ready().await {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "error": "not_ready",
            "message": "the data directory is not usable",
        }))
    }
}

/// Prometheus text exposition.
pub(crate) async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    if !state.metrics_open {
        state.authorize(&req, super::auth::Access::Metrics)?;
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render()))
}

/// This service's OpenAPI 3 document.
pub(crate) async fn openapi() -> HttpResponse {
    service_kit::http::openapi(include_str!("../../../../docs/openapi/storaged.json"))
}
