//! `/v1/datasets/{name}/versions…`, `/undrop` and `/v1/changes`: the history and the
//! change feed.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use manifest_codec::{DatasetName, Manifest};
use serde::{Deserialize, Serialize};

use super::datasets::{caller, manifest_response, name_of, parquet_response};
use super::AppState;
use crate::catalog::{FeedChange, VersionSummary};
use crate::Error;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
const MAX_WAIT_SECONDS: u64 = 30;
const CLOUDEVENTS_BATCH: &str = "application/cloudevents-batch+json";

fn version_of(req: &HttpRequest) -> Result<i64, Error> {
    let raw = req.match_info().get("version").unwrap_or_default();
    raw.parse::<i64>().ok().filter(|v| *v >= 1).ok_or_else(|| {
        Error::InvalidRequest(format!(
            "version {raw:?} is not a whole number of at least 1"
        ))
    })
}

fn query<T: for<'de> Deserialize<'de>>(req: &HttpRequest) -> Result<T, Error> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| Error::InvalidRequest(format!("invalid query: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionsQuery {
    limit: Option<String>,
    page_token: Option<String>,
}

#[derive(Serialize)]
struct VersionsResponse {
    versions: Vec<VersionSummary>,
    next_page_token: Option<String>,
}

pub(crate) async fn versions(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    state.ensure_ready()?;
    let name = name_of(&req)?;
    let query: VersionsQuery = query(&req)?;
    let limit = service_kit::parse_limit(query.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(Error::InvalidRequest)?;
    let before = query
        .page_token
        .as_deref()
        .map(|t| {
            t.parse::<i64>().ok().filter(|v| *v >= 1).ok_or_else(|| {
                Error::InvalidRequest("page_token is not one this server issued".into())
            })
        })
        .transpose()?;
    let page = state.catalog.versions(&name, before, limit).await?;
    Ok(HttpResponse::Ok().json(VersionsResponse {
        versions: page.versions,
        next_page_token: page.next_before.map(|v| v.to_string()),
    }))
}

/// The manifest of `{name}` at `{version}`.
async fn versioned(state: &AppState, req: &HttpRequest) -> Result<Arc<Manifest>, Error> {
    state.ensure_ready()?;
    let name = name_of(req)?;
    let version = version_of(req)?;
    Ok(state.catalog.version(&name, version).await?)
}

pub(crate) async fn version(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    let manifest = versioned(&state, &req).await?;
    Ok(manifest_response(&req, &manifest))
}

pub(crate) async fn version_parquet(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    let manifest = versioned(&state, &req).await?;
    parquet_response(&req, &manifest)
}

pub(crate) async fn undrop(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    state.ensure_ready()?;
    let name = name_of(&req)?;
    let result = state.catalog.undrop(&name).await.map_err(Error::from);
    let outcome = result.as_ref().map_or_else(Error::code, |_| "undropped");
    tracing::info!(credential = %caller(&req), method = "POST", dataset = %name, outcome, "audit");
    let manifest = result?;
    Ok(manifest_response(&req, &manifest))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpireQuery {
    before: String,
}

pub(crate) async fn expire(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    state.ensure_ready()?;
    let name: DatasetName = name_of(&req)?;
    let query: ExpireQuery = query(&req)?;
    let before = query
        .before
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            Error::InvalidRequest(format!(
                "before {:?} is not a whole number of at least 1",
                query.before
            ))
        })?;
    let result = state
        .catalog
        .expire(&name, before)
        .await
        .map_err(Error::from);
    let outcome = result.as_ref().map_or_else(Error::code, |_| "expired");
    tracing::info!(credential = %caller(&req), method = "DELETE", dataset = %name, before, outcome, "audit");
    result?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    after: Option<String>,
    limit: Option<String>,
    wait: Option<String>,
}

#[derive(Serialize)]
struct ChangesResponse {
    changes: Vec<FeedChange>,
    next_after: u64,
}

/// One change as a CloudEvents 1.0 event (structured JSON).
#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: String,
    source: &'static str,
    #[serde(rename = "type")]
    kind: String,
    subject: &'a str,
    time: String,
    datacontenttype: &'static str,
    data: &'a FeedChange,
}

fn wants_cloudevents(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(CLOUDEVENTS_BATCH))
        })
}

pub(crate) async fn changes(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    state.ensure_ready()?;
    let query: ChangesQuery = query(&req)?;
    // Sequence numbers are int64 on the wire and in storage.
    let number = |field: &str, raw: &str| {
        raw.parse::<i64>()
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "{field} {raw:?} is not a whole number from 0 to {}",
                    i64::MAX
                ))
            })
    };
    let after = query
        .after
        .as_deref()
        .map(|a| number("after", a))
        .transpose()?;
    let limit = service_kit::parse_limit(query.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(Error::InvalidRequest)?;
    let wait = query
        .wait
        .as_deref()
        .map(|w| number("wait", w))
        .transpose()?
        .unwrap_or(0);
    if wait > MAX_WAIT_SECONDS {
        return Err(Error::InvalidRequest(format!(
            "wait {wait} is more than {MAX_WAIT_SECONDS} seconds"
        )));
    }
    let page = state
        .catalog
        .changes_after(after, limit, Duration::from_secs(wait))
        .await
        .map_err(|e| Error::ChangesExpired {
            after: after.unwrap_or(0),
            horizon: e.horizon,
        })?;
    if wants_cloudevents(&req) {
        let events: Vec<CloudEvent<'_>> = page
            .changes
            .iter()
            .map(|c| CloudEvent {
                specversion: "1.0",
                id: c.seq.to_string(),
                source: "catalogd",
                kind: format!("dataset.{}", c.kind),
                subject: c.name.as_str(),
                time: c.at.to_string(),
                datacontenttype: "application/json",
                data: c,
            })
            .collect();
        let body = serde_json::to_vec(&events)
            .map_err(|e| Error::InvalidRequest(format!("cannot encode the changes: {e}")))?;
        return Ok(HttpResponse::Ok()
            .content_type(CLOUDEVENTS_BATCH)
            .insert_header(("x-next-after", page.next_after.to_string()))
            .body(body));
    }
    Ok(HttpResponse::Ok().json(ChangesResponse {
        changes: page.changes,
        next_after: page.next_after,
    }))
}
