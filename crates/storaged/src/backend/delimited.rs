//! Listing with a delimiter: keys that contain the delimiter after the prefix are rolled up
//! into one common prefix each (S3's `CommonPrefixes`), so a listing of `lake/` shows
//! `lake/orders/` once however many objects lie beneath it.

use manifest_codec::key::MAX_KEY_LEN;

use super::{Backend, ObjectMeta, StorageError};

/// One entry of a delimited listing, in key byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// An object directly under the prefix.
    Object(ObjectMeta),
    /// A common prefix: the prefix, the rest of a key up to and including the delimiter.
    Prefix(String),
}

impl Listed {
    /// The key or common prefix: what a continuation resumes after.
    pub fn position(&self) -> &str {
        match self {
            Self::Object(m) => m.key.as_str(),
            Self::Prefix(p) => p,
        }
    }
}

/// One page of a delimited listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelimitedPage {
    /// Objects and common prefixes, merged in byte order, at most `limit` in all.
    pub entries: Vec<Listed>,
    /// True when more entries follow the last one.
    pub is_truncated: bool,
}

/// A string greater than every valid key that starts with `prefix` (keys are at most
/// [`MAX_KEY_LEN`] bytes, and no character sorts after U+10FFFF), so listing after it
/// skips everything under a common prefix in one seek.
fn past(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + MAX_KEY_LEN + 4);
    s.push_str(prefix);
    s.extend(std::iter::repeat_n('\u{10FFFF}', MAX_KEY_LEN / 4 + 1));
    s
}

/// The common prefix `key` rolls up into, if it has `delimiter` after `prefix`.
fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: &str) -> Option<&'k str> {
    let rest = key.get(prefix.len()..)?;
    rest.find(delimiter)
        .map(|i| &key[..prefix.len() + i + delimiter.len()])
}

/// Entries under `prefix` strictly after `after` (a key or a common prefix this listing
/// returned), at most `limit`.
pub async fn list_delimited(
    backend: &dyn Backend,
    prefix: &str,
    delimiter: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<DelimitedPage, StorageError> {
    let mut cursor = after.map(|a| match common_prefix(a, prefix, delimiter) {
        Some(cp) if cp == a => past(a),
        _ => a.to_owned(),
    });
    let mut entries: Vec<Listed> = Vec::new();
    loop {
        let page = backend
            .list(prefix, cursor.as_deref(), limit.max(1))
            .await?;
        let mut last_prefix: Option<String> = None;
        for meta in page.objects {
            if let Some(cp) = &last_prefix {
                if meta.key.as_str().starts_with(cp.as_str()) {
                    continue;
                }
            }
            if entries.len() == limit {
                return Ok(DelimitedPage {
                    entries,
                    is_truncated: true,
                });
            }
            if let Some(cp) = common_prefix(meta.key.as_str(), prefix, delimiter) {
                let cp = cp.to_owned();
                entries.push(Listed::Prefix(cp.clone()));
                cursor = Some(past(&cp));
                last_prefix = Some(cp);
            } else {
                cursor = Some(meta.key.as_str().to_owned());
                entries.push(Listed::Object(meta));
            }
        }
        if !page.is_truncated {
            return Ok(DelimitedPage {
                entries,
                is_truncated: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use manifest_codec::ObjectKey;

    use super::super::conformance::body;
    use super::super::{Condition, Memory};
    use super::*;

    async fn with_keys(keys: &[&str]) -> Memory {
        let m = Memory::new();
        for k in keys {
            m.put(&ObjectKey::parse(k).unwrap(), Condition::None, body("x"))
                .await
                .unwrap();
        }
        m
    }

    fn positions(page: &DelimitedPage) -> Vec<&str> {
        page.entries.iter().map(Listed::position).collect()
    }

    #[tokio::test]
    async fn rolls_up_and_paginates_objects_and_prefixes_together() {
        let m = with_keys(&[
            "lake/a.parquet",
            "lake/orders/2024/p0",
            "lake/orders/2024/p1",
            "lake/orders/p0",
            "lake/orders\u{1f600}/x",
            "lake/z",
            "other/x",
        ])
        .await;
        let all = list_delimited(&m, "lake/", "/", None, 100).await.unwrap();
        assert_eq!(
            positions(&all),
            [
                "lake/a.parquet",
                "lake/orders/",
                "lake/orders\u{1f600}/",
                "lake/z"
            ]
        );
        assert!(!all.is_truncated);
        assert!(matches!(&all.entries[1], Listed::Prefix(_)));

        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = list_delimited(&m, "lake/", "/", after.as_deref(), 1)
                .await
                .unwrap();
            seen.extend(positions(&page).iter().map(|s| (*s).to_owned()));
            after = page.entries.last().map(|e| e.position().to_owned());
            if !page.is_truncated {
                break;
            }
        }
        assert_eq!(seen, positions(&all));

        let deeper = list_delimited(&m, "lake/orders/", "/", None, 100)
            .await
            .unwrap();
        assert_eq!(positions(&deeper), ["lake/orders/2024/", "lake/orders/p0"]);
        let top = list_delimited(&m, "", "/", None, 100).await.unwrap();
        assert_eq!(positions(&top), ["lake/", "other/"]);
    }
}
