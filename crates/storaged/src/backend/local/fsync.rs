//! When LocalFs fsyncs, and how the time it takes is measured.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::dirsync::{sync_dir, DirSyncs};
use crate::backend::fs::{Fs, WriteFile};
use crate::backend::StorageError;

/// Whether writes are fsynced before they are acknowledged (the production setting; off
/// is for throwaway data only), the histogram every fsync is timed into, and the shared
/// directory fsyncs of concurrent writers (group commit, see `dirsync`).
#[derive(Debug, Clone)]
pub struct FsyncPolicy {
    enabled: bool,
    seconds: Option<prometheus::Histogram>,
    dirs: Arc<DirSyncs>,
}

impl FsyncPolicy {
    /// Every write is durable before it is acknowledged; each fsync is timed into
    /// `seconds` when given.
    pub fn on(seconds: Option<prometheus::Histogram>) -> Self {
        Self {
            enabled: true,
            seconds,
            dirs: Arc::default(),
        }
    }

    /// No fsync at all: a crash can lose acknowledged writes.
    pub fn off() -> Self {
        Self {
            enabled: false,
            seconds: None,
            dirs: Arc::default(),
        }
    }

    /// `on(seconds)` when `enabled`, else `off()`.
    pub fn new(enabled: bool, seconds: Option<prometheus::Histogram>) -> Self {
        if enabled {
            Self::on(seconds)
        } else {
            Self::off()
        }
    }

    /// Whether fsyncs happen.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Makes a written file's content durable.
    pub(super) fn file(&self, file: &mut dyn WriteFile) -> Result<(), StorageError> {
        if self.enabled {
            let started = Instant::now();
            file.sync_all()
                .map_err(|e| StorageError::io("fsyncing a temporary file", e))?;
            self.observe(started);
        }
        Ok(())
    }

    /// Makes every completed change to `dir`'s entries durable, sharing the fsync with
    /// concurrent writers into the same directory. Blocks.
    pub(super) fn dir(&self, fs: &dyn Fs, dir: &Path) -> Result<(), StorageError> {
        if self.enabled {
            self.dirs.sync(fs, dir, self.seconds.as_ref())?;
        }
        Ok(())
    }

    /// After an unlink in `dir`: makes it durable as [`Self::dir`] does. A directory that
    /// no longer exists holds no entry to make durable, so that is no failure (it was
    /// pruned after the unlink was made durable, or removed by hand). A failed fsync is
    /// [`StorageError::NotDurable`]: the unlink happened, a crash may undo it. Blocks.
    pub(super) fn dir_after_unlink(&self, fs: &dyn Fs, dir: &Path) -> Result<(), StorageError> {
        match self.dir(fs, dir) {
            Err(StorageError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(())
            }
            Err(StorageError::Io { source, .. } | StorageError::InsufficientStorage(source)) => {
                Err(StorageError::NotDurable {
                    op: "fsyncing a directory after an unlink",
                    source,
                })
            }
            other => other,
        }
    }

    /// `dir` was just created: until [`Self::forget_created`], its entry in its parent
    /// may not be durable.
    pub(super) fn note_created(&self, dir: &Path) {
        if self.enabled {
            self.dirs.note_created(dir);
        }
    }

    /// Whether `dir` was created and its entry may not be durable yet.
    pub(super) fn is_fresh(&self, dir: &Path) -> bool {
        self.enabled && self.dirs.is_fresh(dir)
    }

    /// `dir`'s entry is durable (its parent was fsynced), or `dir` is gone.
    pub(super) fn forget_created(&self, dir: &Path) {
        if self.enabled {
            self.dirs.forget_created(dir);
        }
    }

    /// One fsync of `dir` of its own (start-up). Blocks.
    pub(super) fn dir_now(&self, fs: &dyn Fs, dir: &Path) -> Result<(), StorageError> {
        if self.enabled {
            sync_dir(fs, dir, self.seconds.as_ref())?;
        }
        Ok(())
    }

    fn observe(&self, started: Instant) {
        if let Some(h) = &self.seconds {
            h.observe(started.elapsed().as_secs_f64());
        }
    }
}
