//! One async mutex per key, created on demand and dropped when nobody holds or awaits it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// A table of per-key locks.
#[derive(Debug, Default)]
pub(crate) struct KeyLocks {
    table: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Holds one key's lock; releases it (and its table entry, if unused) on drop.
#[derive(Debug)]
pub(crate) struct KeyGuard {
    guard: Option<OwnedMutexGuard<()>>,
    key: String,
    table: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl KeyLocks {
    /// Waits for and takes the lock of `key`.
    pub(crate) async fn lock(&self, key: &str) -> KeyGuard {
        let mutex = {
            let mut table = self
                .table
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            table.entry(key.to_owned()).or_default().clone()
        };
        KeyGuard {
            guard: Some(mutex.lock_owned().await),
            key: key.to_owned(),
            table: self.table.clone(),
        }
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
    use super::*;

    #[tokio::test]
    async fn entries_are_removed_when_unused() {
        let locks = KeyLocks::default();
        {
            let _a = locks.lock("a").await;
            let _b = locks.lock("b").await;
            assert_eq!(locks.table.lock().unwrap().len(), 2);
        }
        assert!(locks.table.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn one_holder_at_a_time() {
        let locks = Arc::new(KeyLocks::default());
        let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let mut tasks = Vec::new();
                for _ in 0..16 {
                    let locks = locks.clone();
                    let counter = counter.clone();
                    tasks.push(tokio::task::spawn_local(async move {
                        let _g = locks.lock("k").await;
                        let inside = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(inside, 0, "two holders at once");
                        tokio::task::yield_now().await;
                        counter.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            })
            .await;
        assert!(locks.table.lock().unwrap().is_empty());
    }
}
