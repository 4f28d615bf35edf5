//! In-memory backend: the test fake. Same contract as [`super::LocalFs`], no durability.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use manifest_codec::ObjectKey;

use super::{
    check_condition, page_of, Attributes, Backend, Body, Condition, ETag, InMemory, ListPage,
    NewObject, ObjectMeta, ObjectReader, PutOutcome, S3Tag, StorageError,
};

type Stored = (ObjectMeta, Attributes, Bytes);

/// Objects in a sorted map; all operations complete under one short lock.
#[derive(Debug, Default)]
pub struct Memory {
    objects: RwLock<BTreeMap<ObjectKey, Stored>>,
}

impl Memory {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ObjectKey, Stored>> {
        self.objects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<ObjectKey, Stored>> {
        self.objects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

type Objects = BTreeMap<ObjectKey, Stored>;

/// Checks `condition` against the stored version of `key`.
fn check(objects: &Objects, key: &ObjectKey, condition: Condition) -> Result<(), StorageError> {
    check_condition(
        key,
        condition,
        objects.get(key).map(|(m, _, _)| (m.etag, m.s3_tag)),
    )
}

#[async_trait]
impl Backend for Memory {
    async fn write(
        &self,
        key: &ObjectKey,
        new: NewObject,
        mut body: Body,
    ) -> Result<PutOutcome, StorageError> {
        let condition = new.condition;
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
            s3_tag: Some(new.s3_tag.unwrap_or_else(|| {
                use md5::Digest as _;
                S3Tag::single(md5::Md5::digest(&content).into())
            })),
            last_modified: SystemTime::now(),
        };
        let mut objects = self.write();
        check(&objects, key, condition)?;
        let created = objects
            .insert(key.clone(), (meta.clone(), new.attrs, content))
            .is_none();
        Ok(PutOutcome { meta, created })
    }

    async fn assemble(
        &self,
        key: &ObjectKey,
        new: NewObject,
        parts: Vec<ObjectKey>,
    ) -> Result<PutOutcome, StorageError> {
        let mut content = BytesMut::new();
        {
            let objects = self.read();
            for part in &parts {
                let (_, _, bytes) = objects.get(part).ok_or_else(|| StorageError::NotFound {
                    key: part.to_string(),
                })?;
                content.extend_from_slice(bytes);
            }
        }
        let content = content.freeze();
        let body = futures_util::stream::once(async move { Ok(content) }).boxed();
        Backend::write(self, key, new, body).await
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, StorageError> {
        let objects = self.read();
        let (meta, attrs, content) =
            objects
                .get(key.as_str())
                .ok_or_else(|| StorageError::NotFound {
                    key: key.to_string(),
                })?;
        Ok(ObjectReader {
            meta: meta.clone(),
            attrs: attrs.clone(),
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
        Ok(page_of(
            &objects,
            prefix,
            after,
            limit,
            |_, (meta, _, _)| meta.clone(),
        ))
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
