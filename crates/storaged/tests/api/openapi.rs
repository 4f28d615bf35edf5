//! The OpenAPI document served at `/openapi.json` describes exactly the routes the server
//! has, and every documented operation reaches a handler.

use awc::http::{Method, StatusCode};
use serde_json::Value;
use service_kit::http::check_route_coverage;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn openapi_documents_exactly_the_routes_the_server_has() {
    let app = spawn_app().await;
    let served = app.send(app.client.get(app.url("/openapi.json")), "").await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.header("content-type"), Some("application/json"));
    let document = served.json();
    let committed: Value =
        serde_json::from_str(include_str!("../../../../docs/openapi/storaged.json")).unwrap();
    assert_eq!(document, committed);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));

    let documented = check_route_coverage(&document, storaged::http::ROUTES).unwrap();
    for (method, path) in &documented {
        let concrete = path.replace("{key}", "docs/probe");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let reply = app
            .send(app.client.request(method.clone(), app.url(&concrete)), "")
            .await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}"
        );
        if reply.status == StatusCode::NOT_FOUND && method != Method::HEAD {
            assert_ne!(reply.json()["error"], "no_route", "{method} {concrete}");
        }
    }
}

#[actix_web::test]
async fn unrouted_requests_get_json_errors() {
    let app = spawn_app().await;
    let reply = app.send(app.client.get(app.url("/v2/nothing")), "").await;
    let message = reply.assert_error(404, "no_route");
    assert!(message.contains("GET /v2/nothing"), "{message}");

    let reply = app.send(app.client.post(app.object_url("a/b")), "x").await;
    reply.assert_error(405, "method_not_allowed");
    assert_eq!(reply.header("allow"), Some("PUT, GET, HEAD, DELETE"));
}
