//! The catalog: an in-memory index of manifests, kept in step with the store by the
//! register contract (docs/contracts.md, "Register"). No HTTP here.
//!
//! - `index`: the published manifests and the reads served from them;
//! - `register`: register and delete, the one write path;
//! - `rehydrate`: rebuilding the index from the store at start-up;
//! - `checkpoint`: the one-file cache of the index, and when it is written.

mod checkpoint;
mod clock;
mod error;
mod index;
mod register;
mod rehydrate;
mod request;

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
pub use index::Page;
pub use rehydrate::Rehydrated;
pub use request::{RegisterRequest, Registered};

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
                clock,
            }),
            store,
        }
    }

    /// The thread-safe shared state, to attach other workers' handles to.
    pub fn state(&self) -> CatalogState {
        CatalogState(self.core.clone())
    }
}
