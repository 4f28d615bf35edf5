use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::format::{BATCH_HEADER, RECORD_HEADER};
use super::*;
use crate::backend::fs::RealFs;
use crate::backend::{ETag, S3Tag};

const SEGMENT: u64 = 1 << 20;

fn us(n: impl TryInto<usize>) -> usize {
    n.try_into().ok().unwrap()
}

fn byte(i: impl TryInto<u8>) -> u8 {
    i.try_into().ok().unwrap()
}

fn put(key: &str, content: &[u8]) -> Append {
    Append {
        head: RecordHead {
            kind: Kind::Put,
            seq: 0,
            size: content.len() as u64,
            etag: ETag::of(content),
            s3_tag: S3Tag::single([1; 16]),
            last_modified: SystemTime::now(),
        },
        key: key.into(),
        attrs: b"{}".to_vec(),
        content: Bytes::copy_from_slice(content),
    }
}

fn open(dir: &Path) -> Opened {
    Log::open(Arc::new(RealFs), dir, SEGMENT, true, LogMetrics::default()).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn appended_records_read_back_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let opened = open(dir.path());
    assert!(opened.live.is_empty());
    let log = opened.log;
    let at = rt
        .block_on(log.append(vec![put("a/one", b"first"), put("a/two", b"second")]))
        .unwrap();
    assert_eq!(at.len(), 2);
    assert!(at[0].seq < at[1].seq);
    let back = log.read(at[1]).unwrap();
    assert_eq!(back.key(), b"a/two");
    assert_eq!(back.attrs(), b"{}");
    assert_eq!(&back.content()[..], b"second");
    assert_eq!(back.head().etag, ETag::of(b"second"));
    let next = rt
        .block_on(log.append(vec![put("a/one", b"again")]))
        .unwrap();
    drop(log);

    let opened = open(dir.path());
    assert_eq!(opened.replayed, 3);
    let live: Vec<(Vec<u8>, u64, Appended)> = opened
        .live
        .iter()
        .map(|r| (r.key.clone(), r.head.seq, r.at))
        .collect();
    assert_eq!(
        live,
        vec![
            (b"a/one".to_vec(), next[0].seq, next[0]),
            (b"a/two".to_vec(), at[1].seq, at[1]),
        ],
        "the latest put of each key, in key order"
    );
    assert!(opened.torn.is_none());
    // Appends go on after the replayed ones, with later numbers.
    let later = rt
        .block_on(opened.log.append(vec![put("b", b"x")]))
        .unwrap();
    assert!(later[0].seq > next[0].seq);
    assert!(later[0].offset > next[0].offset);
    assert_eq!(&opened.log.read(next[0]).unwrap().content()[..], b"again");
}

#[test]
fn concurrent_writers_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let log = Arc::new(open(dir.path()).log);
    let writers = 64;
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    log.append(vec![put(&format!("k{i}"), &[byte(i); 4096])])
                        .await
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap().unwrap());
        }
        out
    });
    let stats = log.stats();
    assert_eq!(stats.records.load(Ordering::Relaxed), writers);
    let batches = stats.batches.load(Ordering::Relaxed);
    assert!(
        batches < writers,
        "{writers} concurrent writers took {batches} syncs"
    );
    for (i, at) in results.iter().enumerate() {
        assert_eq!(
            &log.read(at[0]).unwrap().content()[..],
            &[byte(i); 4096][..]
        );
    }
}

#[test]
fn the_log_rolls_to_a_new_segment_when_one_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let log = open(dir.path()).log;
    let body = vec![7; 200 * 1024];
    let mut places = Vec::new();
    for i in 0..12 {
        places.push(
            rt.block_on(log.append(vec![put(&format!("big{i}"), &body)]))
                .unwrap()[0],
        );
    }
    let segments: std::collections::BTreeSet<u64> = places.iter().map(|a| a.segment).collect();
    assert!(segments.len() >= 3, "{segments:?}");
    drop(log);
    let opened = open(dir.path());
    assert_eq!(opened.live.len(), 12);
    for at in places {
        assert_eq!(opened.log.read(at).unwrap().content().len(), body.len());
    }
}

#[test]
fn the_next_segment_is_made_ahead_and_the_roll_takes_it() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let log = open(dir.path()).log;
    let body = vec![3; 200 * 1024];
    let append = |key: &str| rt.block_on(log.append(vec![put(key, &body)])).unwrap()[0];
    // Three records: the head (1 MiB) is past half full, nothing has rolled yet.
    let first: Vec<Appended> = ["a", "b", "c"].into_iter().map(append).collect();
    assert!(first.iter().all(|a| a.segment == first[0].segment));
    let next = segment_path(dir.path(), first[0].segment + 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::metadata(&next).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "no spare segment {} was made",
            next.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let made = std::fs::metadata(&next).unwrap();
    assert_eq!(
        made.len(),
        SEGMENT,
        "the spare is zero-filled to the full size"
    );
    // Two more fill the head; the sixth goes to the spare, the same file.
    let later: Vec<Appended> = ["d", "e", "f"].into_iter().map(append).collect();
    assert_eq!(later[2].segment, first[0].segment + 1, "{later:?}");
    assert_eq!(std::fs::metadata(&next).unwrap().ino(), made.ino());
    drop(log);

    let opened = open(dir.path());
    assert_eq!(opened.live.len(), 6);
    for at in first.iter().chain(&later) {
        assert_eq!(&opened.log.read(*at).unwrap().content()[..], &body[..]);
    }
}

#[test]
fn a_spare_segment_left_unused_is_where_appends_go_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let log = open(dir.path()).log;
    let body = vec![4; 300 * 1024];
    let at = rt
        .block_on(log.append(vec![put("a", &body), put("b", &body)]))
        .unwrap();
    // Closing waits for the spare being made.
    drop(log);
    let spare = segment_path(dir.path(), at[0].segment + 1);
    assert!(
        std::fs::metadata(&spare).is_ok(),
        "closing did not wait for the spare"
    );
    let opened = open(dir.path());
    assert_eq!(opened.live.len(), 2);
    let after = rt
        .block_on(opened.log.append(vec![put("c", b"small")]))
        .unwrap();
    assert_eq!(after[0].segment, at[0].segment + 1);
    drop(opened);
    let opened = open(dir.path());
    assert_eq!(keys_of(&opened), ["a", "b", "c"]);
    assert_eq!(&opened.log.read(after[0]).unwrap().content()[..], b"small");
}
#[test]
fn a_torn_tail_is_zeroed_and_appends_resume_there() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let log = open(dir.path()).log;
    let first = rt
        .block_on(log.append(vec![put("keep", b"durable")]))
        .unwrap()[0];
    let second = rt
        .block_on(log.append(vec![put("torn", b"never acknowledged")]))
        .unwrap()[0];
    drop(log);
    // A power loss that kept only part of the second batch.
    let seg = segment_path(dir.path(), second.segment);
    let mut raw = std::fs::read(&seg).unwrap();
    let batch_start = us(second.offset) - BATCH_HEADER;
    raw[us(second.offset) + RECORD_HEADER..us(second.offset) + us(second.len)].fill(0);
    std::fs::write(&seg, &raw).unwrap();

    let opened = open(dir.path());
    let keys: Vec<&[u8]> = opened.live.iter().map(|r| &r.key[..]).collect();
    assert_eq!(keys, [b"keep".as_slice()]);
    let (segment, offset, len) = opened.torn.unwrap();
    assert_eq!((segment, offset), (second.segment, batch_start as u64));
    assert!(len > 0);
    let raw = std::fs::read(&seg).unwrap();
    assert!(raw[batch_start..batch_start + us(len)]
        .iter()
        .all(|b| *b == 0));
    let next = rt
        .block_on(opened.log.append(vec![put("after", b"x")]))
        .unwrap()[0];
    assert_eq!(next.offset, second.offset);
    assert_eq!(&opened.log.read(first).unwrap().content()[..], b"durable");
    drop(opened);
    let keys: Vec<Vec<u8>> = open(dir.path()).live.into_iter().map(|r| r.key).collect();
    assert_eq!(keys, [b"after".to_vec(), b"keep".to_vec()]);
}

#[test]
fn a_damaged_batch_before_intact_ones_stops_start_up_naming_where() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let log = open(dir.path()).log;
    let victim = rt.block_on(log.append(vec![put("a", b"one")])).unwrap()[0];
    rt.block_on(log.append(vec![put("b", b"two")])).unwrap();
    drop(log);
    let seg = segment_path(dir.path(), victim.segment);
    let mut raw = std::fs::read(&seg).unwrap();
    raw[us(victim.offset) + RECORD_HEADER + 1] ^= 0xff;
    std::fs::write(&seg, &raw).unwrap();

    let err = open_error(dir.path());
    let message = err.to_string();
    assert!(matches!(err, RecoverError::Corrupt { .. }), "{message}");
    assert!(
        message.contains(&format!("{:020}.seg", victim.segment)),
        "{message}"
    );
    assert!(
        message.contains(&format!("offset {}", victim.offset - BATCH_HEADER as u64)),
        "{message}"
    );
    // Nothing was changed: the same error again.
    assert_eq!(std::fs::read(&seg).unwrap(), raw);
}

#[test]
fn a_damaged_segment_followed_by_an_intact_one_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let log = open(dir.path()).log;
    let body = vec![3; 300 * 1024];
    let mut places = Vec::new();
    for i in 0..6 {
        places.push(
            rt.block_on(log.append(vec![put(&format!("k{i}"), &body)]))
                .unwrap()[0],
        );
    }
    drop(log);
    let last_of_first = places
        .iter()
        .rfind(|a| a.segment == places[0].segment)
        .unwrap();
    assert!(places.iter().any(|a| a.segment > last_of_first.segment));
    let seg = segment_path(dir.path(), last_of_first.segment);
    let mut raw = std::fs::read(&seg).unwrap();
    raw[us(last_of_first.offset) + 100] ^= 1;
    std::fs::write(&seg, &raw).unwrap();
    let err = open_error(dir.path());
    assert!(matches!(err, RecoverError::Corrupt { .. }), "{err}");
}

#[test]
fn reads_check_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let log = open(dir.path()).log;
    let at = rt.block_on(log.append(vec![put("a", b"content")])).unwrap()[0];
    let seg = segment_path(dir.path(), at.segment);
    let mut raw = std::fs::read(&seg).unwrap();
    raw[us(at.offset) + us(at.len) - 1] ^= 1;
    std::fs::write(&seg, &raw).unwrap();
    let err = log.read(at).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("checksum"), "{err}");
}

/// The real file system, except that `fdatasync` fails while `failing` is set.
#[derive(Debug, Default)]
struct FailingSync {
    failing: Arc<std::sync::atomic::AtomicBool>,
}

struct FailingFile {
    inner: Box<dyn crate::backend::fs::WriteFile>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl crate::backend::fs::WriteFile for FailingFile {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)
    }
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }
    fn sync_all(&mut self) -> std::io::Result<()> {
        self.inner.sync_all()
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        self.inner.sync_data()
    }
}

impl Fs for FailingSync {
    fn lock(&self, dir: &Path) -> std::io::Result<Box<dyn std::fmt::Debug + Send + Sync>> {
        RealFs.lock(dir)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        RealFs.create_dir_all(path)
    }
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        RealFs.create_dir(path)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn crate::backend::fs::WriteFile>> {
        Ok(Box::new(FailingFile {
            inner: RealFs.create_new(path)?,
            failing: self.failing.clone(),
        }))
    }
    fn open_write(&self, path: &Path) -> std::io::Result<Box<dyn crate::backend::fs::WriteFile>> {
        Ok(Box::new(FailingFile {
            inner: RealFs.open_write(path)?,
            failing: self.failing.clone(),
        }))
    }
    fn open(&self, path: &Path) -> std::io::Result<Arc<dyn ReadFile>> {
        RealFs.open(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        RealFs.rename(from, to)
    }
    fn hard_link(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        RealFs.hard_link(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        RealFs.remove_file(path)
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        RealFs.remove_dir(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        RealFs.remove_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        RealFs.sync_dir(path)
    }
    fn stat(&self, path: &Path) -> std::io::Result<Option<crate::backend::fs::Meta>> {
        RealFs.stat(path)
    }
    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<crate::backend::fs::DirEntry>> {
        RealFs.read_dir(path)
    }
}

#[test]
fn after_a_failed_sync_the_log_takes_no_more_writes_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let fs = FailingSync::default();
    let failing = fs.failing.clone();
    let log = Log::open(
        Arc::new(fs),
        dir.path(),
        SEGMENT,
        true,
        LogMetrics::default(),
    )
    .unwrap()
    .log;
    let kept = rt.block_on(log.append(vec![put("before", b"ok")])).unwrap()[0];
    failing.store(true, Ordering::SeqCst);
    let err = rt
        .block_on(log.append(vec![put("during", b"?")]))
        .unwrap_err();
    assert!(matches!(err, AppendError::Stopped(_)), "{err}");
    // The disk is fine again, but a sync that "succeeds" now proves nothing about the
    // pages the failed one lost: the log stays stopped.
    failing.store(false, Ordering::SeqCst);
    let err = rt
        .block_on(log.append(vec![put("after", b"no")]))
        .unwrap_err();
    assert!(matches!(err, AppendError::Stopped(_)), "{err}");
    assert!(
        log.failure().unwrap().contains("offset"),
        "{:?}",
        log.failure()
    );
    assert_eq!(&log.read(kept).unwrap().content()[..], b"ok");
    drop(log);
    // A restart replays what is on disk and takes writes again.
    let opened = open(dir.path());
    let keys: Vec<&[u8]> = opened.live.iter().map(|r| &r.key[..]).collect();
    assert!(keys.contains(&b"before".as_slice()));
    assert!(!keys.contains(&b"after".as_slice()));
    rt.block_on(opened.log.append(vec![put("again", b"yes")]))
        .unwrap();
}

/// Why the log under `dir` does not open.
fn open_error(dir: &Path) -> RecoverError {
    Log::open(Arc::new(RealFs), dir, SEGMENT, true, LogMetrics::default()).unwrap_err()
}

fn open_err(dir: &Path) -> String {
    open_error(dir).to_string()
}

fn delete(key: &str) -> Append {
    let mut d = put(key, b"");
    d.head.kind = Kind::Delete;
    d
}

fn keys_of(opened: &Opened) -> Vec<String> {
    opened
        .live
        .iter()
        .map(|l| String::from_utf8(l.key.clone()).unwrap())
        .collect()
}

#[test]
fn a_checkpoint_lets_start_up_replay_only_what_came_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let log = open(dir.path()).log;
    for i in 0..20 {
        rt.block_on(log.append(vec![put(&format!("k{i:02}"), &[byte(i); 100])]))
            .unwrap();
    }
    assert_eq!(log.checkpoint().unwrap(), Some(20));
    assert_eq!(log.checkpoint().unwrap(), None, "nothing new to cover");
    let again = rt
        .block_on(log.append(vec![put("k00", b"newer"), delete("k01"), put("z", b"new")]))
        .unwrap()
        .at[0];
    drop(log);

    let opened = open(dir.path());
    assert_eq!(opened.checkpoint_entries, Some(20));
    assert_eq!(opened.replayed, 3, "only the records after the checkpoint");
    let keys = keys_of(&opened);
    assert_eq!(keys.len(), 20);
    assert!(!keys.contains(&"k01".to_string()), "a later delete wins");
    assert_eq!(keys.last().unwrap(), "z");
    let k00 = &opened.live[0];
    assert_eq!(k00.at, again, "a later put wins");
    assert_eq!(&opened.log.read(k00.at).unwrap().content()[..], b"newer");
    let k05 = opened.live.iter().find(|l| l.key == b"k05").unwrap();
    assert_eq!(&opened.log.read(k05.at).unwrap().content()[..], &[5; 100]);

    // A second checkpoint merges the first with what came after it.
    assert_eq!(opened.log.checkpoint().unwrap(), Some(20));
    let before: Vec<(Vec<u8>, Appended)> =
        opened.live.iter().map(|l| (l.key.clone(), l.at)).collect();
    drop(opened);
    let opened = open(dir.path());
    assert_eq!(opened.replayed, 0);
    let after: Vec<(Vec<u8>, Appended)> =
        opened.live.iter().map(|l| (l.key.clone(), l.at)).collect();
    assert_eq!(before, after);
}

#[test]
fn a_damaged_checkpoint_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let log = open(dir.path()).log;
    rt.block_on(log.append(vec![put("a", b"x"), put("b", b"y")]))
        .unwrap();
    log.checkpoint().unwrap();
    drop(log);
    let path = dir.path().join("checkpoint");
    let good = std::fs::read(&path).unwrap();
    for at in [5, 70, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let err = open_err(dir.path());
        assert!(
            err.contains("checkpoint") && err.contains("damaged"),
            "{err}"
        );
    }
    std::fs::write(&path, &good).unwrap();
    assert_eq!(open(dir.path()).live.len(), 2);
}

#[test]
fn compaction_copies_live_records_forward_and_removes_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let log = open(dir.path()).log;
    let body = |i: usize| vec![byte(i); 100 * 1024];
    let mut first = Vec::new();
    for i in 0..40 {
        let at = rt
            .block_on(log.append(vec![put(&format!("k{i:02}"), &body(i))]))
            .unwrap()[0];
        first.push(at);
    }
    assert_eq!(first[0].segment, 1);
    let in_first: Vec<usize> = (0..40).filter(|i| first[*i].segment == 1).collect();
    assert!(in_first.len() >= 5, "{in_first:?}");
    // Everything but k00..k02 is overwritten: the old segments are (mostly) dead.
    for i in 3..40 {
        rt.block_on(log.append(vec![put(&format!("k{i:02}"), &body(i + 1))]))
            .unwrap();
    }
    log.checkpoint().unwrap();
    // A delete after the checkpoint, of a record compaction will still copy.
    rt.block_on(log.append(vec![delete("k01")])).unwrap();
    let segments_before = std::fs::read_dir(dir.path()).unwrap().count();

    let moved = std::sync::Mutex::new(Vec::new());
    let relocate = |key: &[u8], from: Appended, to: Appended| {
        moved.lock().unwrap().push((key.to_vec(), from, to));
    };
    let mut compacted = Vec::new();
    while let Some(done) = log.compact(&relocate, &|| false, 1.0).unwrap() {
        compacted.push(done);
    }
    let first_done = compacted.iter().find(|c| c.segment == 1).unwrap();
    assert_eq!(first_done.copied_records, 3);
    assert!(compacted.len() >= 4, "{compacted:?}");
    assert!(!segment_path(dir.path(), 1).try_exists().unwrap());
    assert!(std::fs::read_dir(dir.path()).unwrap().count() < segments_before);
    let moved = moved.into_inner().unwrap();
    let keys: Vec<&[u8]> = moved.iter().map(|(k, ..)| &k[..]).collect();
    assert_eq!(keys, [b"k00", b"k01", b"k02"]);
    for (i, (_, from, to)) in moved.iter().enumerate() {
        assert_eq!(*from, first[i]);
        assert_eq!(
            (to.seq, to.len),
            (from.seq, from.len),
            "a copy keeps its number"
        );
        assert_eq!(&log.read(*to).unwrap().content()[..], &body(i)[..]);
    }
    assert!(log.read(first[0]).is_err(), "the old segment is gone");
    drop(log);

    // The checkpoint still names the removed segment; the copies after it win, and the
    // delete, newer than the copy, still wins over it.
    let opened = open(dir.path());
    let keys = keys_of(&opened);
    assert_eq!(keys.len(), 39);
    assert!(!keys.contains(&"k01".to_string()));
    for live in &opened.live {
        let i: usize = std::str::from_utf8(&live.key[1..])
            .unwrap()
            .parse()
            .unwrap();
        let want = if i < 3 { body(i) } else { body(i + 1) };
        assert_eq!(&opened.log.read(live.at).unwrap().content()[..], &want[..]);
    }
}

#[test]
fn a_missing_checkpoint_after_compaction_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let log = open(dir.path()).log;
    for i in 0..30 {
        rt.block_on(log.append(vec![put("same", &[byte(i); 100 * 1024])]))
            .unwrap();
    }
    log.checkpoint().unwrap();
    while log
        .compact(&|_, _, _| {}, &|| false, 1.0)
        .unwrap()
        .is_some()
    {}
    drop(log);
    assert!(!segment_path(dir.path(), 1).try_exists().unwrap());
    assert_eq!(open(dir.path()).live.len(), 1);
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    let err = open_err(dir.path());
    assert!(err.contains("checkpoint is missing"), "{err}");
}
