//! Conditional and range request headers.

use actix_web::http::header;
use actix_web::http::header::{HeaderMap, HeaderName};

use crate::backend::{Condition, ETag};
use crate::Error;

/// An `If-Match` / `If-None-Match` value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TagList {
    /// `*`
    Any,
    /// Strong tags in our format; `foreign` is set when some tag could never match ours.
    Tags { tags: Vec<ETag>, foreign: bool },
}

impl TagList {
    pub(crate) fn matches(&self, etag: ETag) -> bool {
        match self {
            Self::Any => true,
            Self::Tags { tags, .. } => tags.contains(&etag),
        }
    }
}

/// Parses one conditional header, if present.
pub(crate) fn tag_list(headers: &HeaderMap, name: &HeaderName) -> Result<Option<TagList>, Error> {
    let mut values = headers.get_all(name).peekable();
    if values.peek().is_none() {
        return Ok(None);
    }
    let mut tags = Vec::new();
    let mut foreign = false;
    let mut items = 0;
    for value in values {
        let value = value
            .to_str()
            .map_err(|_| Error::InvalidRequest(format!("{name} is not ASCII")))?;
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            items += 1;
            if item == "*" {
                return Ok(Some(TagList::Any));
            }
            if item.starts_with("W/") {
                foreign = true; // weak tags never match under strong comparison
                continue;
            }
            let inner = item
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .ok_or_else(|| {
                    Error::InvalidRequest(format!("{name}: {item:?} is not a quoted entity tag"))
                })?;
            match ETag::parse_hex(inner) {
                Some(tag) => tags.push(tag),
                None => foreign = true,
            }
        }
    }
    if items == 0 {
        return Err(Error::InvalidRequest(format!(
            "{name} is empty: send \"*\" or quoted entity tags"
        )));
    }
    Ok(Some(TagList::Tags { tags, foreign }))
}

/// The condition of a PUT: `If-None-Match: *` or `If-Match: *|"<etag>"`.
pub(crate) fn put_condition(headers: &HeaderMap, key: &str) -> Result<Condition, Error> {
    let if_match = tag_list(headers, &header::IF_MATCH)?;
    let if_none_match = tag_list(headers, &header::IF_NONE_MATCH)?;
    match (if_match, if_none_match) {
        (_, Some(TagList::Tags { .. })) => Err(Error::InvalidRequest(
            "on PUT, If-None-Match supports only \"*\"".into(),
        )),
        // "Exists with this tag" and "does not exist" never both hold (RFC 9110 §13.2.2
        // evaluates If-Match first, and it can only pass when the object exists).
        (Some(_), Some(TagList::Any)) => Err(Error::PreconditionFailed {
            key: key.to_owned(),
        }),
        (None, Some(TagList::Any)) => Ok(Condition::Absent),
        (Some(list), None) => write_condition(list, key),
        (None, None) => Ok(Condition::None),
    }
}

/// The condition of a DELETE: `If-Match` only.
pub(crate) fn delete_condition(headers: &HeaderMap, key: &str) -> Result<Condition, Error> {
    match tag_list(headers, &header::IF_MATCH)? {
        Some(list) => write_condition(list, key),
        None => Ok(Condition::None),
    }
}

fn write_condition(list: TagList, key: &str) -> Result<Condition, Error> {
    match list {
        TagList::Any => Ok(Condition::Exists),
        TagList::Tags { tags, .. } if tags.len() == 1 => Ok(Condition::Matches(tags[0])),
        TagList::Tags { tags, .. } if tags.is_empty() => {
            // Only tags we never issue: nothing can match.
            Err(Error::PreconditionFailed {
                key: key.to_owned(),
            })
        }
        TagList::Tags { .. } => Err(Error::InvalidRequest(
            "If-Match with several entity tags is not supported on writes".into(),
        )),
    }
}

/// A satisfiable byte range of an object of `size` bytes: `(start, len)`.
///
/// `Ok(None)` means serve the whole object: no header, a syntax this server ignores (as
/// RFC 9110 allows), or several ranges. A range that lies outside the object is
/// [`Error::RangeNotSatisfiable`].
pub(crate) fn byte_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, Error> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = || Error::RangeNotSatisfiable { size };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if first.is_empty() {
        let Some(suffix) = number(last) else {
            return Ok(None);
        };
        if suffix == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        let len = suffix.min(size);
        return Ok(Some((size - len, len)));
    }
    let Some(start) = number(first) else {
        return Ok(None);
    };
    let end = if last.is_empty() {
        None
    } else {
        match number(last) {
            Some(end) if end >= start => Some(end),
            _ => return Ok(None),
        }
    };
    if start >= size {
        return Err(unsatisfiable());
    }
    let end = end.map_or(size - 1, |e| e.min(size - 1));
    Ok(Some((start, end - start + 1)))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn headers(name: HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn ranges() {
        let r = |v: &str, size| byte_range(&headers(header::RANGE, v), size);
        assert_eq!(r("bytes=0-9", 100).unwrap(), Some((0, 10)));
        assert_eq!(r("bytes=90-", 100).unwrap(), Some((90, 10)));
        assert_eq!(r("bytes=-10", 100).unwrap(), Some((90, 10)));
        assert_eq!(r("bytes=-1000", 100).unwrap(), Some((0, 100)));
        assert_eq!(r("bytes=50-1000", 100).unwrap(), Some((50, 50)));
        assert!(matches!(
            r("bytes=100-", 100),
            Err(Error::RangeNotSatisfiable { size: 100 })
        ));
        assert!(matches!(
            r("bytes=0-", 0),
            Err(Error::RangeNotSatisfiable { .. })
        ));
        assert!(matches!(
            r("bytes=-5", 0),
            Err(Error::RangeNotSatisfiable { .. })
        ));
        assert!(matches!(
            r("bytes=-0", 10),
            Err(Error::RangeNotSatisfiable { .. })
        ));
        assert_eq!(r("bytes=5-2", 100).unwrap(), None);
        assert_eq!(r("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(r("items=0-1", 100).unwrap(), None);
        assert_eq!(r("bytes=a-b", 100).unwrap(), None);
        assert_eq!(r("bytes=+1-2", 100).unwrap(), None);
    }

    #[test]
    fn tag_lists() {
        let tag = ETag::of(b"x");
        let h = headers(header::IF_MATCH, &format!("\"{tag}\""));
        assert_eq!(put_condition(&h, "k").unwrap(), Condition::Matches(tag));
        let h = headers(header::IF_NONE_MATCH, "*");
        assert_eq!(put_condition(&h, "k").unwrap(), Condition::Absent);
        let h = headers(header::IF_MATCH, "\"not-ours\"");
        assert!(matches!(
            put_condition(&h, "k"),
            Err(Error::PreconditionFailed { .. })
        ));
        let h = headers(header::IF_MATCH, "unquoted");
        assert!(matches!(
            put_condition(&h, "k"),
            Err(Error::InvalidRequest(_))
        ));
        let h = headers(header::IF_NONE_MATCH, &format!("W/\"{tag}\", \"{tag}\""));
        let list = tag_list(&h, &header::IF_NONE_MATCH).unwrap().unwrap();
        assert!(list.matches(tag));
    }
}
