//! storaged's attributes as the store's headers (`Content-Type`, …, `x-amz-meta-*`).

use object_store::{Attribute, AttributeValue, Attributes as StoreAttributes};

use crate::backend::Attributes;

/// What S3 answers as the Content-Type of an object stored without one.
const STORE_DEFAULT_TYPE: &str = "binary/octet-stream";

/// The store's form of `attrs`.
pub(super) fn to_store(attrs: &Attributes) -> StoreAttributes {
    let mut out = StoreAttributes::new();
    let fields = [
        (Attribute::ContentType, &attrs.content_type),
        (Attribute::ContentEncoding, &attrs.content_encoding),
        (Attribute::CacheControl, &attrs.cache_control),
        (Attribute::ContentDisposition, &attrs.content_disposition),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            out.insert(name, AttributeValue::from(value.clone()));
        }
    }
    for (name, value) in &attrs.metadata {
        out.insert(
            Attribute::Metadata(name.clone().into()),
            AttributeValue::from(value.clone()),
        );
    }
    out
}

/// storaged's form of what the store returned; attributes storaged does not keep
/// (`Content-Language`, storage class) are dropped, and so is the Content-Type S3 gives an
/// object written without one (`binary/octet-stream`).
pub(super) fn from_store(attrs: &StoreAttributes) -> Attributes {
    let mut out = Attributes::default();
    for (name, value) in attrs {
        let value = value.as_ref().to_owned();
        match name {
            Attribute::ContentType if value == STORE_DEFAULT_TYPE => {}
            Attribute::ContentType => out.content_type = Some(value),
            Attribute::ContentEncoding => out.content_encoding = Some(value),
            Attribute::CacheControl => out.cache_control = Some(value),
            Attribute::ContentDisposition => out.content_disposition = Some(value),
            Attribute::Metadata(name) => {
                out.metadata.insert(name.to_string(), value);
            }
            _ => {}
        }
    }
    out
}
