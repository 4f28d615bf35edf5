//! One async mutex per key, created on demand and dropped when nobody holds or awaits it.
//!
//! Serialises the writers of one key (an object in storaged, a dataset name in catalogd)
//! while writers of different keys never wait for each other. The table holds an entry
//! only while some task holds or awaits that key, so it does not grow with the key space.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

type Table<K> = Arc<Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>>;

/// A table of per-key locks.
#[derive(Debug)]
pub struct KeyLocks<K: Hash + Eq + Clone> {
    table: Table<K>,
}

impl<K: Hash + Eq + Clone> Default for KeyLocks<K> {
    fn default() -> Self {
        Self {
            table: Arc::default(),
        }
    }
}

/// Holds one key's lock; releases it (and its table entry, if unused) on drop.
#[derive(Debug)]
pub struct KeyGuard<K: Hash + Eq + Clone> {
    guard: Option<OwnedMutexGuard<()>>,
    key: K,
    table: Table<K>,
}

impl<K: Hash + Eq + Clone> KeyLocks<K> {
    /// Waits for and takes the lock of `key`.
    pub async fn lock(&self, key: &K) -> KeyGuard<K> {
        let mutex = {
            let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            table.entry(key.clone()).or_default().clone()
        };
        KeyGuard {
            guard: Some(mutex.lock_owned().await),
            key: key.clone(),
            table: self.table.clone(),
        }
    }

    /// Keys currently held or awaited.
    pub fn active(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl<K: Hash + Eq + Clone> Drop for KeyGuard<K> {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        drop(self.guard.take());
        // Only the table's own reference left: nobody holds or awaits this key.
        if table
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            table.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn entries_are_removed_when_unused() {
        let locks = KeyLocks::<String>::default();
        {
            let _a = locks.lock(&"a".to_owned()).await;
            let _b = locks.lock(&"b".to_owned()).await;
            assert_eq!(locks.active(), 2);
        }
        assert_eq!(locks.active(), 0);
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_other_keys_do_not_wait() {
        let locks = KeyLocks::<String>::default();
        let inside = AtomicUsize::new(0);
        let holders = (0..16).map(|_| async {
            let _g = locks.lock(&"k".to_owned()).await;
            assert_eq!(
                inside.fetch_add(1, Ordering::SeqCst),
                0,
                "two holders at once"
            );
            tokio::task::yield_now().await;
            inside.fetch_sub(1, Ordering::SeqCst);
        });
        let held = locks.lock(&"k".to_owned()).await;
        // Another key is free while "k" is held.
        drop(locks.lock(&"other".to_owned()).await);
        drop(held);
        futures_util::future::join_all(holders).await;
        assert_eq!(locks.active(), 0);
    }
}
