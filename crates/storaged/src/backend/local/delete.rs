//! The delete path: under the key's lock, remove the object file and fsync its directory;
//! then prune directories the delete left empty.

use std::path::Path;

use manifest_codec::ObjectKey;

use super::LocalFs;
use crate::backend::fs::Fs;
use crate::backend::{check_condition, Condition, StorageError};

impl LocalFs {
    pub(super) async fn remove(
        &self,
        key: &ObjectKey,
        condition: Condition,
    ) -> Result<(), StorageError> {
        let path = self.object_path(key);
        let _key = self.locks.lock(key).await;
        let current = self.current(key);
        check_condition(key, condition, current.map(|e| e.tags()))?;
        let Some(entry) = current else {
            return Ok(());
        };
        if entry.log.is_some() {
            return self.remove_logged(key).await;
        }
        let fsync = self.fsync.clone();
        let file = path.clone();
        let fs = self.fs.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            match fs.remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("removing an object", e)),
            }
            match file.parent() {
                Some(parent) => fsync.dir(fs.as_ref(), parent),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| StorageError::task("removing an object", e))??;
        self.index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
        if let Some(generation) = current.and_then(|c| c.segments) {
            self.drop_segments(generation).await;
        }

        // Exclusive: no put is between creating a directory and renaming into it.
        let _dirs = self.dirs.write().await;
        let root = self.objects.clone();
        let fs = self.fs.clone();
        tokio::task::spawn_blocking(move || remove_empty_parents(fs.as_ref(), &root, &path))
            .await
            .ok();
        Ok(())
    }
}

/// Removes now-empty directories from `path`'s parent up to (excluding) `root`.
fn remove_empty_parents(fs: &dyn Fs, root: &Path, path: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) {
            break;
        }
        if fs.remove_dir(d).is_err() {
            break; // not empty (or already gone): stop climbing
        }
        dir = d.parent();
    }
}
