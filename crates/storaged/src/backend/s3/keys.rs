//! Where a key lives in the bucket, and what a stored name and ETag mean to storaged.
//!
//! A key's segments become `object_store` path parts under the configured prefix. Parts
//! escape a few characters (`%`, `~`, `#`, `*`, `?`, brackets, braces and the like) as
//! `%XX`, so a key holding one is stored under its escaped name; every other key is stored
//! under exactly its own name. A directory marker (`a/b/`) is stored as `a/b/%2F`, since
//! `object_store` paths cannot end with `/`. Stored names that do not map back to a valid
//! key (storaged's own staging area `%2E/`, names written by other tools) are not objects.

use manifest_codec::ObjectKey;
use object_store::path::{Path, PathPart};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::backend::{ETag, S3Tag};

/// What `object_store` escapes in a path part (its `INVALID` set, plus the delimiter).
const ESCAPED: &AsciiSet = &CONTROLS
    .add(b'/')
    .add(b'\\')
    .add(b'{')
    .add(b'^')
    .add(b'}')
    .add(b'%')
    .add(b'`')
    .add(b']')
    .add(b'"')
    .add(b'>')
    .add(b'[')
    .add(b'~')
    .add(b'<')
    .add(b'#')
    .add(b'|')
    .add(b'*')
    .add(b'?');

/// The stored name of a directory marker's last part.
const MARKER: &str = "/";

/// Maps keys to paths under a prefix and back.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    /// The prefix's parts, already escaped; empty for the bucket's root.
    prefix: Vec<PathPart<'static>>,
}

impl Layout {
    /// Objects live under `prefix` (`/`-separated; leading and trailing `/` ignored).
    pub(super) fn new(prefix: &str) -> Self {
        let prefix = prefix
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| PathPart::from(s.to_owned()))
            .collect();
        Self { prefix }
    }

    /// The path of `key`.
    pub(super) fn path(&self, key: &ObjectKey) -> Path {
        let text = key.as_str();
        let (body, marker) = match text.strip_suffix('/') {
            Some(body) => (body, true),
            None => (text, false),
        };
        let parts = self
            .prefix
            .iter()
            .cloned()
            .chain(body.split('/').map(|s| PathPart::from(s.to_owned())))
            .chain(marker.then(|| PathPart::from(MARKER)));
        parts.collect()
    }

    /// A scratch path outside every key's namespace (its first part stores as `%2E`, which
    /// no key can have), for staging and the start-up probe.
    pub(super) fn scratch(&self, name: &str) -> Path {
        let parts = self
            .prefix
            .iter()
            .cloned()
            .chain([PathPart::from("."), PathPart::from(name.to_owned())]);
        parts.collect()
    }

    /// The stored-name prefix of every key starting with `prefix` (raw, for listing).
    pub(super) fn raw_prefix(&self, prefix: &str) -> String {
        let mut out = self.root();
        out.push_str(&escape(prefix));
        out
    }

    /// The stored name of `key` as text (raw, for `start-after`).
    pub(super) fn raw_name(&self, key: &str) -> String {
        match ObjectKey::parse(key) {
            Ok(key) => self.path(&key).to_string(),
            Err(_) => self.raw_prefix(key),
        }
    }

    /// The key stored at `path`, or `None` when the name is outside the prefix or is not
    /// a valid key.
    pub(super) fn key(&self, path: &Path) -> Option<ObjectKey> {
        let mut parts = path.parts();
        for want in &self.prefix {
            if parts.next()? != *want {
                return None;
            }
        }
        let parts: Vec<_> = parts.collect();
        let mut text = String::new();
        for (i, part) in parts.iter().enumerate() {
            let decoded = percent_decode_str(part.as_ref()).decode_utf8().ok()?;
            if decoded == MARKER {
                // The marker is the last part of a key with at least one segment.
                if i == 0 || i + 1 != parts.len() {
                    return None;
                }
                text.push('/');
                return ObjectKey::parse(&text).ok();
            }
            if i > 0 {
                text.push('/');
            }
            if decoded.contains('/') {
                return None;
            }
            text.push_str(&decoded);
        }
        ObjectKey::parse(&text)
            .ok()
            .filter(|k| *path == self.path(k))
    }

    fn root(&self) -> String {
        let mut out = String::new();
        for part in &self.prefix {
            out.push_str(part.as_ref());
            out.push('/');
        }
        out
    }
}

/// `prefix` escaped as its keys' stored names are, segment by segment.
fn escape(prefix: &str) -> String {
    prefix
        .split('/')
        .map(|s| utf8_percent_encode(s, ESCAPED).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// storaged's tags for a store's ETag: an MD5-style tag (`hex` or `hex-N`) is the S3 tag
/// and its digest the native tag; any other text is hashed into a native tag and has no S3
/// tag (ADR 0016).
pub(super) fn tags(e_tag: &str) -> (ETag, Option<S3Tag>) {
    let bare = e_tag.trim_start_matches("W/").trim_matches('"');
    match S3Tag::parse(&bare.to_ascii_lowercase()) {
        Some(tag) => (ETag::from_bytes(tag.digest), Some(tag)),
        None => (ETag::of(bare.as_bytes()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> ObjectKey {
        ObjectKey::parse(k).unwrap()
    }

    #[test]
    fn keys_round_trip_through_stored_names() {
        for prefix in ["", "lake", "/lake/prod/"] {
            let layout = Layout::new(prefix);
            for k in [
                "a",
                "sales/orders/2026/11/28.parquet",
                "dir/",
                "a/b/",
                "odd/100%/~me#1?*[x]",
                "date=2026-11-30/part 0.parquet",
                "_catalog/datasets/a.parquet",
            ] {
                let path = layout.path(&key(k));
                assert_eq!(
                    layout.key(&path),
                    Some(key(k)),
                    "{prefix:?} {k:?} -> {path}"
                );
                let stored = Path::parse(path.as_ref()).unwrap();
                assert_eq!(layout.key(&stored), Some(key(k)));
            }
        }
    }

    #[test]
    fn plain_keys_are_stored_under_their_own_names() {
        let layout = Layout::new("lake/");
        assert_eq!(
            layout.path(&key("sales/2026/x.parquet")).as_ref(),
            "lake/sales/2026/x.parquet"
        );
        assert_eq!(layout.path(&key("sales/")).as_ref(), "lake/sales/%2F");
        assert_eq!(layout.raw_prefix("sales/20"), "lake/sales/20");
        assert_eq!(layout.raw_prefix("odd/~"), "lake/odd/%7E");
        assert!(layout
            .path(&key("odd/~x"))
            .as_ref()
            .starts_with(&layout.raw_prefix("odd/~")));
    }

    #[test]
    fn names_that_are_not_keys_are_not_objects() {
        let layout = Layout::new("lake");
        assert_eq!(layout.key(&layout.scratch("probe")), None);
        assert_eq!(layout.key(&Path::from("other/a")), None);
        assert_eq!(layout.key(&Path::from("lake")), None);
        assert_eq!(layout.key(&Path::parse("lake/%2F").unwrap()), None);
        assert_eq!(layout.key(&Path::parse("lake/a/%2F/b").unwrap()), None);
    }

    #[test]
    fn store_etags_become_tags() {
        let md5 = "0c62823571cff39c8dddcc6a74e2569f";
        let (etag, s3) = tags(&format!("\"{md5}\""));
        assert_eq!(
            (etag.to_string(), s3.map(|t| t.to_string())),
            (md5.to_owned(), Some(md5.to_owned()))
        );
        let (_, s3) = tags(&format!("\"{md5}-2\""));
        assert_eq!(s3.map(|t| t.parts), Some(2));
        let (opaque, s3) = tags("\"v7:abc\"");
        assert_eq!((opaque, s3), (ETag::of(b"v7:abc"), None));
    }
}
