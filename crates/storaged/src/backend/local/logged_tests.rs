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

/// Reads every key while the maintenance thread checkpoints and compacts underneath, and
/// checks what each holds.
async fn read_all(store: &LocalFs, expected: &BTreeMap<String, Vec<u8>>) {
    for (k, want) in expected {
        let got = read(store, k)
            .await
            .unwrap_or_else(|e| panic!("{k}: {e:?}"));
        assert_eq!(&got, want, "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_compaction_shrinks_the_log_and_keeps_every_object_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = BTreeMap::new();
    let value =
        |i: usize, round: u8| vec![round.wrapping_add(u8::try_from(i % 200).unwrap()); 60 << 10];
    let store = Arc::new(open(dir.path()).await);
    for i in 0..60 {
        let k = format!("c/{i:02}");
        store
            .put(&key(&k), Condition::None, body(value(i, 0)))
            .await
            .unwrap();
        expected.insert(k, value(i, 0));
    }
    // The objects never overwritten are the live records compaction copies forward: they
    // are read all along, from before the overwrites until compaction is done.
    let stable: BTreeMap<String, Vec<u8>> = expected
        .iter()
        .filter(|(k, _)| k.ends_with('0'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut rounds = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                read_all(&store, &stable).await;
                rounds += 1;
                tokio::task::yield_now().await;
            }
            rounds
        })
    };
    // All but every tenth object overwritten, twice: the early segments are mostly dead.
    for round in 1..=2 {
        for i in (0..60).filter(|i| i % 10 != 0) {
            let k = format!("c/{i:02}");
            store
                .put(&key(&k), Condition::None, body(value(i, round)))
                .await
                .unwrap();
            expected.insert(k, value(i, round));
        }
    }
    let waited = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while store.log_compactions() < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = reader.await.unwrap();
    assert!(waited.is_ok(), "3 compactions within a minute");
    assert!(rounds > 0);
    read_all(&store, &expected).await;
    let made = std::fs::read_dir(dir.path().join("log"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".seg")?.parse::<usize>().ok()
        })
        .max()
        .unwrap();
    let kept = segments(dir.path());
    assert!(kept + 3 <= made, "{kept} of {made} segments are left");
    assert!(dir.path().join("log/checkpoint").try_exists().unwrap());
    drop(Arc::try_unwrap(store).unwrap());
    let store = open(dir.path()).await;
    read_all(&store, &expected).await;
    assert_eq!(store.list("c/", None, 100).await.unwrap().objects.len(), 60);
}
