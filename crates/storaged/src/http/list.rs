//! `GET /v1/objects`: sorted, paginated listing.

use actix_web::{web, HttpRequest, HttpResponse};
use manifest_codec::ObjectKey;
use serde::{Deserialize, Serialize};

use super::auth::Access;
use super::AppState;
use crate::backend::{list_delimited, Listed, ObjectMeta};
use crate::Error;

const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    prefix: Option<String>,
    start_after: Option<String>,
    continuation_token: Option<String>,
    limit: Option<String>,
    delimiter: Option<String>,
}

#[derive(Serialize)]
struct ListedObject<'a> {
    key: &'a str,
    size: u64,
    etag: String,
    last_modified: String,
}

#[derive(Serialize)]
struct ListResponse<'a> {
    objects: Vec<ListedObject<'a>>,
    /// Present only when the request had a delimiter.
    #[serde(skip_serializing_if = "Option::is_none")]
    common_prefixes: Option<Vec<&'a str>>,
    is_truncated: bool,
    next_continuation_token: Option<String>,
}

/// A continuation token names the last key or common prefix returned: a key, or a prefix
/// of one (a common prefix such as `lake/orders/` is not itself a valid key).
fn decode_token(token: &str) -> Result<String, Error> {
    let prefix_of_a_key = |s: &String| {
        !s.is_empty() && (ObjectKey::parse(s).is_ok() || ObjectKey::parse(&format!("{s}x")).is_ok())
    };
    service_kit::decode_page_token(token)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(prefix_of_a_key)
        .ok_or_else(|| {
            Error::InvalidRequest("continuation_token is not one this server issued".into())
        })
}

pub(crate) async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Error> {
    let query = web::Query::<ListQuery>::from_query(req.query_string());
    let asked = query
        .as_ref()
        .ok()
        .and_then(|q| q.prefix.clone())
        .unwrap_or_default();
    let authorized = state.authorize(&req, Access::List(&asked))?;
    let query = query
        .map_err(|e| Error::InvalidRequest(format!("invalid query: {e}")))?
        .into_inner();
    let limit = service_kit::parse_limit(query.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)
        .map_err(Error::InvalidRequest)?;
    let prefix = query.prefix.unwrap_or_default();
    if prefix.len() > manifest_codec::key::MAX_KEY_LEN {
        return Err(Error::InvalidRequest(
            "prefix is longer than 1024 bytes".into(),
        ));
    }
    let token = query
        .continuation_token
        .as_deref()
        .map(decode_token)
        .transpose()?;
    let after = token.as_deref().or(query.start_after.as_deref());
    let last_modified =
        |m: &ObjectMeta| humantime::format_rfc3339_micros(m.last_modified).to_string();
    let delimiter = query.delimiter.filter(|d| !d.is_empty());
    let Some(delimiter) = delimiter else {
        let page = state.backend.list(&prefix, after, limit).await?;
        let next_continuation_token = page
            .is_truncated
            .then(|| {
                page.objects
                    .last()
                    .map(|m| service_kit::encode_page_token(m.key.as_str()))
            })
            .flatten();
        let objects = page
            .objects
            .iter()
            .filter(|m| authorized.visibility.shows(m.key.as_str()))
            .map(|m| ListedObject {
                key: m.key.as_str(),
                size: m.size,
                etag: m.etag.to_string(),
                last_modified: last_modified(m),
            })
            .collect();
        return Ok(HttpResponse::Ok().json(ListResponse {
            objects,
            common_prefixes: None,
            is_truncated: page.is_truncated,
            next_continuation_token,
        }));
    };
    if delimiter.len() > manifest_codec::key::MAX_KEY_LEN {
        return Err(Error::InvalidRequest(
            "delimiter is longer than 1024 bytes".into(),
        ));
    }
    let page = list_delimited(state.backend.as_ref(), &prefix, &delimiter, after, limit).await?;
    let next_continuation_token = page
        .is_truncated
        .then(|| {
            page.entries
                .last()
                .map(|e| service_kit::encode_page_token(e.position()))
        })
        .flatten();
    let mut objects = Vec::new();
    let mut common_prefixes = Vec::new();
    for entry in &page.entries {
        if !authorized.visibility.shows(entry.position()) {
            continue;
        }
        match entry {
            Listed::Object(m) => objects.push(ListedObject {
                key: m.key.as_str(),
                size: m.size,
                etag: m.etag.to_string(),
                last_modified: last_modified(m),
            }),
            Listed::Prefix(p) => common_prefixes.push(p.as_str()),
        }
    }
    Ok(HttpResponse::Ok().json(ListResponse {
        objects,
        common_prefixes: Some(common_prefixes),
        is_truncated: page.is_truncated,
        next_continuation_token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_rejected() {
        let key = "a/caf\u{e9}/\u{1f600}";
        assert_eq!(
            decode_token(&service_kit::encode_page_token(key)).unwrap(),
            key
        );
        assert_eq!(
            decode_token(&service_kit::encode_page_token("lake/orders/")).unwrap(),
            "lake/orders/"
        );
        for garbage in ["zz", "abc", "", "2f61", "2f", "\u{e9}\u{e9}", "c0af"] {
            assert!(decode_token(garbage).is_err(), "{garbage:?}");
        }
    }
}
