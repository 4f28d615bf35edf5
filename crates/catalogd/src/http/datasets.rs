//! `/v1/datasets`: register, look up (now or `as_of` an instant), list, delete or purge.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use manifest_codec::{DatasetName, Manifest};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use crate::catalog::{CatalogError, Visibility};
use crate::Error;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// A strong entity tag for one published manifest. The version changes on every register;
/// `created_at` tells a re-created dataset (version 1 again) from the deleted one.
pub(super) fn etag(manifest: &Manifest) -> String {
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
    let manifest = if no_cache(&req) {
        state.catalog.get_fresh(&name).await?
    } else {
        state.catalog.get(&name)
    };
    let manifest = manifest.ok_or_else(|| not_found(&name))?;
    Ok(manifest_response(&req, &manifest))
}

/// `Cache-Control: no-cache` (or `Pragma: no-cache`): the reader wants what is stored now,
/// not this replica's possibly lagging index.
fn no_cache(req: &HttpRequest) -> bool {
    let says = |name: &str| {
        req.headers()
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
    };
    says("cache-control") || says("pragma")
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

pub(super) fn flag(field: &str, raw: Option<&str>) -> Result<bool, Error> {
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
