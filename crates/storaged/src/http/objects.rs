//! `/v1/objects/{key}`: PUT, GET, HEAD, DELETE.

use actix_web::body::SizedStream;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use futures_util::StreamExt;
use manifest_codec::ObjectKey;
use serde::Serialize;

use super::auth::{Access, Caller};
use super::conditions::{byte_range, delete_condition, put_condition, tag_list};
use super::{body, AppState};
use crate::backend::{NewObject, ObjectMeta};
use crate::Error;

const PREFIX: &str = "/v1/objects/";

/// The key is the rest of the raw path, percent-decoded, so `%2F` is a `/` and an encoded
/// `..` is still `..` (and rejected).
fn key_of(req: &HttpRequest) -> Result<ObjectKey, Error> {
    let raw = req.uri().path().strip_prefix(PREFIX).unwrap_or_default();
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    Ok(ObjectKey::parse_bytes(&bytes)?)
}

/// The key of `req` and the access it asks for, checked: a key that does not parse is
/// still authorized (as the empty key) first, so an unauthenticated client learns nothing.
fn authorized_key(
    state: &AppState,
    req: &HttpRequest,
    write: bool,
) -> Result<(ObjectKey, Caller), Error> {
    let key = key_of(req);
    let text = key.as_ref().map_or("", ObjectKey::as_str);
    let access = if write {
        Access::Write(text)
    } else {
        Access::Read(text)
    };
    let authorized = state.authorize(req, access)?;
    Ok((key?, authorized.caller))
}

/// The audit trail: one line per write or delete that passed authorization, whatever
/// its outcome.
fn audit(caller: &Caller, method: &str, key: &ObjectKey, outcome: &str, etag: Option<&str>) {
    tracing::info!(
        credential = caller.name(),
        method,
        key = key.as_str(),
        outcome,
        etag = etag.unwrap_or("-"),
        "audit"
    );
}

fn quoted(meta: &ObjectMeta) -> String {
    format!("\"{}\"", meta.etag)
}

#[derive(Serialize)]
struct PutResponse<'a> {
    key: &'a str,
    size: u64,
    etag: String,
}

pub(crate) async fn put(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let (key, caller) = authorized_key(&state, &req, true)?;
    let condition = put_condition(req.headers(), key.as_str())?;
    let attrs = super::attrs::from_headers(req.headers())?;
    let limit = state.max_object_size;
    if let Some(length) = req.headers().get(header::CONTENT_LENGTH) {
        let length: u64 = length
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::InvalidRequest("Content-Length is not a number".into()))?;
        if length > limit {
            return Err(Error::PayloadTooLarge { limit });
        }
    }
    let body = body::limited(
        payload,
        limit,
        state.body_idle_timeout,
        state.metrics.bytes_in.clone(),
    )
    .await;
    let new = NewObject {
        condition,
        attrs,
        s3_tag: None,
    };
    let outcome = match state.backend.write(&key, new, body).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let e = Error::from(e);
            audit(&caller, "PUT", &key, e.code(), None);
            return Err(e);
        }
    };
    let created = if outcome.created {
        "created"
    } else {
        "replaced"
    };
    let etag = outcome.meta.etag.to_string();
    audit(&caller, "PUT", &key, created, Some(&etag));
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status)
        .insert_header((header::ETAG, quoted(&outcome.meta)))
        .json(PutResponse {
            key: outcome.meta.key.as_str(),
            size: outcome.meta.size,
            etag: outcome.meta.etag.to_string(),
        }))
}

pub(crate) async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    read(state, req, true).await
}

pub(crate) async fn head(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    read(state, req, false).await
}

async fn read(
    state: web::Data<AppState>,
    req: HttpRequest,
    with_body: bool,
) -> Result<HttpResponse, Error> {
    let (key, _caller) = authorized_key(&state, &req, false)?;
    let object = state.backend.get(&key).await?;
    let meta = object.meta.clone();
    let headers = req.headers();
    if let Some(list) = tag_list(headers, &header::IF_MATCH)? {
        if !list.matches(meta.etag) {
            return Err(Error::PreconditionFailed {
                key: key.to_string(),
            });
        }
    }
    let response = |status| {
        let mut builder = HttpResponseBuilder::new(status);
        builder
            .insert_header((header::ETAG, quoted(&meta)))
            .insert_header((
                header::LAST_MODIFIED,
                httpdate::fmt_http_date(meta.last_modified),
            ))
            .insert_header((header::ACCEPT_RANGES, "bytes"));
        builder
    };
    if let Some(list) = tag_list(headers, &header::IF_NONE_MATCH)? {
        if list.matches(meta.etag) {
            return Ok(response(StatusCode::NOT_MODIFIED).finish());
        }
    }
    let (status, start, len) = match byte_range(headers, meta.size)? {
        Some((start, len)) => (StatusCode::PARTIAL_CONTENT, start, len),
        None => (StatusCode::OK, 0, meta.size),
    };
    let mut builder = response(status);
    super::attrs::apply(&mut builder, &object.attrs);
    if status == StatusCode::PARTIAL_CONTENT {
        builder.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", start + len - 1, meta.size),
        ));
    }
    if !with_body {
        let empty = futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
        return Ok(builder.body(SizedStream::new(len, empty)));
    }
    let bytes_out = state.metrics.bytes_out.clone();
    let stream = object.stream(start, len).inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            bytes_out.inc_by(chunk.len() as u64);
        }
    });
    Ok(builder.body(SizedStream::new(len, stream)))
}

pub(crate) async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    let (key, caller) = authorized_key(&state, &req, true)?;
    let condition = delete_condition(req.headers(), key.as_str())?;
    if let Err(e) = state.backend.delete(&key, condition).await {
        let e = Error::from(e);
        audit(&caller, "DELETE", &key, e.code(), None);
        return Err(e);
    }
    audit(&caller, "DELETE", &key, "deleted", None);
    Ok(HttpResponse::NoContent().finish())
}
