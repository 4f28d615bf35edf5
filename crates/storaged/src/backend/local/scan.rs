//! Start-up: the data directory's lock, the sweep of leftover temporary files and the scan
//! that rebuilds the index from the object files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use manifest_codec::ObjectKey;

use super::header::open_checked;
use super::paths::{unescape, CONTINUED, OBJECT_SUFFIX};
use super::Entry;
use crate::backend::fs::{Fs, Kind};
use crate::backend::StorageError;

/// What start-up found on disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenReport {
    /// Objects indexed.
    pub objects: usize,
    /// Leftover temporary files removed.
    pub swept: usize,
    /// Files or links under `objects/` that are not objects (ignored, left in place).
    pub skipped: usize,
}

/// `dir` and those of its ancestors that do not exist yet.
pub(super) fn missing_dirs(fs: &dyn Fs, dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && matches!(fs.stat(d), Ok(None)))
        .map(Path::to_path_buf)
        .collect()
}

/// Takes the data directory's exclusive lock, or fails naming the directory when another
/// process holds it: a second storaged on the same directory would break per-key
/// atomicity and the index.
pub(super) fn lock_data_dir(
    fs: &dyn Fs,
    data_dir: &Path,
) -> Result<Box<dyn std::fmt::Debug + Send + Sync>, StorageError> {
    fs.lock(data_dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            StorageError::io(
                "locking the data directory",
                std::io::Error::other(format!(
                    "{} is in use by another storaged process",
                    data_dir.display()
                )),
            )
        } else {
            StorageError::io("locking the data directory", e)
        }
    })
}

/// Prepares the directories, sweeps `tmp/` and indexes every object under `objects/`.
pub(super) fn scan(
    fs: &dyn Fs,
    objects: &Path,
    tmp: &Path,
    segments: &Path,
) -> Result<(BTreeMap<ObjectKey, Entry>, OpenReport), StorageError> {
    fs.create_dir_all(objects)
        .map_err(|e| StorageError::io("creating the objects directory", e))?;
    fs.create_dir_all(tmp)
        .map_err(|e| StorageError::io("creating the temporary directory", e))?;
    fs.create_dir_all(segments)
        .map_err(|e| StorageError::io("creating the segment directory", e))?;
    let mut named = std::collections::HashSet::new();
    let mut report = OpenReport {
        swept: sweep(fs, tmp)?,
        ..OpenReport::default()
    };
    let mut index = BTreeMap::new();
    let mut stack = vec![(objects.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for entry in fs
            .read_dir(&dir)
            .map_err(|e| StorageError::io("reading an object directory", e))?
        {
            let path = dir.join(&entry.name);
            let Some(name) = entry.name.to_str() else {
                tracing::warn!(path = %path.display(), "skipping a file whose name is not utf-8");
                report.skipped += 1;
                continue;
            };
            if entry.kind == Kind::Dir {
                if let Some(piece) = name.strip_suffix(CONTINUED).and_then(unescape) {
                    stack.push((path, format!("{prefix}{piece}")));
                } else if let Some(segment) = unescape(name) {
                    stack.push((path, format!("{prefix}{segment}/")));
                } else {
                    tracing::warn!(path = %path.display(), "skipping a directory storaged did not create");
                    report.skipped += 1;
                }
                continue;
            }
            let parsed = (entry.kind == Kind::File)
                .then(|| name.strip_suffix(OBJECT_SUFFIX))
                .flatten()
                .and_then(unescape)
                .and_then(|segment| ObjectKey::parse(&format!("{prefix}{segment}")).ok());
            let Some(key) = parsed else {
                tracing::warn!(path = %path.display(), "skipping a file or link that is not an object");
                report.skipped += 1;
                continue;
            };
            match open_checked(fs, &path) {
                Ok((file, header)) => {
                    let last_modified = file.modified();
                    let generation = if header.segments > 0 {
                        let mut raw = [0; 8];
                        match file.read_exact_at(&mut raw, header.content_offset()) {
                            Ok(()) => Some(u64::from_le_bytes(raw)),
                            Err(e) => {
                                tracing::warn!(path = %path.display(), error = %e, "skipping an assembled object whose table cannot be read");
                                report.skipped += 1;
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    named.extend(generation);
                    index.insert(
                        key,
                        Entry {
                            size: header.size,
                            etag: header.etag,
                            s3_tag: header.s3_tag,
                            last_modified,
                            segments: generation,
                            log: None,
                        },
                    );
                    report.objects += 1;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping an object file with a bad header");
                    report.skipped += 1;
                }
            }
        }
    }
    report.swept += super::assemble::sweep_segments(fs, segments, &named)?;
    Ok((index, report))
}

/// Removes everything in `tmp` (uploads a crash interrupted); returns how many entries.
fn sweep(fs: &dyn Fs, tmp: &Path) -> Result<usize, StorageError> {
    let mut swept = 0;
    for entry in fs
        .read_dir(tmp)
        .map_err(|e| StorageError::io("reading the temporary directory", e))?
    {
        let path = tmp.join(&entry.name);
        let removed = if entry.kind == Kind::Dir {
            fs.remove_dir_all(&path)
        } else {
            fs.remove_file(&path)
        };
        removed.map_err(|e| StorageError::io("sweeping a temporary file", e))?;
        swept += 1;
    }
    Ok(swept)
}
