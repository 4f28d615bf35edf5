//! Appends durable but not yet published (ADR 0018): compaction waits for them.

use std::sync::{Arc, PoisonError};

use super::{Appended, Position, Shared};

/// An append's records, durable. Until it is dropped, the records count as not yet
/// published: compaction waits for every record before its checkpoint to be published, so
/// that no index entry can come to point at a segment it removed.
#[derive(Debug)]
pub(crate) struct Committed {
    pub(crate) at: Vec<Appended>,
    pub(super) _unsettled: Unsettled,
}

impl std::ops::Deref for Committed {
    type Target = [Appended];
    fn deref(&self) -> &[Appended] {
        &self.at
    }
}

#[derive(Debug)]
pub(super) struct Unsettled {
    shared: Arc<Shared>,
    at: Position,
}

impl Unsettled {
    pub(super) fn new(shared: Arc<Shared>, at: Position) -> Self {
        *shared
            .unsettled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(at)
            .or_default() += 1;
        Self { shared, at }
    }
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        let mut unsettled = self
            .shared
            .unsettled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = unsettled.get_mut(&self.at) {
            *n -= 1;
            if *n == 0 {
                unsettled.remove(&self.at);
            }
        }
    }
}
