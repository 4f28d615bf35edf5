//! The open mode (no credentials configured): any key pair is accepted, as the native API
//! accepts any request. s3s can only check a signature it has the secret for, so here the
//! signature is taken off the request before s3s sees it, and an `aws-chunked` body (whose
//! framing s3s undoes only while checking signatures) is unframed here; its trailing
//! headers (checksums) are kept in [`Trailers`] for the operation.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH,
};

/// Query parameters of a presigned URL (SigV4, then SigV2).
const PRESIGN_PARAMS: &[&str] = &[
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-amz-signature",
    "x-amz-security-token",
    "awsaccesskeyid",
    "signature",
    "expires",
];

/// Longest chunk-size line or trailer block accepted.
const MAX_META: usize = 64 * 1024;

/// Trailing headers of an unframed `aws-chunked` body, once it has been read to the end.
#[derive(Debug, Clone, Default)]
pub(super) struct Trailers(Arc<Mutex<Option<HeaderMap>>>);

impl Trailers {
    /// The trailing headers (`None` before the body ended).
    pub(super) fn get(&self) -> Option<HeaderMap> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Takes the signature off `req` and unframes an `aws-chunked` body.
pub(super) fn unsign(req: &mut s3s::HttpRequest) {
    req.headers_mut().remove(AUTHORIZATION);
    if let Some(query) = req.uri().query() {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let name = pair.split('=').next().unwrap_or_default();
                !PRESIGN_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name))
            })
            .collect();
        if kept.len() != query.split('&').count() {
            let path_and_query = if kept.is_empty() {
                req.uri().path().to_owned()
            } else {
                format!("{}?{}", req.uri().path(), kept.join("&"))
            };
            let mut parts = req.uri().clone().into_parts();
            if let Ok(pq) = path_and_query.parse() {
                parts.path_and_query = Some(pq);
                if let Ok(uri) = hyper::Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
        }
    }
    let headers = req.headers_mut();
    let streaming = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"));
    if !streaming {
        return;
    }
    headers.insert(
        HeaderName::from_static("x-amz-content-sha256"),
        HeaderValue::from_static("UNSIGNED-PAYLOAD"),
    );
    if let Some(decoded) = headers.remove("x-amz-decoded-content-length") {
        headers.insert(CONTENT_LENGTH, decoded);
    }
    let encodings: Option<String> = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|e| !e.eq_ignore_ascii_case("aws-chunked") && !e.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        });
    headers.remove(CONTENT_ENCODING);
    if let Some(value) = encodings
        .filter(|e| !e.is_empty())
        .and_then(|e| HeaderValue::from_str(&e).ok())
    {
        headers.insert(CONTENT_ENCODING, value);
    }
    let trailers = Trailers::default();
    req.extensions_mut().insert(trailers.clone());
    let body = std::mem::take(req.body_mut());
    let unframed = Unframe {
        inner: body,
        buf: BytesMut::new(),
        state: State::Size,
        trailers,
    };
    *req.body_mut() = s3s::Body::from(Box::pin(unframed) as s3s::stream::DynByteStream);
}

enum State {
    /// Expecting `<hex size>[;extensions]\r\n`.
    Size,
    /// This many data bytes to go.
    Data(usize),
    /// Expecting the `\r\n` after a chunk's data.
    DataEnd,
    /// After the last (empty) chunk: trailer lines up to an empty line.
    Trailers,
    Done,
}

/// An `aws-chunked` body without its framing.
struct Unframe {
    inner: s3s::Body,
    buf: BytesMut,
    state: State,
    trailers: Trailers,
}

type Item = Result<Bytes, s3s::StdError>;

fn framing_error(what: &str) -> s3s::StdError {
    format!("malformed aws-chunked body: {what}").into()
}

impl Unframe {
    /// Advances over what is buffered: `Some(item)` to yield, `None` to read more.
    fn step(&mut self) -> Option<Item> {
        loop {
            match self.state {
                State::Size => {
                    let Some(end) = find_crlf(&self.buf) else {
                        return (self.buf.len() > MAX_META)
                            .then(|| Err(framing_error("chunk size line too long")));
                    };
                    let line = self.buf.split_to(end + 2);
                    let text = std::str::from_utf8(&line[..end]).unwrap_or_default();
                    let size = text.split(';').next().unwrap_or_default().trim();
                    let Ok(size) = usize::from_str_radix(size, 16) else {
                        return Some(Err(framing_error("bad chunk size")));
                    };
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if self.buf.is_empty() {
                        return None;
                    }
                    let n = left.min(self.buf.len());
                    let data = self.buf.split_to(n).freeze();
                    self.state = if n == left {
                        State::DataEnd
                    } else {
                        State::Data(left - n)
                    };
                    return Some(Ok(data));
                }
                State::DataEnd => {
                    if self.buf.len() < 2 {
                        return None;
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Some(Err(framing_error("chunk data not followed by CRLF")));
                    }
                    self.buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let Some(end) = find_crlf(&self.buf) else {
                        return (self.buf.len() > MAX_META)
                            .then(|| Err(framing_error("trailers too long")));
                    };
                    let line = self.buf.split_to(end + 2);
                    if end == 0 {
                        self.state = State::Done;
                        return None;
                    }
                    let text = String::from_utf8_lossy(&line[..end]).into_owned();
                    let Some((name, value)) = text.split_once(':') else {
                        return Some(Err(framing_error("bad trailer line")));
                    };
                    let mut trailers = self
                        .trailers
                        .0
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let map = trailers.get_or_insert_with(HeaderMap::new);
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(name.trim().as_bytes()),
                        HeaderValue::from_str(value.trim()),
                    ) {
                        map.insert(name, value);
                    }
                }
                State::Done => return None,
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

impl Stream for Unframe {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.step() {
                if item.is_err() {
                    this.state = State::Done;
                }
                return Poll::Ready(Some(item));
            }
            if matches!(this.state, State::Done) {
                let mut trailers = this
                    .trailers
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                trailers.get_or_insert_with(HeaderMap::new);
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) => this.buf.extend_from_slice(&bytes),
                Poll::Ready(Some(Err(e))) => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(framing_error("the body ended early"))));
                }
            }
        }
    }
}

impl s3s::stream::ByteStream for Unframe {}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn unframe(body: &'static [u8]) -> (Result<Vec<u8>, String>, Option<HeaderMap>) {
        let trailers = Trailers::default();
        let mut stream = Unframe {
            inner: s3s::Body::from(Bytes::from_static(body)),
            buf: BytesMut::new(),
            state: State::Size,
            trailers: trailers.clone(),
        };
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(e) => return (Err(e.to_string()), trailers.get()),
            }
        }
        (Ok(out), trailers.get())
    }

    #[tokio::test]
    async fn signed_and_unsigned_framing_with_trailers() {
        let (data, trailers) = unframe(
            b"5;chunk-signature=abc\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n",
        )
        .await;
        assert_eq!(data.unwrap(), b"hello world");
        assert_eq!(trailers.unwrap()["x-amz-checksum-crc32"], "AAAAAA==");
    }

    #[tokio::test]
    async fn truncated_or_malformed_bodies_fail() {
        for (body, needle) in [
            (&b"5\r\nhel"[..], "ended early"),
            (b"zz\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
            (b"5\r\nhelloXX0\r\n\r\n", "CRLF"),
            (b"5\r\nhello\r\n", "ended early"),
        ] {
            let (data, _) = unframe(body).await;
            let err = data.unwrap_err();
            assert!(err.contains(needle), "{body:?}: {err}");
        }
    }
}
