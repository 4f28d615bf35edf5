//! Upload bodies: enforce the size limit and the idle timeout while streaming, and hand the
//! backend a `Send` stream (actix's payload lives on its worker thread).

use std::time::Duration;

use actix_web::web;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use prometheus::IntCounter;

use crate::backend::{Body, BodyError};

/// A body that ends within this many bytes is read whole before the backend sees it; a
/// longer one is pumped through a channel of a few chunks, so memory stays bounded.
const READ_WHOLE: usize = 256 * 1024;

/// Wraps the request payload so it ends with an error once it exceeds `limit` bytes or
/// sends nothing for `idle`. actix-web times out slow request heads, not slow bodies.
pub(crate) async fn limited(
    payload: web::Payload,
    limit: u64,
    idle: Duration,
    bytes_in: IntCounter,
) -> Body {
    let mut reader = Reader {
        payload,
        seen: 0,
        limit,
        idle,
        bytes_in,
    };
    let mut first = BytesMut::new();
    loop {
        match reader.next().await {
            None => return futures_util::stream::once(async move { Ok(first.freeze()) }).boxed(),
            Some(Err(e)) => return futures_util::stream::once(async move { Err(e) }).boxed(),
            Some(Ok(chunk)) => {
                first.extend_from_slice(&chunk);
                if first.len() > READ_WHOLE {
                    break;
                }
            }
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, BodyError>>(4);
    actix_web::rt::spawn(async move {
        while let Some(item) = reader.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    let rest = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    futures_util::stream::once(async move { Ok(first.freeze()) })
        .chain(rest)
        .boxed()
}

struct Reader {
    payload: web::Payload,
    seen: u64,
    limit: u64,
    idle: Duration,
    bytes_in: IntCounter,
}

impl Reader {
    /// The next chunk; after an error, `None`.
    async fn next(&mut self) -> Option<Result<Bytes, BodyError>> {
        if self.seen > self.limit {
            return None;
        }
        match tokio::time::timeout(self.idle, self.payload.next()).await {
            Err(_) => {
                self.seen = u64::MAX;
                Some(Err(BodyError::IdleTimeout(self.idle)))
            }
            Ok(None) => None,
            Ok(Some(Err(e))) => {
                self.seen = u64::MAX;
                Some(Err(BodyError::Aborted(e.to_string())))
            }
            Ok(Some(Ok(chunk))) => {
                self.seen += chunk.len() as u64;
                self.bytes_in.inc_by(chunk.len() as u64);
                if self.seen > self.limit {
                    Some(Err(BodyError::TooLarge { limit: self.limit }))
                } else {
                    Some(Ok(chunk))
                }
            }
        }
    }
}
