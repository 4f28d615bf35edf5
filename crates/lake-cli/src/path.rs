//! Remote paths: `s3://<bucket>/<key>`, the names of storaged's S3 face. Bucket `lake` and
//! key `orders/part-0.parquet` are storaged's native key `lake/orders/part-0.parquet`.

use std::fmt;

use crate::error::{LakeError, Result};

const SCHEME: &str = "s3://";

/// A remote path: a bucket and a key or key prefix (possibly empty) within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePath {
    bucket: String,
    rest: String,
}

impl RemotePath {
    /// Parses `s3://bucket[/key]`. The bucket follows S3's naming rules (3–63 of
    /// `a-z 0-9 . -`, starting and ending with a letter or digit), which also keeps the
    /// catalog's own `_catalog/` area out of reach.
    pub fn parse(s: &str) -> Result<Self> {
        let Some(path) = s.strip_prefix(SCHEME) else {
            return Err(LakeError::Usage(format!(
                "{s:?} is not a remote path: remote paths look like s3://<bucket>/<key>"
            )));
        };
        let (bucket, rest) = path.split_once('/').unwrap_or((path, ""));
        check_bucket(bucket).map_err(|why| {
            LakeError::Usage(format!("{s:?}: bucket {bucket:?} is not valid: {why}"))
        })?;
        Ok(Self {
            bucket: bucket.to_owned(),
            rest: rest.to_owned(),
        })
    }

    /// A path under the bucket from its native key (`lake/a/b` → `s3://lake/a/b`).
    pub fn from_native(key: &str) -> Self {
        let (bucket, rest) = key.split_once('/').unwrap_or((key, ""));
        Self {
            bucket: bucket.to_owned(),
            rest: rest.to_owned(),
        }
    }

    /// The native key or prefix: `bucket/rest`.
    pub fn native(&self) -> String {
        format!("{}/{}", self.bucket, self.rest)
    }

    /// The native prefix of everything "in" this path as a directory (ends with `/`).
    pub fn native_dir(&self) -> String {
        let n = self.native();
        if n.ends_with('/') {
            n
        } else {
            format!("{n}/")
        }
    }

    /// Whether the path names a prefix (`s3://lake/`, `s3://lake/orders/`), not a key.
    pub fn is_dir(&self) -> bool {
        self.rest.is_empty() || self.rest.ends_with('/')
    }

    /// The last segment of the key (a file name), if any.
    pub fn file_name(&self) -> Option<&str> {
        self.rest.rsplit('/').next().filter(|s| !s.is_empty())
    }

    /// This path as a directory, joined with a relative `/`-separated path.
    #[must_use]
    pub fn join(&self, relative: &str) -> Self {
        let mut rest = self.rest.clone();
        if !rest.is_empty() && !rest.ends_with('/') {
            rest.push('/');
        }
        rest.push_str(relative);
        Self {
            bucket: self.bucket.clone(),
            rest,
        }
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.bucket, self.rest)
    }
}

/// Whether `s` looks like a remote path.
pub fn is_remote(s: &str) -> bool {
    s.starts_with(SCHEME)
}

/// S3's bucket naming rules, briefly.
pub fn check_bucket(b: &str) -> std::result::Result<(), &'static str> {
    if !(3..=63).contains(&b.len()) {
        return Err("a bucket name is 3 to 63 characters");
    }
    if !b
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
    {
        return Err("use lowercase letters, digits, '.' and '-'");
    }
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !edge(b.as_bytes()[0]) || !edge(b.as_bytes()[b.len() - 1]) {
        return Err("a bucket name starts and ends with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_native_keys_both_ways() {
        let p = RemotePath::parse("s3://lake/orders/part-0.parquet").unwrap();
        assert_eq!(p.native(), "lake/orders/part-0.parquet");
        assert_eq!(p.file_name(), Some("part-0.parquet"));
        assert!(!p.is_dir());
        assert_eq!(RemotePath::from_native(&p.native()), p);
        assert_eq!(p.to_string(), "s3://lake/orders/part-0.parquet");

        let d = RemotePath::parse("s3://lake").unwrap();
        assert!(d.is_dir());
        assert_eq!(d.native_dir(), "lake/");
        assert_eq!(d.join("a b/c.parquet").native(), "lake/a b/c.parquet");
        let o = RemotePath::parse("s3://lake/orders").unwrap();
        assert_eq!(o.native_dir(), "lake/orders/");
        assert_eq!(o.join("x").native(), "lake/orders/x");
    }

    #[test]
    fn bad_paths_are_usage_errors_that_say_why() {
        for bad in [
            "lake/x",
            "s3://",
            "s3://_catalog/x",
            "s3://AB/x",
            "s3://ab",
            "s3://-ab/x",
        ] {
            let err = RemotePath::parse(bad).unwrap_err();
            assert!(matches!(err, LakeError::Usage(_)), "{bad}");
            assert_eq!(err.exit_code(), 2);
        }
    }
}
