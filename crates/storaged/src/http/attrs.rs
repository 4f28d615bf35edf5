//! Object attributes on the native API: the same headers as on the S3 face
//! (`Content-Type`, `Content-Encoding`, `Cache-Control`, `Content-Disposition`,
//! `x-amz-meta-*`), stored by PUT and sent back by GET and HEAD.

use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::HttpResponseBuilder;

use crate::backend::Attributes;
use crate::Error;

const USER_PREFIX: &str = "x-amz-meta-";
/// Largest total of user metadata names and values, as on S3.
const MAX_USER_METADATA: usize = 2048;

fn text(headers: &HeaderMap, name: &HeaderName) -> Result<Option<String>, Error> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| Error::InvalidRequest(format!("{name} is not visible ASCII")))
        })
        .transpose()
}

/// The attributes a PUT's headers ask to store.
pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Attributes, Error> {
    let mut metadata = std::collections::BTreeMap::new();
    for (name, value) in headers {
        if let Some(user) = name.as_str().strip_prefix(USER_PREFIX) {
            let value = value
                .to_str()
                .map_err(|_| Error::InvalidRequest(format!("{name} is not visible ASCII")))?;
            metadata.insert(user.to_owned(), value.to_owned());
        }
    }
    let size: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_USER_METADATA {
        return Err(Error::InvalidRequest(format!(
            "x-amz-meta-* headers hold {size} bytes; at most {MAX_USER_METADATA} are kept"
        )));
    }
    Ok(Attributes {
        content_type: text(headers, &header::CONTENT_TYPE)?,
        content_encoding: text(headers, &header::CONTENT_ENCODING)?,
        cache_control: text(headers, &header::CACHE_CONTROL)?,
        content_disposition: text(headers, &header::CONTENT_DISPOSITION)?,
        metadata,
    })
}

/// Adds `attrs` to a GET or HEAD response (`application/octet-stream` when no
/// Content-Type was stored).
pub(crate) fn apply(builder: &mut HttpResponseBuilder, attrs: &Attributes) {
    builder.content_type(
        attrs
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
    );
    let optional = [
        (header::CONTENT_ENCODING, &attrs.content_encoding),
        (header::CACHE_CONTROL, &attrs.cache_control),
        (header::CONTENT_DISPOSITION, &attrs.content_disposition),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            builder.insert_header((name, value.as_str()));
        }
    }
    for (name, value) in &attrs.metadata {
        builder.insert_header((format!("{USER_PREFIX}{name}"), value.as_str()));
    }
}
