//! Digests a client sends with a body (`Content-MD5`, one `x-amz-checksum-*` header or
//! trailer), checked against the bytes as they stream: a mismatch ends the body with an
//! error, so the backend stores nothing.

use futures_util::StreamExt;
use s3s::crypto::{Checksum, Crc32, Crc32c, Crc64Nvme, Md5, Sha1, Sha256};
use s3s::{s3_error, S3Request, S3Result, TrailingHeaders};

use super::open::Trailers;
use crate::backend::{Body, BodyError};

/// The checksum algorithms of S3's `x-amz-checksum-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

const ALGORITHMS: [(Algorithm, &str); 5] = [
    (Algorithm::Crc32, "x-amz-checksum-crc32"),
    (Algorithm::Crc32c, "x-amz-checksum-crc32c"),
    (Algorithm::Crc64Nvme, "x-amz-checksum-crc64nvme"),
    (Algorithm::Sha1, "x-amz-checksum-sha1"),
    (Algorithm::Sha256, "x-amz-checksum-sha256"),
];

impl Algorithm {
    fn of_header(name: &str) -> Option<Self> {
        ALGORITHMS
            .iter()
            .find(|(_, h)| h.eq_ignore_ascii_case(name.trim()))
            .map(|(a, _)| *a)
    }

    fn header(self) -> &'static str {
        ALGORITHMS
            .iter()
            .find(|(a, _)| *a == self)
            .map_or("", |(_, h)| h)
    }

    fn hasher(self) -> Hasher {
        match self {
            Self::Crc32 => Hasher::Crc32(Crc32::new()),
            Self::Crc32c => Hasher::Crc32c(Crc32c::new()),
            Self::Crc64Nvme => Hasher::Crc64Nvme(Crc64Nvme::new()),
            Self::Sha1 => Hasher::Sha1(Sha1::new()),
            Self::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }
}

enum Hasher {
    Crc32(Crc32),
    Crc32c(Crc32c),
    Crc64Nvme(Crc64Nvme),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(h) => h.update(data),
            Self::Crc32c(h) => h.update(data),
            Self::Crc64Nvme(h) => h.update(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    fn base64(self) -> String {
        let encode = |raw: &[u8]| base64_simd::STANDARD.encode_to_string(raw);
        match self {
            Self::Crc32(h) => encode(h.finalize().as_ref()),
            Self::Crc32c(h) => encode(h.finalize().as_ref()),
            Self::Crc64Nvme(h) => encode(h.finalize().as_ref()),
            Self::Sha1(h) => encode(h.finalize().as_ref()),
            Self::Sha256(h) => encode(h.finalize().as_ref()),
        }
    }
}

/// Where a trailing checksum arrives.
#[derive(Debug, Clone)]
enum TrailerSource {
    /// Signed `aws-chunked`, unframed by s3s.
    Signed(TrailingHeaders),
    /// Open mode, unframed by `open`.
    Open(Trailers),
}

impl TrailerSource {
    fn value(&self, header: &str) -> Option<String> {
        match self {
            Self::Signed(t) => t
                .read(|h| {
                    h.get(header)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                })
                .flatten(),
            Self::Open(t) => t.get().and_then(|h| {
                h.get(header)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            }),
        }
    }
}

/// What a request's body must match.
#[derive(Debug, Default)]
pub(super) struct Expected {
    md5: Option<[u8; 16]>,
    header: Option<(Algorithm, String)>,
    trailer: Option<(Algorithm, TrailerSource)>,
}

/// The digests `req` declares; a malformed one is `InvalidDigest` before any byte is read.
pub(super) fn expected<T>(req: &S3Request<T>) -> S3Result<Expected> {
    let headers = &req.headers;
    let md5 = match headers.get("content-md5") {
        None => None,
        Some(value) => {
            let raw = value
                .to_str()
                .ok()
                .and_then(|v| base64_simd::STANDARD.decode_to_vec(v.trim()).ok())
                .and_then(|raw| <[u8; 16]>::try_from(raw).ok())
                .ok_or_else(|| {
                    s3_error!(InvalidDigest, "Content-MD5 is not the base64 of 16 bytes")
                })?;
            Some(raw)
        }
    };
    let mut header = None;
    for (algorithm, name) in ALGORITHMS {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            if header.is_some() {
                return Err(s3_error!(
                    InvalidRequest,
                    "send one x-amz-checksum-* header, not several"
                ));
            }
            header = Some((algorithm, value.trim().to_owned()));
        }
    }
    let trailer = match headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
        None => None,
        Some(name) => {
            let algorithm = Algorithm::of_header(name).ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    "x-amz-trailer names no checksum storaged knows: {name}"
                )
            })?;
            let source = match (&req.trailing_headers, req.extensions.get::<Trailers>()) {
                (Some(signed), _) => TrailerSource::Signed(signed.clone()),
                (None, Some(open)) => TrailerSource::Open(open.clone()),
                (None, None) => {
                    return Err(s3_error!(
                        InvalidRequest,
                        "x-amz-trailer without an aws-chunked body"
                    ))
                }
            };
            Some((algorithm, source))
        }
    };
    Ok(Expected {
        md5,
        header,
        trailer,
    })
}

impl Expected {
    fn is_empty(&self) -> bool {
        self.md5.is_none() && self.header.is_none() && self.trailer.is_none()
    }
}

/// `body`, ending with [`BodyError::DigestMismatch`] instead of its end when it does not
/// match `expected`.
pub(super) fn verify(body: Body, expected: Expected) -> Body {
    if expected.is_empty() {
        return body;
    }
    let md5 = expected.md5.map(|_| Md5::new());
    let header = expected.header.as_ref().map(|(a, _)| a.hasher());
    let trailer = expected.trailer.as_ref().map(|(a, _)| a.hasher());
    let state = Some((body, md5, header, trailer, expected));
    futures_util::stream::unfold(state, |state| async move {
        let (mut body, mut md5, mut header, mut trailer, expected) = state?;
        match body.next().await {
            Some(Ok(chunk)) => {
                if let Some(h) = &mut md5 {
                    h.update(&chunk);
                }
                if let Some(h) = &mut header {
                    h.update(&chunk);
                }
                if let Some(h) = &mut trailer {
                    h.update(&chunk);
                }
                Some((Ok(chunk), Some((body, md5, header, trailer, expected))))
            }
            Some(Err(e)) => Some((Err(e), None)),
            None => check(md5, header, trailer, &expected).map(|e| (Err(e), None)),
        }
    })
    .boxed()
}

/// The mismatch, if the finished digests disagree with `expected`.
fn check(
    md5: Option<Md5>,
    header: Option<Hasher>,
    trailer: Option<Hasher>,
    expected: &Expected,
) -> Option<BodyError> {
    if let (Some(h), Some(want)) = (md5, expected.md5) {
        if h.finalize() != want {
            return Some(BodyError::DigestMismatch(
                "the Content-MD5 you specified did not match what was received".into(),
            ));
        }
    }
    if let (Some(h), Some((algorithm, want))) = (header, &expected.header) {
        if h.base64() != *want {
            return Some(BodyError::DigestMismatch(format!(
                "the {} you specified did not match what was received",
                algorithm.header()
            )));
        }
    }
    if let (Some(h), Some((algorithm, source))) = (trailer, &expected.trailer) {
        let Some(want) = source.value(algorithm.header()) else {
            return Some(BodyError::DigestMismatch(format!(
                "the trailer {} announced by x-amz-trailer never came",
                algorithm.header()
            )));
        };
        if h.base64() != want {
            return Some(BodyError::DigestMismatch(format!(
                "the trailing {} did not match what was received",
                algorithm.header()
            )));
        }
    }
    None
}
