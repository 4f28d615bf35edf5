//! Probes and metrics.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};

use super::AppState;

/// Liveness: the process answers (also while the index is being rebuilt).
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: the index has been rebuilt from storaged.
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.service.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().json(serde_json::json!({
            "status": "ready",
            "datasets": state.catalog.len(),
        }))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(serde_json::json!({
                "error": "not_ready",
                "message": "the index is still being rebuilt from storaged",
            }))
    }
}

/// Prometheus text exposition.
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let metrics = &state.service.metrics;
    metrics
        .datasets
        .set(i64::try_from(state.catalog.len()).unwrap_or(i64::MAX));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}

/// This service's OpenAPI 3 document.
pub(crate) async fn openapi() -> HttpResponse {
    service_kit::http::openapi(include_str!("../../../../docs/openapi/catalogd.json"))
}
