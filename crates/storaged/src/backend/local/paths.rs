//! Key → path: each key segment becomes a path component with `%` escaped as `%25`; the
//! last one gets the suffix `%obj`. Since an escaped segment never contains `%o`, object
//! files and directories never collide (`a` and `a/b` coexist). The key is split into
//! segments first and each is escaped separately, so a `/` can never become part of one
//! file name, and `.`/`..` segments never reach here (`ObjectKey` refuses them).

use std::path::{Path, PathBuf};

use manifest_codec::ObjectKey;

pub(super) const OBJECT_SUFFIX: &str = "%obj";
const MAX_FILE_NAME: usize = 255;
/// Escaped bytes per piece of a long segment: with `%obj` or `%+` it fits a file name.
const PIECE: usize = 250;
/// Marks a directory that holds the rest of a long segment (an escaped name never
/// contains `%+`, so it never collides with a segment's own directory).
pub(super) const CONTINUED: &str = "%+";

fn escape(segment: &str) -> String {
    segment.replace('%', "%25")
}

/// The segment an escaped file name stands for, if storaged could have written it.
pub(super) fn unescape(name: &str) -> Option<String> {
    let plain = name.replace("%25", "%");
    // Every '%' in an escaped name starts "%25"; anything else is not one of ours.
    (escape(&plain) == name).then_some(plain)
}

/// The file of `key` under `root`. Each segment becomes a path component; a segment too
/// long for one file name once escaped is split into pieces of at most
/// [`PIECE`] escaped bytes, each but the last a directory named `<piece>%+`.
pub(super) fn object_path(root: &Path, key: &ObjectKey) -> PathBuf {
    let mut path = root.to_path_buf();
    let segments: Vec<&str> = key.segments().collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let suffix = if last { OBJECT_SUFFIX } else { "" };
        let escaped = escape(segment);
        if escaped.len() + suffix.len() <= MAX_FILE_NAME {
            path.push(escaped + suffix);
            continue;
        }
        let pieces = split_escaped(segment);
        for (j, piece) in pieces.iter().enumerate() {
            if j + 1 < pieces.len() {
                path.push(format!("{piece}{CONTINUED}"));
            } else {
                path.push(format!("{piece}{suffix}"));
            }
        }
    }
    path
}

/// `segment` escaped, in pieces of at most [`PIECE`] bytes, never splitting a character
/// or an escape.
fn split_escaped(segment: &str) -> Vec<String> {
    let mut pieces = vec![String::new()];
    for ch in segment.chars() {
        let mut buf = [0; 4];
        let escaped = if ch == '%' {
            "%25"
        } else {
            ch.encode_utf8(&mut buf)
        };
        if pieces
            .last()
            .is_some_and(|p| p.len() + escaped.len() > PIECE)
        {
            pieces.push(String::new());
        }
        if let Some(p) = pieces.last_mut() {
            p.push_str(escaped);
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_keeps_files_and_dirs_apart() {
        for segment in ["a", "%", "%25", "100%obj", "x%oby", "caf\u{e9}"] {
            let escaped = escape(segment);
            assert_eq!(unescape(&escaped).as_deref(), Some(segment));
            assert!(!escaped.contains("%o"), "{escaped}");
        }
        assert_eq!(unescape("%zz"), None);
        assert_eq!(unescape("a%obj"), None);
    }

    #[test]
    fn object_paths() {
        let root = Path::new("/d/objects");
        let key = ObjectKey::parse("a/b%c/d.parquet").unwrap();
        assert_eq!(
            object_path(root, &key),
            PathBuf::from("/d/objects/a/b%25c/d.parquet%obj")
        );
        let fits = ObjectKey::parse(&"x".repeat(251)).unwrap();
        assert_eq!(
            object_path(root, &fits),
            root.join(format!("{}%obj", "x".repeat(251)))
        );
        // Longer segments are split into pieces, each fitting a file name.
        let long = ObjectKey::parse(&format!("{}/{}", "d".repeat(600), "f%".repeat(200))).unwrap();
        let path = object_path(root, &long);
        let names: Vec<String> = path
            .strip_prefix(root)
            .unwrap()
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| n.len() <= MAX_FILE_NAME), "{names:?}");
        // 600 bytes: 250 + 250 + 100; "f%" escapes to 4 bytes: 800 in 62 × 4-byte pieces.
        assert_eq!(names.len(), 3 + 4, "{names:?}");
        assert!(names[0].ends_with(CONTINUED) && names[1].ends_with(CONTINUED));
        assert_eq!(names[2], "d".repeat(100));
        assert!(names[3..6].iter().all(|n| n.ends_with(CONTINUED)));
        assert!(names[6].ends_with(OBJECT_SUFFIX));
        for name in &names[3..] {
            let piece = name
                .strip_suffix(CONTINUED)
                .or_else(|| name.strip_suffix(OBJECT_SUFFIX))
                .unwrap();
            assert!(unescape(piece).is_some(), "{piece} splits an escape");
        }
        let pieces = split_escaped(&"\u{1f600}".repeat(100));
        assert!(pieces.iter().all(|p| p.len() <= PIECE));
        assert_eq!(pieces.concat(), "\u{1f600}".repeat(100));
    }
}
