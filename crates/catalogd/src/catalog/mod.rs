//! The catalog: an in-memory index of manifests, kept in step with the store by the
//! register contract (docs/contracts.md, "Register"). No HTTP here.
//!
//! - `index`: the published heads and the reads served from them;
//! - `register`: register, delete, undrop, purge and expire: the one write path;
//! - `history`: versions, `as_of` and idempotent replays;
//! - `feed`: the change feed and its sequence numbers;
//! - `rehydrate`: rebuilding the index and the feed from the store at start-up;
//! - `checkpoint`: the cache of the index and the feed, and when it is written;
//! - `retention`: what is forgotten, and when.

mod checkpoint;
mod clock;
mod error;
mod feed;
mod history;
mod index;
mod refresh;
mod register;
mod rehydrate;
mod request;
mod retention;
mod verify;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use keylock::KeyLocks;
use manifest_codec::DatasetName;

use crate::store::ManifestStore;

pub use checkpoint::{checkpoint_once, keep_checkpoint};
pub use clock::{Clock, SystemClock};
pub use error::CatalogError;
pub use feed::{Expired, FeedChange, FeedPage};
pub use history::{VersionPage, VersionSummary};
pub use index::{Listed, Page, Visibility};
pub use refresh::{keep_refreshed, Refreshed};
pub use rehydrate::Rehydrated;
pub use request::{Idempotency, RegisterRequest, Registered};
pub use retention::{keep_retention, Maintained, Retention};
pub use verify::{Offender, Problem, MAX_OFFENDERS};

/// What every handle of one catalog shares: the index, the per-name writer locks, the
/// names whose stored state is unknown, the checkpoint's position and the clock.
#[derive(Debug)]
struct CatalogCore {
    index: RwLock<index::Index>,
    /// Changes published so far.
    changes: AtomicU64,
    /// The change count the stored checkpoint reflects (`None`: stale or unknown); held
    /// while a checkpoint is written, so writers take turns.
    checkpointed: tokio::sync::Mutex<Option<u64>>,
    /// Names whose last write had an unknown outcome: re-read before the next write.
    stale: Mutex<HashSet<DatasetName>>,
    writers: KeyLocks<DatasetName>,
    feed: feed::Feed,
    /// Per name, the version below which `max_versions` already expired everything.
    expired_below: retention::ExpiredBelow,
    /// Whether a register keeps the head it replaces as a version (`max_versions` above 1).
    keeps_versions: std::sync::atomic::AtomicBool,
    clock: Arc<dyn Clock>,
}

/// The part of a catalog that is shared between threads; [`CatalogState::attach`] gives
/// a worker its own [`Catalog`] handle over its own store client.
#[derive(Debug, Clone)]
pub struct CatalogState(Arc<CatalogCore>);

impl CatalogState {
    /// A handle on this catalog writing through `store`.
    pub fn attach(&self, store: Rc<dyn ManifestStore>) -> Catalog {
        Catalog {
            core: self.0.clone(),
            store,
        }
    }
}

/// A handle on the dataset catalog.
///
/// The state is shared by every handle of one catalog (one per process); the store is per
/// handle, because the storaged client is not `Send` and lives on one worker thread. Get a
/// handle for another worker with [`Catalog::state`] and [`CatalogState::attach`].
#[derive(Debug, Clone)]
pub struct Catalog {
    core: Arc<CatalogCore>,
    store: Rc<dyn ManifestStore>,
}

impl Catalog {
    /// An empty catalog over `store`.
    pub fn new(store: Rc<dyn ManifestStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            core: Arc::new(CatalogCore {
                index: RwLock::default(),
                changes: AtomicU64::new(0),
                checkpointed: tokio::sync::Mutex::new(None),
                stale: Mutex::default(),
                writers: KeyLocks::default(),
                feed: feed::Feed::default(),
                expired_below: retention::ExpiredBelow::default(),
                keeps_versions: std::sync::atomic::AtomicBool::new(true),
                clock,
            }),
            store,
        }
    }

    /// Applies `max_versions`: with `Some(1)` no history is kept, so a register replacing
    /// a head costs one write instead of two (`as_of` and the version routes then see the
    /// head alone).
    pub fn set_max_versions(&self, max_versions: Option<u32>) {
        self.core.keeps_versions.store(
            max_versions != Some(1),
            std::sync::atomic::Ordering::Release,
        );
    }

    /// The thread-safe shared state, to attach other workers' handles to.
    pub fn state(&self) -> CatalogState {
        CatalogState(self.core.clone())
    }

    /// Up to `limit` changes after `after` (from the oldest held when `None`), waiting up to
    /// `wait` for one to appear; `Err` when changes after `after` were forgotten.
    pub async fn changes_after(
        &self,
        after: Option<u64>,
        limit: usize,
        wait: std::time::Duration,
    ) -> Result<FeedPage, Expired> {
        self.core.feed.wait(after, limit, wait).await
    }
}
