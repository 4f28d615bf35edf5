//! Register bodies: JSON only, within `max_body_size`, never stalled forever.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use bytes::BytesMut;
use futures_util::StreamExt;

use crate::Error;

/// A body that sends nothing for this long is abandoned.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the whole JSON body of `req`, refusing other media types, any content encoding,
/// and bodies over `limit` bytes (by `Content-Length` before reading, or while reading).
pub(crate) async fn read_json(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: u64,
) -> Result<BytesMut, Error> {
    if let Some(value) = req.headers().get(header::CONTENT_TYPE) {
        let essence = value
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(Error::UnsupportedMediaType(format!(
                "Content-Type must be application/json, got {:?}",
                String::from_utf8_lossy(value.as_bytes())
            )));
        }
    }
    if let Some(value) = req.headers().get(header::CONTENT_ENCODING) {
        if !value.as_bytes().eq_ignore_ascii_case(b"identity") {
            return Err(Error::UnsupportedMediaType(
                "Content-Encoding is not supported; send the JSON uncompressed".into(),
            ));
        }
    }
    let declared = match req.headers().get(header::CONTENT_LENGTH) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| Error::InvalidRequest("Content-Length is not a number".into()))?,
        ),
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(Error::PayloadTooLarge { limit });
    }
    let capacity = usize::try_from(declared.unwrap_or(0).min(limit)).unwrap_or(0);
    let mut body = BytesMut::with_capacity(capacity);
    loop {
        let chunk = match tokio::time::timeout(BODY_IDLE_TIMEOUT, payload.next()).await {
            Err(_) => {
                return Err(Error::InvalidRequest(format!(
                    "request body idle for more than {BODY_IDLE_TIMEOUT:?}"
                )))
            }
            Ok(None) => return Ok(body),
            Ok(Some(chunk)) => {
                chunk.map_err(|e| Error::InvalidRequest(format!("request body unreadable: {e}")))?
            }
        };
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(Error::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
}
