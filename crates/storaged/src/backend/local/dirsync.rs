//! Group commit for directory fsyncs.
//!
//! A write is acknowledged only after its directory entry is durable: the parent
//! directory is fsynced after the rename. Concurrent writers into one directory do not
//! each need their own fsync: one that *starts after* a writer's rename covers it. On
//! ext4 a directory fsync also holds the directory's lock, so per-writer fsyncs serialise
//! renames behind each other; sharing them keeps throughput at the top of the curve
//! under concurrency and costs nothing to a lone writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::backend::fs::Fs;
use crate::backend::StorageError as Error;

/// Directory fsyncs shared between concurrent writers, per directory.
#[derive(Debug, Default)]
pub(super) struct DirSyncs {
    dirs: Mutex<HashMap<PathBuf, Arc<DirSync>>>,
    /// Directories created whose entries in their parents may not be durable yet: a
    /// writer that renames into one (having found it already there) fsyncs its parent
    /// too, or a power loss could take the directory and the acknowledged object with it.
    created: Mutex<std::collections::HashSet<PathBuf>>,
}

#[derive(Debug, Default)]
struct DirSync {
    /// Taken by each caller after its change to the directory completed.
    tickets: AtomicU64,
    /// The highest ticket a completed fsync covers; held while an fsync runs.
    synced: Mutex<u64>,
}

impl DirSyncs {
    /// Makes every change to `dir`'s entries that completed before this call durable.
    /// Blocks (call it from a blocking task). An fsync another caller started after this
    /// call began counts; a failed fsync covers nobody, so each waiter then tries its own.
    pub(super) fn sync(
        &self,
        fs: &dyn Fs,
        dir: &Path,
        histogram: Option<&prometheus::Histogram>,
    ) -> Result<(), Error> {
        let entry = self
            .dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(dir.to_path_buf())
            .or_default()
            .clone();
        let ticket = entry.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let result = {
            let mut synced = entry.synced.lock().unwrap_or_else(PoisonError::into_inner);
            if *synced >= ticket {
                Ok(())
            } else {
                let covers = entry.tickets.load(Ordering::SeqCst);
                let result = sync_dir(fs, dir, histogram);
                if result.is_ok() {
                    *synced = covers;
                }
                result
            }
        };
        let mut dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget idle directories: only the map and this caller hold the entry, and new
        // holders clone it under this lock.
        if Arc::strong_count(&entry) == 2 {
            dirs.remove(dir);
        }
        result
    }
}

impl DirSyncs {
    pub(super) fn note_created(&self, dir: &Path) {
        self.created
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(dir.to_path_buf());
    }

    pub(super) fn is_fresh(&self, dir: &Path) -> bool {
        self.created
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(dir)
    }

    pub(super) fn forget_created(&self, dir: &Path) {
        self.created
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(dir);
    }
}

/// One fsync of a directory.
pub(super) fn sync_dir(
    fs: &dyn Fs,
    dir: &Path,
    histogram: Option<&prometheus::Histogram>,
) -> Result<(), Error> {
    let started = Instant::now();
    fs.sync_dir(dir)
        .map_err(|e| Error::io("fsyncing a directory", e))?;
    if let Some(h) = histogram {
        h.observe(started.elapsed().as_secs_f64());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fs::RealFs;

    fn fsyncs(h: &prometheus::Histogram) -> u64 {
        h.get_sample_count()
    }

    #[test]
    fn a_lone_caller_always_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let h = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("t", "t")).unwrap();
        let syncs = DirSyncs::default();
        for _ in 0..3 {
            syncs.sync(&RealFs, dir.path(), Some(&h)).unwrap();
        }
        assert_eq!(fsyncs(&h), 3);
        assert!(
            syncs.dirs.lock().unwrap().is_empty(),
            "idle entries are forgotten"
        );
    }

    #[test]
    fn an_fsync_that_started_before_a_change_does_not_cover_it() {
        let dir = tempfile::tempdir().unwrap();
        let h = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("t", "t")).unwrap();
        let syncs = Arc::new(DirSyncs::default());
        let entry = Arc::new(DirSync::default());
        syncs
            .dirs
            .lock()
            .unwrap()
            .insert(dir.path().to_path_buf(), entry.clone());
        // Another writer's fsync is in flight and covers tickets up to 0 (it started
        // before anything below).
        let in_flight = entry.synced.lock().unwrap();
        let waiter = {
            let (syncs, h, dir) = (syncs.clone(), h.clone(), dir.path().to_path_buf());
            std::thread::spawn(move || syncs.sync(&RealFs, &dir, Some(&h)))
        };
        while entry.tickets.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        drop(in_flight);
        waiter.join().unwrap().unwrap();
        assert_eq!(fsyncs(&h), 1, "the waiter fsynced for itself");

        // A completed fsync that covers the waiter's ticket spares it the fsync.
        *entry.synced.lock().unwrap() = entry.tickets.load(Ordering::SeqCst) + 1;
        syncs.sync(&RealFs, dir.path(), Some(&h)).unwrap();
        assert_eq!(fsyncs(&h), 1);
    }

    #[test]
    fn concurrent_callers_all_return_and_leave_no_entries() {
        let dir = tempfile::tempdir().unwrap();
        let h = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("t", "t")).unwrap();
        let syncs = Arc::new(DirSyncs::default());
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let (syncs, h, dir) = (syncs.clone(), h.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || {
                    for j in 0..20 {
                        std::fs::write(dir.join(format!("{i}-{j}")), b"x").unwrap();
                        syncs.sync(&RealFs, &dir, Some(&h)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(fsyncs(&h) >= 1);
        assert!(syncs.dirs.lock().unwrap().is_empty());
    }

    #[test]
    fn a_failed_fsync_covers_nobody() {
        let syncs = DirSyncs::default();
        let missing = Path::new("/nonexistent/storaged-dirsync-test");
        assert!(syncs.sync(&RealFs, missing, None).is_err());
        assert!(syncs.sync(&RealFs, missing, None).is_err());
    }
}
