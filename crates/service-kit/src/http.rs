//! HTTP plumbing both services share: one declaration of the route table (so the OpenAPI
//! test can compare the documents with what the server really routes), and JSON answers
//! for requests no route takes.

use std::collections::BTreeSet;

use actix_web::http::{header, Method};
use actix_web::{HttpRequest, HttpResponse};

/// Declares a service's route table once and derives both the actix registration and the
/// list of `(method, path pattern)` pairs from it, so the two cannot drift apart.
///
/// ```ignore
/// service_kit::route_table! {
///     "/healthz" => { get: health::healthz },
///     "/v1/things/{id}" => { get: things::get, delete: things::delete },
/// }
/// ```
/// expands to `pub const ROUTES: &[(&str, &str)]` (lowercase methods, as OpenAPI spells
/// them) and `pub fn routes(cfg)`. Resources are registered in the order written (the first
/// match wins); a known path asked with another method answers 405 with an `Allow` header.
#[macro_export]
macro_rules! route_table {
    ($( $path:literal => { $( $method:ident : $handler:path ),+ $(,)? } ),+ $(,)?) => {
        /// Every `(method, path pattern)` the server routes, in registration order.
        pub const ROUTES: &[(&str, &str)] = &[ $( $( (stringify!($method), $path), )+ )+ ];

        /// Registers every route of [`ROUTES`].
        pub fn routes(cfg: &mut ::actix_web::web::ServiceConfig) {
            $(
                cfg.service(
                    ::actix_web::web::resource($path)
                        $( .route(::actix_web::web::$method().to($handler)) )+
                        .default_service(::actix_web::web::to(|req: ::actix_web::HttpRequest| async move {
                            $crate::http::method_not_allowed(&req, &[$( stringify!($method) ),+])
                        })),
                );
            )+
        }
    };
}

/// The answer for a request no route matches: 404 `no_route`, in the services' error shape.
#[allow(clippy::unused_async, reason = "an actix handler")]
pub async fn no_route(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "error": "no_route",
        "message": format!("no route for {} {}", req.method(), req.path()),
    }))
}

/// The answer for a known path asked with a method it does not take: 405 with `Allow`.
pub fn method_not_allowed(req: &HttpRequest, allowed: &[&str]) -> HttpResponse {
    let allow = allowed
        .iter()
        .map(|m| m.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(", ");
    let mut response = if req.method() == Method::HEAD {
        HttpResponse::MethodNotAllowed().finish()
    } else {
        HttpResponse::MethodNotAllowed().json(serde_json::json!({
            "error": "method_not_allowed",
            "message": format!("{} is not allowed on {}; allowed: {allow}", req.method(), req.path()),
        }))
    };
    if let Ok(value) = header::HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// Serves a service's OpenAPI document (JSON text compiled into the binary).
pub fn openapi(document: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document)
}

/// Turns an actix path pattern into its OpenAPI form: `{key:.*}` becomes `{key}`.
pub fn openapi_path(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut in_param = false;
    let mut skipping = false;
    for c in pattern.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push(c);
            }
            '}' if in_param => {
                in_param = false;
                skipping = false;
                out.push(c);
            }
            ':' if in_param => skipping = true,
            _ if skipping => {}
            _ => out.push(c),
        }
    }
    out
}

/// The `(method, path)` pairs an OpenAPI document describes, lowercase methods.
pub fn documented_operations(document: &serde_json::Value) -> BTreeSet<(String, String)> {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    document["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| ((*m).to_owned(), path.clone()))
        })
        .collect()
}

/// A route table in the form of [`documented_operations`].
pub fn routed_operations(routes: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    routes
        .iter()
        .map(|(method, pattern)| ((*method).to_owned(), openapi_path(pattern)))
        .collect()
}

/// Compares an OpenAPI document with a route table: the documented operations when both
/// hold the same `(method, path)` pairs, else a message listing what each side lacks.
pub fn check_route_coverage(
    document: &serde_json::Value,
    routes: &[(&str, &str)],
) -> Result<BTreeSet<(String, String)>, String> {
    let documented = documented_operations(document);
    let table = routed_operations(routes);
    if documented == table {
        Ok(documented)
    } else {
        Err(format!(
            "documented but not routed: {:?}; routed but not documented: {:?}",
            documented.difference(&table).collect::<Vec<_>>(),
            table.difference(&documented).collect::<Vec<_>>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::openapi_path;

    #[test]
    fn openapi_path_drops_regex_suffixes() {
        assert_eq!(openapi_path("/v1/objects/{key:.*}"), "/v1/objects/{key}");
        assert_eq!(openapi_path("/v1/datasets/{name}"), "/v1/datasets/{name}");
        assert_eq!(openapi_path("/healthz"), "/healthz");
    }
}
