//! Upload bodies: enforce the size limit and the idle timeout while streaming.

use std::time::Duration;

use actix_web::web;
use futures_util::StreamExt;
use prometheus::IntCounter;

use crate::backend::{Body, BodyError};

/// Wraps the request payload so it ends with an error once it exceeds `limit` bytes or
/// sends nothing for `idle`. actix-web times out slow request heads, not slow bodies.
pub(crate) fn limited(
    payload: web::Payload,
    limit: u64,
    idle: Duration,
    bytes_in: IntCounter,
) -> Body {
    futures_util::stream::unfold(Some((payload, 0_u64)), move |state| {
        let bytes_in = bytes_in.clone();
        async move {
            let (mut payload, seen) = state?;
            match tokio::time::timeout(idle, payload.next()).await {
                Err(_) => Some((Err(BodyError::IdleTimeout(idle)), None)),
                Ok(None) => None,
                Ok(Some(Err(e))) => Some((Err(BodyError::Aborted(e.to_string())), None)),
                Ok(Some(Ok(chunk))) => {
                    let seen = seen + chunk.len() as u64;
                    bytes_in.inc_by(chunk.len() as u64);
                    if seen > limit {
                        Some((Err(BodyError::TooLarge { limit }), None))
                    } else {
                        Some((Ok(chunk), Some((payload, seen))))
                    }
                }
            }
        }
    })
    .boxed_local()
}
