//! The change feed (docs/contracts.md, "Change feed") and the idempotency keys it carries.
//!
//! Every change gets a sequence number before its write: `max(last + 1, now in µs)`, so
//! numbers increase strictly within a process and, as long as the clock does not jump
//! back, across restarts even if every record that held the highest one was purged. A
//! number is *pending* until its write is resolved: committed when the published head
//! holds it, released when the write certainly failed or the re-read head does not hold
//! it. Readers only see changes below the lowest pending number, so a consumer that
//! remembers the last number it saw can never skip a change that commits later with a
//! lower one. An unknown outcome keeps its number pending (and so holds the feed back)
//! until the name is re-read.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use manifest_codec::{
    dataset_id, Change, ChangeKind, DatasetName, FeedEntry, Manifest, RequestTag,
    SchemaFingerprint, Timestamp,
};
use serde::Serialize;
use uuid::Uuid;

use super::Idempotency;

/// One change as the feed shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedChange {
    /// Strictly increasing; `after` in the next call.
    pub seq: u64,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    /// The dataset.
    pub name: DatasetName,
    /// Its id.
    pub dataset_id: Uuid,
    /// The version concerned (see [`Change::version`]).
    pub version: i64,
    /// The dataset's schema fingerprint at that change.
    pub schema_fingerprint: SchemaFingerprint,
    /// When it happened.
    pub at: Timestamp,
    /// The register request's idempotency tag, if any (never shown).
    #[serde(skip)]
    pub request: Option<RequestTag>,
}

impl FeedChange {
    pub(super) fn of(manifest: &Manifest, change: &Change) -> Self {
        Self {
            seq: change.seq,
            kind: change.kind,
            name: manifest.name.clone(),
            dataset_id: manifest.dataset_id,
            version: change.version,
            schema_fingerprint: manifest.schema_fingerprint.clone(),
            at: change.at,
            request: change.request.clone(),
        }
    }

    fn from_entry(entry: FeedEntry) -> Self {
        Self {
            seq: entry.change.seq,
            kind: entry.change.kind,
            dataset_id: dataset_id(&entry.name),
            name: entry.name,
            version: entry.change.version,
            schema_fingerprint: entry.schema_fingerprint,
            at: entry.change.at,
            request: entry.change.request,
        }
    }

    pub(super) fn to_entry(&self) -> FeedEntry {
        FeedEntry {
            name: self.name.clone(),
            schema_fingerprint: self.schema_fingerprint.clone(),
            change: Change {
                seq: self.seq,
                kind: self.kind,
                version: self.version,
                at: self.at,
                request: self.request.clone(),
            },
        }
    }
}

/// What the feed knows of an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeyState {
    /// A register with this key committed.
    Committed(FeedChange),
    /// A register with this key (and this body hash) has an unknown outcome.
    Unresolved { request_sha256: String },
    /// Not remembered.
    Unknown,
}

/// One page of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    /// Changes after `after`, oldest first.
    pub changes: Vec<FeedChange>,
    /// The `after` of the next call: the last change's `seq`, or `after` itself.
    pub next_after: u64,
}

/// `after` is older than what the feed still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    /// Changes at or below this number may have been forgotten.
    pub horizon: u64,
}

#[derive(Debug, Default)]
struct State {
    /// The last number handed out.
    last: u64,
    /// Numbers handed out whose writes are not resolved, with their dataset.
    pending: BTreeMap<u64, DatasetName>,
    /// Committed changes still served.
    committed: BTreeMap<u64, FeedChange>,
    /// Changes at or below this number may have been forgotten.
    horizon: u64,
    /// Idempotency keys of committed registers, to their change's number.
    keys: HashMap<String, u64>,
    /// Idempotency keys (and body hashes) of pending registers, by number.
    pending_keys: HashMap<u64, (String, String)>,
}

impl State {
    fn visible_below(&self) -> u64 {
        self.pending.keys().next().copied().unwrap_or(u64::MAX)
    }

    fn unpend(&mut self, seq: u64) -> bool {
        self.pending_keys.remove(&seq);
        self.pending.remove(&seq).is_some()
    }

    fn commit(&mut self, change: FeedChange) {
        if let Some(request) = &change.request {
            self.keys
                .insert(request.idempotency_key.clone(), change.seq);
        }
        self.last = self.last.max(change.seq);
        self.committed.insert(change.seq, change);
    }
}

/// The feed of one catalog.
#[derive(Debug, Default)]
pub(super) struct Feed {
    state: Mutex<State>,
    changed: tokio::sync::Notify,
}

impl Feed {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new pending number for a change of `name` about to be written at `now`; a register
    /// with an idempotency key passes it, so that a retry can tell it is unresolved.
    pub(super) fn allocate(
        &self,
        name: &DatasetName,
        now: Timestamp,
        idempotency: Option<&Idempotency>,
    ) -> u64 {
        let mut state = self.lock();
        let seq = (state.last + 1).max(u64::try_from(now.as_micros()).unwrap_or(0));
        state.last = seq;
        state.pending.insert(seq, name.clone());
        if let Some(i) = idempotency {
            state
                .pending_keys
                .insert(seq, (i.key.clone(), i.request_sha256.clone()));
        }
        seq
    }

    /// The write of `seq` certainly did not happen.
    pub(super) fn release(&self, seq: u64) {
        let moved = self.lock().unpend(seq);
        if moved {
            self.changed.notify_waiters();
        }
    }

    /// Resolves every pending number of `name` against its head as now published:
    /// committed if the head holds it, released otherwise.
    pub(super) fn resolve(&self, name: &DatasetName, head: Option<(&Manifest, &[Change])>) {
        let mut state = self.lock();
        let mine: Vec<u64> = state
            .pending
            .iter()
            .filter(|(_, n)| *n == name)
            .map(|(seq, _)| *seq)
            .collect();
        if mine.is_empty() {
            return;
        }
        for seq in mine {
            state.unpend(seq);
            let found = head.and_then(|(m, changes)| {
                changes
                    .iter()
                    .find(|c| c.seq == seq)
                    .map(|c| FeedChange::of(m, c))
            });
            if let Some(change) = found {
                state.commit(change);
            }
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// Whether a write of `name` is unresolved.
    pub(super) fn has_pending(&self, name: &DatasetName) -> bool {
        self.lock().pending.values().any(|n| n == name)
    }

    /// What the feed knows of idempotency key `key`.
    pub(super) fn by_key(&self, key: &str) -> KeyState {
        let state = self.lock();
        if let Some(change) = state.keys.get(key).and_then(|seq| state.committed.get(seq)) {
            return KeyState::Committed(change.clone());
        }
        match state.pending_keys.values().find(|(k, _)| k == key) {
            Some((_, sha)) => KeyState::Unresolved {
                request_sha256: sha.clone(),
            },
            None => KeyState::Unknown,
        }
    }

    /// Up to `limit` visible changes after `after` (from the oldest held when `None`).
    pub(super) fn page(&self, after: Option<u64>, limit: usize) -> Result<FeedPage, Expired> {
        let state = self.lock();
        if let Some(after) = after {
            if after < state.horizon {
                return Err(Expired {
                    horizon: state.horizon,
                });
            }
        }
        let from = after.unwrap_or(0);
        let below = state.visible_below();
        let changes: Vec<FeedChange> = state
            .committed
            .range(from.saturating_add(1)..below)
            .take(limit)
            .map(|(_, c)| c.clone())
            .collect();
        let next_after = changes.last().map_or(from, |c| c.seq);
        Ok(FeedPage {
            changes,
            next_after,
        })
    }

    /// [`Feed::page`], waiting up to `wait` for a first change to become visible.
    pub(super) async fn wait(
        &self,
        after: Option<u64>,
        limit: usize,
        wait: Duration,
    ) -> Result<FeedPage, Expired> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let page = self.page(after, limit)?;
            if !page.changes.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(page);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.page(after, limit);
            }
        }
    }

    /// Wakes long polls (after commits made without `resolve`).
    pub(super) fn notify(&self) {
        self.changed.notify_waiters();
    }

    /// Replaces the feed with what start-up recovered: `changes` (any order, duplicates
    /// allowed) and a horizon.
    pub(super) fn restore(&self, changes: impl IntoIterator<Item = FeedChange>, horizon: u64) {
        let mut state = self.lock();
        *state = State {
            last: horizon,
            horizon,
            ..State::default()
        };
        for change in changes {
            if change.seq > horizon {
                state.commit(change);
            } else {
                state.last = state.last.max(change.seq);
            }
        }
        drop(state);
        self.notify();
    }

    /// Adds a change recovered from a record: `FeedEntry` rows of the changes file.
    pub(super) fn restored(entries: Vec<FeedEntry>) -> impl Iterator<Item = FeedChange> {
        entries.into_iter().map(FeedChange::from_entry)
    }

    /// Every committed change and the horizon, for the checkpoint.
    pub(super) fn snapshot(&self) -> (Vec<FeedChange>, u64) {
        let state = self.lock();
        (state.committed.values().cloned().collect(), state.horizon)
    }

    /// Forgets committed changes made before `cutoff`, moving the horizon past them.
    /// Returns how many were forgotten.
    pub(super) fn forget_before(&self, cutoff: Timestamp) -> usize {
        let mut state = self.lock();
        let old: Vec<u64> = state
            .committed
            .iter()
            .take_while(|(_, c)| c.at < cutoff)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &old {
            if let Some(change) = state.committed.remove(seq) {
                if let Some(request) = change.request {
                    state.keys.remove(&request.idempotency_key);
                }
            }
            state.horizon = state.horizon.max(*seq);
        }
        old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use manifest_codec::{dataset_id, SchemaFingerprint};

    fn manifest(name: &str, version: i64) -> Manifest {
        let name = DatasetName::parse(name).unwrap();
        Manifest {
            dataset_id: dataset_id(&name),
            name,
            schema_fingerprint: SchemaFingerprint::parse("fp").unwrap(),
            version,
            objects: Vec::new(),
            row_count: None,
            created_at: Timestamp::from_micros(5).unwrap(),
            updated_at: Timestamp::from_micros(5).unwrap(),
        }
    }

    fn change(seq: u64) -> Change {
        Change {
            seq,
            kind: ChangeKind::Registered,
            version: 1,
            at: Timestamp::from_micros(5).unwrap(),
            request: None,
        }
    }

    #[test]
    fn a_pending_change_hides_every_later_one_until_it_resolves() {
        let feed = Feed::default();
        let (a, b) = (manifest("a", 1), manifest("b", 1));
        let t = Timestamp::from_micros(1).unwrap();
        let sa = feed.allocate(&a.name, t, None);
        let sb = feed.allocate(&b.name, t, None);
        assert!(sb > sa);
        feed.resolve(&b.name, Some((&b, &[change(sb)])));
        assert!(feed.page(None, 10).unwrap().changes.is_empty());
        feed.resolve(&a.name, Some((&a, &[change(sa)])));
        let page = feed.page(None, 10).unwrap();
        assert_eq!(
            page.changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
            [sa, sb]
        );
        assert_eq!(page.next_after, sb);
        assert!(feed.page(Some(sb), 10).unwrap().changes.is_empty());
    }

    #[test]
    fn a_released_or_unheld_number_never_appears() {
        let feed = Feed::default();
        let a = manifest("a", 1);
        let t = Timestamp::from_micros(1).unwrap();
        let s1 = feed.allocate(&a.name, t, None);
        feed.release(s1);
        let s2 = feed.allocate(&a.name, t, None);
        feed.resolve(&a.name, Some((&a, &[])));
        assert!(feed.page(None, 10).unwrap().changes.is_empty());
        assert!(s2 > s1 && !feed.has_pending(&a.name));
    }

    #[test]
    fn numbers_follow_the_clock_and_never_go_back() {
        let feed = Feed::default();
        let n = DatasetName::parse("a").unwrap();
        let s1 = feed.allocate(&n, Timestamp::from_micros(1_000).unwrap(), None);
        assert_eq!(s1, 1_000);
        let s2 = feed.allocate(&n, Timestamp::from_micros(10).unwrap(), None);
        assert_eq!(s2, 1_001);
    }

    #[test]
    fn forgetting_moves_the_horizon_and_old_positions_expire() {
        let feed = Feed::default();
        let a = manifest("a", 1);
        let mut c = change(7);
        c.request = Some(RequestTag {
            idempotency_key: "k".into(),
            request_sha256: "x".into(),
            existing: false,
        });
        feed.restore([FeedChange::of(&a, &c)], 3);
        assert!(matches!(feed.by_key("k"), KeyState::Committed(_)));
        assert_eq!(feed.page(Some(2), 10), Err(Expired { horizon: 3 }));
        assert_eq!(feed.page(Some(3), 10).unwrap().changes.len(), 1);
        assert_eq!(feed.forget_before(Timestamp::from_micros(6).unwrap()), 1);
        assert_eq!(feed.by_key("k"), KeyState::Unknown);
        assert_eq!(feed.page(Some(3), 10), Err(Expired { horizon: 7 }));
        assert!(feed.page(None, 10).unwrap().changes.is_empty());
    }
}
