//! The OpenAPI document served at `/openapi.json` describes exactly the routes the server
//! has, and every documented operation reaches a handler.

use awc::http::{Method, StatusCode};
use serde_json::Value;
use service_kit::http::check_route_coverage;

use crate::helpers::spawn_stack;

#[actix_web::test]
async fn openapi_documents_exactly_the_routes_the_server_has() {
    let stack = spawn_stack().await;
    let served = stack.api.get_ok("/openapi.json").await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.header("content-type"), Some("application/json"));
    let document = served.json();
    let committed: Value =
        serde_json::from_str(include_str!("../../../../docs/openapi/catalogd.json")).unwrap();
    assert_eq!(document, committed);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));

    let documented = check_route_coverage(&document, catalogd::http::ROUTES).unwrap();
    for (method, path) in &documented {
        let concrete = path
            .replace("{name}", "docs.probe")
            .replace("{id}", "1f2906ae-f562-564c-aa86-f487c2afa750");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let reply = stack
            .api
            .send(stack.api.request(method.clone(), &concrete), None)
            .await
            .unwrap();
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}"
        );
        if reply.status == StatusCode::NOT_FOUND {
            assert_ne!(reply.json()["error"], "no_route", "{method} {concrete}");
        }
    }
}

#[actix_web::test]
async fn unrouted_requests_get_json_errors() {
    let stack = spawn_stack().await;
    let reply = stack.api.get_ok("/v2/nothing").await;
    let message = reply.assert_error(404, "no_route");
    assert!(message.contains("GET /v2/nothing"), "{message}");

    let reply = stack
        .api
        .send(stack.api.request(Method::PUT, "/v1/datasets/orders"), None)
        .await
        .unwrap();
    reply.assert_error(405, "method_not_allowed");
    assert_eq!(reply.header("allow"), Some("GET, DELETE"));
}
