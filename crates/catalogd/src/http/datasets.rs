//! `/v1/datasets`: register, look up (now or `as_of` an instant), list, delete or purge.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use manifest_codec::{DatasetName, Manifest, ObjectKey, ObjectRef, ObjectSize, SchemaFingerprint};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{body, AppState};
use crate::catalog::{CatalogError, Idempotency, RegisterRequest, Visibility};
use crate::Error;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// The register body. Unknown fields are refused, so `dataset_id`, `version` and the
/// timestamps can never be set by a caller.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    name: String,
    schema_fingerprint: String,
    objects: Vec<ObjectBody>,
    #[serde(default, deserialize_with = "optional_integer")]
    row_count: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectBody {
    key: String,
    #[serde(deserialize_with = "integer")]
    size: i64,
}

/// An int64 written as a JSON integer or as a number with no fractional part (`107.0`:
/// JSON Schema's `integer` admits it, and many JSON encoders write whole floats so).
fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct Integer;
    impl serde::de::Visitor<'_> for Integer {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer that fits in 64 bits")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            // Whole and exactly representable (|v| ≤ 2^53), so nothing is rounded.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            if v.fract() == 0.0 && v.abs() <= EXACT {
                #[allow(clippy::cast_possible_truncation, reason = "whole and within 2^53")]
                Ok(v as i64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
    }
    d.deserialize_any(Integer)
}

fn optional_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "integer")] i64);
    Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
}

impl RegisterBody {
    fn parse(self, max_objects: usize) -> Result<RegisterRequest, Error> {
        let invalid =
            |field: &str, e: &dyn std::fmt::Display| Error::InvalidRequest(format!("{field}: {e}"));
        if self.objects.len() > max_objects {
            return Err(Error::InvalidRequest(format!(
                "objects: {} entries, at most {max_objects} per dataset (max_objects)",
                self.objects.len()
            )));
        }
        let name = DatasetName::parse(&self.name).map_err(|e| invalid("name", &e))?;
        let schema_fingerprint = SchemaFingerprint::parse(&self.schema_fingerprint)
            .map_err(|e| invalid("schema_fingerprint", &e))?;
        let objects = self
            .objects
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                let key = ObjectKey::parse(&o.key)
                    .map_err(|e| invalid(&format!("objects[{i}].key"), &e))?;
                let size = ObjectSize::new(o.size).ok_or_else(|| {
                    Error::InvalidRequest(format!("objects[{i}].size is negative"))
                })?;
                Ok(ObjectRef { key, size })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(RegisterRequest {
            name,
            schema_fingerprint,
            objects,
            row_count: self.row_count,
            idempotency: None,
        })
    }
}

#[derive(Serialize)]
struct RegisterResponse<'a> {
    existing: bool,
    manifest: &'a Manifest,
}

/// A strong entity tag for one published manifest. The version changes on every register;
/// `created_at` tells a re-created dataset (version 1 again) from the deleted one.
fn etag(manifest: &Manifest) -> String {
    format!(
        "\"{}-{}\"",
        manifest.version,
        manifest.created_at.as_micros()
    )
}

/// True when `If-None-Match` lists `etag` (weak comparison, as RFC 9110 asks) or `*`.
fn none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

pub(super) fn name_of(req: &HttpRequest) -> Result<DatasetName, Error> {
    let raw = req.match_info().get("name").unwrap_or_default();
    DatasetName::parse(raw).map_err(|e| Error::InvalidRequest(format!("name: {e}")))
}

/// The credential that made `req` (`-` when credentials are off).
pub(super) fn caller(req: &HttpRequest) -> String {
    use actix_web::HttpMessage;
    req.extensions()
        .get::<super::auth::CallerName>()
        .map_or_else(|| "-".to_owned(), |c| c.0.clone())
}

fn not_found(name: &DatasetName) -> Error {
    Error::Catalog(CatalogError::NotFound {
        name: name.to_string(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterQuery {
    verify: Option<String>,
}

pub(crate) async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let mut dataset: Option<DatasetName> = None;
    let result = async {
        state.ensure_ready()?;
        let query = web::Query::<RegisterQuery>::from_query(req.query_string())
            .map_err(|e| Error::InvalidRequest(format!("invalid query: {e}")))?;
        let verify = flag("verify", query.verify.as_deref())?;
        let bytes = body::read_json(&req, payload, state.service.max_body_size).await?;
        let body: RegisterBody =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes))
                .map_err(|e| {
                    let path = e.path().to_string();
                    let inner = e.into_inner();
                    if path == "." {
                        Error::InvalidRequest(format!("invalid register body: {inner}"))
                    } else {
                        Error::InvalidRequest(format!("invalid register body at {path}: {inner}"))
                    }
                })?;
        let mut request = body.parse(state.service.max_objects)?;
        dataset = Some(request.name.clone());
        if verify {
            state.catalog.verify(&request.objects).await?;
        }
        if let Some(key) = req.headers().get("idempotency-key") {
            let key = key.to_str().map_err(|_| {
                Error::InvalidRequest("Idempotency-Key is not visible ASCII".into())
            })?;
            request.idempotency = Some(Idempotency::new(key, &bytes)?);
        }
        Ok::<_, Error>(state.catalog.register(request).await?)
    }
    .await;
    // The audit trail: one line per register that passed authorization.
    match &result {
        Ok(registered) => tracing::info!(
            credential = %caller(&req),
            method = "POST",
            dataset = %registered.manifest.name,
            version = registered.manifest.version,
            outcome = if registered.existing { "updated" } else { "created" },
            "audit"
        ),
        Err(Error::NotReady) => {}
        Err(e) => tracing::info!(
            credential = %caller(&req),
            method = "POST",
            dataset = dataset.as_ref().map_or("-", DatasetName::as_str),
            outcome = e.code(),
            "audit"
        ),
    }
    let outcome = match &result {
        Ok(r) if r.replayed => "replayed",
        Ok(r) if r.existing => "updated",
        Ok(_) => "created",
        Err(Error::Catalog(CatalogError::FingerprintConflict { .. })) => "conflict",
        Err(Error::Catalog(
            CatalogError::Storage(_)
            | CatalogError::Verify(_)
            | CatalogError::Contended { .. }
            | CatalogError::Encode { .. },
        )) => "storage_error",
        Err(Error::NotReady) => "not_ready",
        Err(_) => "invalid",
    };
    if outcome != "not_ready" {
        state
            .service
            .metrics
            .registers
            .with_label_values(&[outcome])
            .inc();
    }
    let registered = result?;
    let status = if registered.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = HttpResponse::build(status);
    response.insert_header((header::ETAG, etag(&registered.manifest)));
    if registered.replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
    Ok(response.json(RegisterResponse {
        existing: registered.existing,
        manifest: &registered.manifest,
    }))
}

/// A 304 when the client's `If-None-Match` already holds `tag`.
fn not_modified(req: &HttpRequest, tag: &str) -> Option<HttpResponse> {
    none_match(req, tag).then(|| {
        HttpResponse::NotModified()
            .insert_header((header::ETAG, tag.to_owned()))
            .finish()
    })
}

pub(super) fn manifest_response(req: &HttpRequest, manifest: &Manifest) -> HttpResponse {
    let tag = etag(manifest);
    if let Some(response) = not_modified(req, &tag) {
        return response;
    }
    HttpResponse::Ok()
        .insert_header((header::ETAG, tag))
        .json(manifest)
}

#[derive(Deserialize)]
struct GetQuery {
    as_of: Option<String>,
}

pub(crate) async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    state.ensure_ready()?;
    let name = name_of(&req)?;
    let query = web::Query::<GetQuery>::from_query(req.query_string())
        .map_err(|e| Error::InvalidRequest(format!("invalid query: {e}")))?;
    if let Some(raw) = &query.as_of {
        let at = raw
            .parse::<manifest_codec::Timestamp>()
            .map_err(|e| Error::InvalidRequest(format!("as_of: {e}")))?;
        let manifest = state.catalog.as_of(&name, at).await?;
        return Ok(manifest_response(&req, &manifest));
    }
    let manifest = state.catalog.get(&name).ok_or_else(|| not_found(&name))?;
    Ok(manifest_response(&req, &manifest))
}

pub(crate) async fn by_id(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    state.ensure_ready()?;
    let raw = req.match_info().get("id").unwrap_or_default();
    let id = Uuid::try_parse(raw)
        .map_err(|e| Error::InvalidRequest(format!("dataset_id {raw:?} is not a UUID: {e}")))?;
    let manifest = state
        .catalog
        .get_by_id(&id)
        .ok_or_else(|| Error::Catalog(CatalogError::IdNotFound { id }))?;
    Ok(manifest_response(&req, &manifest))
}

/// The manifest as Parquet: the bytes catalogd stored in storaged (encoding is
/// deterministic), so any Parquet reader can open it.
pub(crate) async fn manifest_parquet(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    state.ensure_ready()?;
    let name = name_of(&req)?;
    let manifest = state.catalog.get(&name).ok_or_else(|| not_found(&name))?;
    parquet_response(&req, &manifest)
}

/// `manifest` as a Parquet file of the manifest's columns (format 1), the one any reader
/// of a dataset gets, with its entity tag.
pub(super) fn parquet_response(
    req: &HttpRequest,
    manifest: &Manifest,
) -> Result<HttpResponse, Error> {
    let name = &manifest.name;
    let tag = etag(manifest);
    if let Some(response) = not_modified(req, &tag) {
        return Ok(response);
    }
    let bytes = manifest_codec::encode(manifest).map_err(Error::Encode)?;
    Ok(HttpResponse::Ok()
        .content_type("application/vnd.apache.parquet")
        .insert_header((header::ETAG, tag))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}.parquet\""),
        ))
        .body(bytes))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    purge: Option<String>,
}

fn flag(field: &str, raw: Option<&str>) -> Result<bool, Error> {
    match raw {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(Error::InvalidRequest(format!(
            "{field} is {other:?}: use true or false"
        ))),
    }
}

pub(crate) async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    state.ensure_ready()?;
    let name = name_of(&req)?;
    let query = web::Query::<DeleteQuery>::from_query(req.query_string())
        .map_err(|e| Error::InvalidRequest(format!("invalid query: {e}")))?;
    let purge = flag("purge", query.purge.as_deref())?;
    let result = if purge {
        state.catalog.purge(&name).await
    } else {
        state.catalog.delete(&name).await
    }
    .map_err(Error::from);
    let done = if purge { "purged" } else { "deleted" };
    let outcome = result.as_ref().map_or_else(Error::code, |()| done);
    tracing::info!(credential = %caller(&req), method = "DELETE", dataset = %name, outcome, "audit");
    result?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    prefix: Option<String>,
    limit: Option<String>,
    page_token: Option<String>,
    deleted: Option<String>,
}

#[derive(Serialize)]
struct ListedDataset<'a> {
    #[serde(flatten)]
    manifest: &'a Manifest,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_at: Option<manifest_codec::Timestamp>,
}

#[derive(Serialize)]
struct ListResponse<'a> {
    datasets: Vec<ListedDataset<'a>>,
    next_page_token: Option<String>,
}

fn decode_token(token: &str) -> Result<DatasetName, Error> {
    service_kit::decode_page_token(token)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| DatasetName::parse(&text).ok())
        .ok_or_else(|| Error::InvalidRequest("page_token is not one this server issued".into()))
}

pub(crate) async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    state.ensure_ready()?;
    let query = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| Error::InvalidRequest(format!("invalid query: {e}")))?
        .into_inner();
    let limit = service_kit::parse_limit(query.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(Error::InvalidRequest)?;
    let prefix = query.prefix.unwrap_or_default();
    if prefix.len() > manifest_codec::name::MAX_NAME_LEN {
        return Err(Error::InvalidRequest(format!(
            "prefix is longer than a name can be ({} bytes)",
            manifest_codec::name::MAX_NAME_LEN
        )));
    }
    let after = query.page_token.as_deref().map(decode_token).transpose()?;
    let visibility = if flag("deleted", query.deleted.as_deref())? {
        Visibility::Deleted
    } else {
        Visibility::Live
    };
    let page = state.catalog.list(
        &prefix,
        after.as_ref().map(DatasetName::as_str),
        limit,
        visibility,
    );
    let next_page_token = page
        .has_more
        .then(|| {
            page.datasets
                .last()
                .map(|d| service_kit::encode_page_token(d.manifest.name.as_str()))
        })
        .flatten();
    Ok(HttpResponse::Ok().json(ListResponse {
        datasets: page
            .datasets
            .iter()
            .map(|d| ListedDataset {
                manifest: &d.manifest,
                deleted_at: d.deleted_at,
            })
            .collect(),
        next_page_token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_row_counts_are_integers_possibly_written_as_whole_floats() {
        let parse = |json: &str| serde_json::from_str::<RegisterBody>(json);
        let body = |size: &str, rows: &str| {
            format!(
                r#"{{"name": "a", "schema_fingerprint": "f", "objects": [{{"key": "k", "size": {size}}}], "row_count": {rows}}}"#
            )
        };
        let ok = parse(&body("107.0", "3.0")).unwrap();
        assert_eq!((ok.objects[0].size, ok.row_count), (107, Some(3)));
        let ok = parse(&body("-4", "null")).unwrap();
        assert_eq!((ok.objects[0].size, ok.row_count), (-4, None));
        assert_eq!(
            parse(&body("9007199254740992.0", "1")).unwrap().objects[0].size,
            1 << 53
        );
        for (size, rows) in [
            ("1.5", "1"),
            ("9223372036854775808", "1"),
            ("18014398509481984.0", "1"),
            ("\"7\"", "1"),
            ("1", "0.5"),
            ("1", "1e19"),
        ] {
            let err = parse(&body(size, rows)).err();
            assert!(
                err.is_some_and(|e| e.to_string().contains("integer")),
                "{size} {rows}"
            );
        }
    }

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused() {
        let name = DatasetName::parse("sales.orders_2024").unwrap();
        assert_eq!(
            decode_token(&service_kit::encode_page_token(name.as_str())).unwrap(),
            name
        );
        for garbage in ["", "0", "zz", "4142", "c3", "2e2e"] {
            assert!(decode_token(garbage).is_err(), "{garbage}");
        }
    }
}
