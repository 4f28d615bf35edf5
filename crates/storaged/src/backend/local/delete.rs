//! The delete path: under the key's lock (and the directories' shared lock, so that no
//! pruning removes the directory in between), unlink the object file and fsync its
//! directory, then take the key out of the index; then, under the directories' exclusive
//! lock, prune directories the delete left empty.
//!
//! The unlink comes before the index change, so a reader that finds the file gone while
//! the index still names it waits for the key's lock and looks again (`LocalFs::get`).

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
        let key_lock = self.locks.lock(key).await;
        let current = self.current(key);
        check_condition(key, condition, current.map(|e| e.tags()))?;
        let Some(entry) = current else {
            return Ok(());
        };
        if entry.log.is_some() {
            return self.remove_logged(key).await;
        }
        let unlinked = self.unlink(&path).await;
        if let Err(StorageError::NotDurable { .. }) | Ok(()) = &unlinked {
            // The file is gone: so is the key, whether or not a crash could bring it back.
            self.index
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(key);
            if let Some(generation) = entry.segments {
                self.drop_segments(generation).await;
            }
        }
        drop(key_lock);
        unlinked?;
        self.prune(&path).await;
        Ok(())
    }

    /// Removes the file at `path` (if there is one) and makes that durable: `Io` when the
    /// file is still there, `NotDurable` when it is gone but its directory's fsync failed.
    pub(super) async fn unlink(&self, path: &Path) -> Result<(), StorageError> {
        // Shared: no pruning removes the directory between the unlink and its fsync.
        let _dirs = self.dirs.read().await;
        let fsync = self.fsync.clone();
        let file = path.to_path_buf();
        let fs = self.fs.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            match fs.remove_file(&file) {
                Ok(()) => match file.parent() {
                    Some(parent) => fsync.dir_after_unlink(fs.as_ref(), parent),
                    None => Ok(()),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StorageError::io("removing an object file", e)),
            }
        })
        .await
        .map_err(|e| StorageError::task("removing an object file", e))?
    }

    /// Removes the directories above `path` that are empty, up to `objects/`. Exclusive:
    /// no put is between creating a directory and renaming into it, and no delete between
    /// an unlink and its directory's fsync.
    async fn prune(&self, path: &Path) {
        let _dirs = self.dirs.write().await;
        let root = self.objects.clone();
        let fs = self.fs.clone();
        let fsync = self.fsync.clone();
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            for dir in remove_empty_parents(fs.as_ref(), &root, &path) {
                fsync.forget_created(&dir);
            }
        })
        .await
        .ok();
    }
}

/// Removes now-empty directories from `path`'s parent up to (excluding) `root`; returns
/// those removed.
fn remove_empty_parents(fs: &dyn Fs, root: &Path, path: &Path) -> Vec<std::path::PathBuf> {
    let mut removed = Vec::new();
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) {
            break;
        }
        if fs.remove_dir(d).is_err() {
            break; // not empty (or already gone): stop climbing
        }
        removed.push(d.to_path_buf());
        dir = d.parent();
    }
    removed
}
