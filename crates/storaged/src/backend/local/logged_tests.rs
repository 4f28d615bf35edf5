//! LocalFs with the write log on: the conformance suite, and the moves between the log and
//! the file path across restarts.

use std::path::Path;

use super::*;
use crate::backend::conformance::{body, read, run_all};
use crate::backend::{Backend, Condition, FsyncPolicy, LogMetrics, NewObject};

/// Small segments, so that the suite rolls through several.
const CONFIG: LogConfig = LogConfig {
    max_object_size: 256 << 10,
    segment_size: 1 << 20,
    checkpoint_every: 2 << 20,
};

async fn open(dir: &Path) -> LocalFs {
    LocalFs::open_with_log(dir, FsyncPolicy::on(None), CONFIG, LogMetrics::default())
        .await
        .unwrap()
        .0
}

fn key(k: &str) -> ObjectKey {
    ObjectKey::parse(k).unwrap()
}

fn object_file(dir: &Path, k: &str) -> std::path::PathBuf {
    super::super::paths::object_path(&dir.join("objects"), &key(k))
}

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("log"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count()
}

#[tokio::test]
async fn conformance_with_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    run_all(&store).await;
    // Small objects went to the log, not to files.
    store
        .put(&key("small/one"), Condition::None, body("x"))
        .await
        .unwrap();
    assert!(!object_file(dir.path(), "small/one").try_exists().unwrap());
    assert!(segments(dir.path()) >= 1);
}

#[tokio::test]
async fn conformance_with_the_log_without_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = LocalFs::open_with_log(
        dir.path(),
        FsyncPolicy::off(),
        CONFIG,
        LogMetrics::default(),
    )
    .await
    .unwrap();
    run_all(&store).await;
}

#[tokio::test]
async fn objects_move_between_the_log_and_files_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![b'b'; 300 << 10];
    {
        let store = open(dir.path()).await;
        // a: file, then small (the file goes); b: small, then big (the record is superseded);
        // c: small, deleted; d: big, deleted; e: small, overwritten small.
        store
            .put(&key("a"), Condition::None, body(big.clone()))
            .await
            .unwrap();
        assert!(object_file(dir.path(), "a").try_exists().unwrap());
        store
            .put(&key("a"), Condition::None, body("small a"))
            .await
            .unwrap();
        assert!(!object_file(dir.path(), "a").try_exists().unwrap());
        store
            .put(&key("b"), Condition::None, body("small b"))
            .await
            .unwrap();
        store
            .put(&key("b"), Condition::None, body(big.clone()))
            .await
            .unwrap();
        store
            .put(&key("c"), Condition::None, body("small c"))
            .await
            .unwrap();
        store.delete(&key("c"), Condition::None).await.unwrap();
        store
            .put(&key("d"), Condition::None, body(big.clone()))
            .await
            .unwrap();
        store.delete(&key("d"), Condition::None).await.unwrap();
        store
            .put(&key("e"), Condition::None, body("first e"))
            .await
            .unwrap();
        store
            .put(&key("e"), Condition::None, body("second e"))
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let store = open(dir.path()).await;
        assert_eq!(read(&store, "a").await.unwrap(), b"small a");
        assert_eq!(read(&store, "b").await.unwrap(), big);
        assert!(read(&store, "c").await.is_err());
        assert!(read(&store, "d").await.is_err());
        assert_eq!(read(&store, "e").await.unwrap(), b"second e");
        let listed: Vec<String> = store
            .list("", None, 10)
            .await
            .unwrap()
            .objects
            .into_iter()
            .map(|m| m.key.to_string())
            .collect();
        assert_eq!(listed, ["a", "b", "e"]);
        // Conditions see the log's tags after a restart too.
        let etag = store.get(&key("e")).await.unwrap().meta.etag;
        store
            .put(&key("e"), Condition::Matches(etag), body("second e"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_file_left_beside_a_newer_record_is_removed_at_start_up() {
    // The crash window of a small write over a file: its record is durable but the file
    // it replaces is still there.
    let dir = tempfile::tempdir().unwrap();
    let big = vec![b'f'; 300 << 10];
    let stale = {
        let store = open(dir.path()).await;
        store
            .put(&key("k"), Condition::None, body(big))
            .await
            .unwrap();
        let stale = std::fs::read(object_file(dir.path(), "k")).unwrap();
        store
            .put(&key("k"), Condition::None, body("record"))
            .await
            .unwrap();
        stale
    };
    std::fs::write(object_file(dir.path(), "k"), &stale).unwrap();
    let store = open(dir.path()).await;
    assert_eq!(read(&store, "k").await.unwrap(), b"record");
    assert!(!object_file(dir.path(), "k").try_exists().unwrap());
}

#[tokio::test]
async fn assembling_log_resident_parts_copies_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    store
        .put(&key("p/1"), Condition::None, body("hello "))
        .await
        .unwrap();
    store
        .put(&key("p/2"), Condition::None, body("world"))
        .await
        .unwrap();
    store
        .assemble(
            &key("whole"),
            NewObject::default(),
            vec![key("p/1"), key("p/2")],
        )
        .await
        .unwrap();
    store.delete(&key("p/1"), Condition::None).await.unwrap();
    assert_eq!(read(&store, "whole").await.unwrap(), b"hello world");
    drop(store);
    let store = open(dir.path()).await;
    assert_eq!(read(&store, "whole").await.unwrap(), b"hello world");
    // The copies made for linking are gone from tmp/.
    assert!(std::fs::read_dir(dir.path().join("tmp"))
        .unwrap()
        .next()
        .is_none());
}
