//! In-memory backend: the test fake. Same contract as [`super::LocalFs`], no durability.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use manifest_codec::ObjectKey;

use super::{
    check_condition, page_of, Backend, Body, Condition, ETag, InMemory, ListPage, ObjectMeta,
    ObjectReader, PutOutcome, StorageError,
};

/// Objects in a sorted map; all operations complete under one short lock.
#[derive(Debug, Default)]
pub struct Memory {
    objects: RwLock<BTreeMap<ObjectKey, (ObjectMeta, Bytes)>>,
}

impl Memory {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ObjectKey, (ObjectMeta, Bytes)>> {
        self.objects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<ObjectKey, (ObjectMeta, Bytes)>> {
        self.objects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

type Objects = BTreeMap<ObjectKey, (ObjectMeta, Bytes)>;

/// Checks `condition` against the stored version of `key`.
fn check(objects: &Objects, key: &ObjectKey, condition: Condition) -> Result<(), StorageError> {
    check_condition(key, condition, objects.get(key).map(|(m, _)| m.etag))
}

#[async_trait]
impl Backend for Memory {
    async fn put(
        &self,
        key: &ObjectKey,
        condition: Condition,
        mut body: Body,
    ) -> Result<PutOutcome, StorageError> {
        check(&self.read(), key, condition)?;
        let mut content = BytesMut::new();
        while let Some(chunk) = body.next().await {
            content.extend_from_slice(&chunk?);
        }
        let content = content.freeze();
        let meta = ObjectMeta {
            key: key.clone(),
            size: content.len() as u64,
            etag: ETag::of(&content),
            last_modified: SystemTime::now(),
        };
        let mut objects = self.write();
        check(&objects, key, condition)?;
        let created = objects
            .insert(key.clone(), (meta.clone(), content))
            .is_none();
        Ok(PutOutcome { meta, created })
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, StorageError> {
        let objects = self.read();
        let (meta, content) = objects
            .get(key.as_str())
            .ok_or_else(|| StorageError::NotFound {
                key: key.to_string(),
            })?;
        Ok(ObjectReader {
            meta: meta.clone(),
            content: Box::new(InMemory(content.clone())),
        })
    }

    async fn delete(&self, key: &ObjectKey, condition: Condition) -> Result<(), StorageError> {
        let mut objects = self.write();
        check(&objects, key, condition)?;
        objects.remove(key.as_str());
        Ok(())
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StorageError> {
        let objects = self.read();
        Ok(page_of(&objects, prefix, after, limit, |_, (meta, _)| {
            meta.clone()
        }))
    }

    async fn is_ready(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conformance() {
        super::super::conformance::run_all(&super::Memory::new()).await;
    }
}
