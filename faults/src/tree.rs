//! Snapshots of a directory tree, to prove that nothing changed.

use std::collections::BTreeMap;
use std::path::Path;

/// Every file, directory and link under `root` (not following links), relative to it,
/// with each file's bytes (directories and links: their kind and target), skipping the
/// subtrees in `skip`.
pub fn snapshot(root: &Path, skip: &[&Path]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.map_while(Result::ok) {
            let path = entry.path();
            if skip.iter().any(|s| path.starts_with(s)) {
                continue;
            }
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let value = if kind.is_symlink() {
                format!("link → {:?}", std::fs::read_link(&path).ok())
            } else if kind.is_dir() {
                stack.push(path);
                "dir".to_owned()
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                format!("file {} {}", bytes.len(), fnv1a(&bytes))
            };
            out.insert(name, value);
        }
    }
    out
}

/// A cheap content fingerprint (FNV-1a); enough to see that bytes changed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
