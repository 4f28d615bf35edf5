//! The concurrency checker: many clients run random operations, on both faces of the real
//! storaged, on a few keys that share directory levels (`a/x`, `a/y`, `a/b/z`, ...), with
//! sizes on both sides of `log_max_object_size`. Every invocation and answer is recorded;
//! each key's history must be linearizable (`faults::linearizable`), a listing is a read
//! of every key it covers, and at the end — and again after a kill -9 and a restart —
//! every listed key reads back and every key that reads back is listed.
//!
//! No fault is injected: every request must get a definite answer. A 500 counts as
//! "nothing changed" (so a 500 whose change did happen shows up as a violation), a 503 or
//! a dropped connection as "outcome unknown".

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use actix_web::http::Method;
use bytes::Bytes;
use faults::linearizable::{self, Event, Op, Ret, Rng, Value};
use faults::sized;
use md5::Digest as _;
use testkit::{free_port, Api, Launch, Proc, Reply};

const BUCKET: &str = "lab";
/// Keys that share directory levels with each other, in bucket [`BUCKET`].
const KEYS: [&str; 7] = ["a/x", "a/y", "a/b/z", "a/b/w", "a/b/c/v", "a/c/u", "d"];
/// `log_max_object_size` in these runs: small objects are log records, larger ones files.
const LOG_MAX: u64 = 64 * 1024;
const SMALL_BASE: u64 = 16;
const LARGE_BASE: u64 = LOG_MAX + 1;

/// Object `id`'s content: its size says its id (so a listing's size names the write),
/// the bytes are derived from the id (so a mixed or torn read is caught).
fn content(id: Value, large: bool) -> Vec<u8> {
    let size = usize::try_from(if large { LARGE_BASE } else { SMALL_BASE } + id).unwrap();
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(&id.to_le_bytes());
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while v.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x.to_le_bytes()[0]);
    }
    v
}

fn id_of_size(size: u64) -> Value {
    if size > LOG_MAX {
        size - LARGE_BASE
    } else {
        size - SMALL_BASE
    }
}

/// The write whose content `bytes` are, if any.
fn decode(bytes: &[u8]) -> Option<Value> {
    let id = id_of_size(bytes.len() as u64);
    (content(id, bytes.len() as u64 > LOG_MAX) == bytes).then_some(id)
}

fn pick_key(rng: &mut Rng) -> &'static str {
    KEYS[rng.below(KEYS.len())]
}

/// Everything the clients saw.
#[derive(Default)]
struct History {
    events: BTreeMap<&'static str, Vec<Event>>,
    /// S3 ETags (MD5) of every content written, to name what a copy copied.
    md5s: HashMap<String, Value>,
    /// Answers that are wrong whatever the order (unexpected statuses, torn content).
    errors: Vec<String>,
    counts: BTreeMap<&'static str, usize>,
    server_errors: usize,
}

struct Run {
    start: Instant,
    native: Api,
    s3: Api,
    history: Mutex<History>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Run {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap()
    }

    fn record(&self, key: &'static str, op: Op, ret: Ret, call: u64, client: usize) {
        let answered = self.now();
        self.history
            .lock()
            .unwrap()
            .events
            .entry(key)
            .or_default()
            .push(Event {
                op,
                ret,
                call,
                answered,
                client,
            });
    }

    fn error(&self, what: String) {
        self.history.lock().unwrap().errors.push(what);
    }

    fn count(&self, kind: &'static str) {
        *self.history.lock().unwrap().counts.entry(kind).or_default() += 1;
    }

    /// A new value: its id, content and MD5 remembered.
    fn value(&self, large: bool) -> (Value, Vec<u8>) {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bytes = content(id, large);
        let md5 = md5::Md5::digest(&bytes)
            .iter()
            .fold(String::new(), |mut hex, b| {
                use std::fmt::Write as _;
                let _ = write!(hex, "{b:02x}");
                hex
            });
        self.history.lock().unwrap().md5s.insert(md5, id);
        (id, bytes)
    }

    /// What an answer to a write or delete says happened: `None` for a 500 (nothing may
    /// have changed: left out of the history).
    fn outcome(&self, what: &str, reply: &Result<Reply, String>, ok: &[u16]) -> Option<Ret> {
        match reply {
            Err(_) => Some(Ret::Unknown),
            Ok(r) if ok.contains(&r.code()) => Some(Ret::Done),
            Ok(r) if r.code() == 412 => Some(Ret::Refused),
            Ok(r) if r.code() == 503 => Some(Ret::Unknown),
            Ok(r) if r.code() == 500 => {
                self.history.lock().unwrap().server_errors += 1;
                self.error(format!("{what}: 500 {}", String::from_utf8_lossy(&r.body)));
                None
            }
            Ok(r) => {
                self.error(format!(
                    "{what}: unexpected {} {}",
                    r.code(),
                    String::from_utf8_lossy(&r.body)
                ));
                None
            }
        }
    }

    async fn put(&self, client: usize, key: &'static str, large: bool, create: bool) {
        let (id, bytes) = self.value(large);
        let mut req = self
            .native
            .request(Method::PUT, &format!("/v1/objects/{BUCKET}/{key}"));
        if create {
            req = req.insert_header(("if-none-match", "*"));
        }
        let call = self.now();
        let reply = self.native.send(req, Some(bytes.into())).await;
        let op = if create {
            Op::Create(id)
        } else {
            Op::Write(id)
        };
        if let Some(ret) = self.outcome(&format!("PUT {key}"), &reply, &[200, 201]) {
            self.record(key, op, ret, call, client);
        }
    }

    async fn delete(&self, client: usize, key: &'static str) {
        let call = self.now();
        let reply = self
            .native
            .delete(&format!("/v1/objects/{BUCKET}/{key}"))
            .await;
        if let Some(ret) = self.outcome(&format!("DELETE {key}"), &reply, &[204]) {
            self.record(key, Op::Delete, ret, call, client);
        }
    }

    async fn get(&self, client: usize, key: &'static str) -> Option<Option<Value>> {
        let call = self.now();
        let reply = self
            .native
            .get(&format!("/v1/objects/{BUCKET}/{key}"))
            .await;
        let seen = match &reply {
            Ok(r) if r.code() == 200 => {
                let Some(id) = decode(&r.body) else {
                    self.error(format!(
                        "GET {key}: content of no write ({} bytes)",
                        r.body.len()
                    ));
                    return None;
                };
                Some(id)
            }
            Ok(r) if r.code() == 404 => None,
            _ => {
                let _ = self.outcome(&format!("GET {key}"), &reply, &[]);
                return None;
            }
        };
        self.record(key, Op::Read, Ret::Saw(seen), call, client);
        Some(seen)
    }

    /// A listing of the bucket: a read of every key in [`KEYS`].
    async fn list(&self, client: usize) -> Option<BTreeMap<&'static str, Value>> {
        let call = self.now();
        let reply = self
            .native
            .get(&format!("/v1/objects?prefix={BUCKET}/&limit=1000"))
            .await;
        let Ok(reply) = reply.as_ref().map_err(Clone::clone).and_then(|r| {
            (r.code() == 200)
                .then_some(r)
                .ok_or(format!("{}", r.code()))
        }) else {
            self.error(format!("LIST: {reply:?}"));
            return None;
        };
        let answered = self.now();
        let mut listed = BTreeMap::new();
        for o in reply.json()["objects"].as_array().unwrap() {
            let name = o["key"].as_str().unwrap();
            let size = o["size"].as_u64().unwrap();
            match KEYS.iter().find(|k| format!("{BUCKET}/{k}") == name) {
                Some(k) => {
                    listed.insert(*k, id_of_size(size));
                }
                None => self.error(format!("LIST shows {name:?}, a key nobody wrote")),
            }
        }
        let mut h = self.history.lock().unwrap();
        for key in KEYS {
            h.events.entry(key).or_default().push(Event {
                op: Op::Read,
                ret: Ret::Saw(listed.get(key).copied()),
                call,
                answered,
                client,
            });
        }
        Some(listed)
    }

    /// S3 CopyObject `src` → `dst`: a read of `src` and a write of what it read to `dst`.
    async fn copy(&self, client: usize, src: &'static str, dst: &'static str) {
        let req = self
            .s3
            .request(Method::PUT, &format!("/{BUCKET}/{dst}"))
            .insert_header(("x-amz-copy-source", format!("{BUCKET}/{src}")));
        let call = self.now();
        let reply = self.s3.send(req, None).await;
        match &reply {
            Ok(r) if r.code() == 200 => {
                let body = String::from_utf8_lossy(&r.body);
                let etag = between(&body, "<ETag>", "</ETag>")
                    .unwrap_or_default()
                    .replace("&quot;", "")
                    .replace('"', "");
                let id = self.history.lock().unwrap().md5s.get(&etag).copied();
                match id {
                    Some(id) => {
                        self.record(src, Op::Read, Ret::Saw(Some(id)), call, client);
                        self.record(dst, Op::Write(id), Ret::Done, call, client);
                    }
                    None => self.error(format!("COPY {src} {dst}: an ETag of no write: {body}")),
                }
            }
            Ok(r) if r.code() == 404 => self.record(src, Op::Read, Ret::Saw(None), call, client),
            _ => {
                let _ = self.outcome(&format!("COPY {src} {dst}"), &reply, &[]);
            }
        }
    }

    /// An S3 multipart upload of one part, completed: a write when completed.
    async fn multipart(&self, client: usize, key: &'static str, large: bool) {
        let (id, bytes) = self.value(large);
        let path = format!("/{BUCKET}/{key}");
        let created = self
            .s3
            .send(
                self.s3.request(Method::POST, &format!("{path}?uploads")),
                None,
            )
            .await;
        let upload = match &created {
            Ok(r) if r.code() == 200 => between(
                &String::from_utf8_lossy(&r.body),
                "<UploadId>",
                "</UploadId>",
            )
            .unwrap_or_default(),
            _ => return self.error(format!("CreateMultipartUpload {key}: {created:?}")),
        };
        let part = self
            .s3
            .send(
                self.s3.request(
                    Method::PUT,
                    &format!("{path}?partNumber=1&uploadId={upload}"),
                ),
                Some(bytes.into()),
            )
            .await;
        let etag = match &part {
            Ok(r) if r.code() == 200 => r.header("etag").unwrap_or_default().to_owned(),
            _ => return self.error(format!("UploadPart {key}: {part:?}")),
        };
        let body = format!(
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
        );
        let call = self.now();
        let reply = self
            .s3
            .send(
                self.s3
                    .request(Method::POST, &format!("{path}?uploadId={upload}")),
                Some(body.into()),
            )
            .await;
        // CompleteMultipartUpload can fail inside a 200.
        let reply = reply.map(|r| {
            if String::from_utf8_lossy(&r.body).contains("<Error>") {
                Reply {
                    status: actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                    ..r
                }
            } else {
                r
            }
        });
        if let Some(ret) = self.outcome(&format!("COMPLETE {key}"), &reply, &[200]) {
            self.record(key, Op::Write(id), ret, call, client);
        }
    }

    /// S3 DeleteObjects of `keys`: one delete per key.
    async fn delete_objects(&self, client: usize, keys: &[&'static str]) {
        let objects = keys.iter().fold(String::new(), |mut xml, k| {
            use std::fmt::Write as _;
            let _ = write!(xml, "<Object><Key>{k}</Key></Object>");
            xml
        });
        let body = format!("<Delete>{objects}</Delete>");
        let md5 = base64_simd::STANDARD.encode_to_string(md5::Md5::digest(body.as_bytes()));
        let req = self
            .s3
            .request(Method::POST, &format!("/{BUCKET}?delete"))
            .insert_header(("content-md5", md5));
        let call = self.now();
        let reply = self.s3.send(req, Some(Bytes::from(body))).await;
        let text = match &reply {
            Ok(r) if r.code() == 200 => String::from_utf8_lossy(&r.body).into_owned(),
            _ => {
                for k in keys {
                    if let Some(ret) = self.outcome(&format!("DeleteObjects {k}"), &reply, &[]) {
                        self.record(k, Op::Delete, ret, call, client);
                    }
                }
                return;
            }
        };
        for part in text.split("<Deleted>").skip(1) {
            let key = between(part, "<Key>", "</Key>").unwrap_or_default();
            match keys.iter().find(|k| **k == key) {
                Some(k) => self.record(k, Op::Delete, Ret::Done, call, client),
                None => self.error(format!("DeleteObjects: deleted {key:?}, not asked")),
            }
        }
        for part in text.split("<Error>").skip(1) {
            self.history.lock().unwrap().server_errors += 1;
            self.error(format!(
                "DeleteObjects: {}",
                part.split("</Error>").next().unwrap_or("")
            ));
        }
    }

    async fn client(&self, client: usize, seed: u64, ops: usize) {
        let mut rng = Rng((seed ^ 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(client as u64 + 1)) | 1);
        for _ in 0..ops {
            let large = rng.below(3) == 0;
            let key = pick_key(&mut rng);
            let kind = match rng.below(100) {
                0..=24 => {
                    self.put(client, key, large, false).await;
                    "put"
                }
                25..=32 => {
                    self.put(client, key, large, true).await;
                    "put if-none-match"
                }
                33..=52 => {
                    self.delete(client, key).await;
                    "delete"
                }
                53..=67 => {
                    self.get(client, key).await;
                    "get"
                }
                68..=74 => {
                    self.list(client).await;
                    "list"
                }
                75..=83 => {
                    let dst = pick_key(&mut rng);
                    self.copy(client, key, dst).await;
                    "s3 copy"
                }
                84..=89 => {
                    self.multipart(client, key, large).await;
                    "s3 multipart"
                }
                _ => {
                    let mut keys = vec![key];
                    for _ in 0..=rng.below(3) {
                        let k = pick_key(&mut rng);
                        if !keys.contains(&k) {
                            keys.push(k);
                        }
                    }
                    self.delete_objects(client, &keys).await;
                    "s3 delete objects"
                }
            };
            self.count(kind);
        }
    }
}

fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(text[start..end].to_owned())
}

fn launch(data: &std::path::Path, logs: &std::path::Path, s3: u16, log_max: u64) -> Launch {
    Launch::storaged(data, free_port())
        .s3(s3)
        .env("STORAGED_LOG_MAX_OBJECT_SIZE", log_max.to_string())
        .log_dir(logs)
}

/// Each key's value as GET and a listing see it after every client stopped; both must agree.
async fn quiescent(run: &Run) -> BTreeMap<&'static str, Value> {
    let mut read = BTreeMap::new();
    for key in KEYS {
        if let Some(Some(id)) = run.get(usize::MAX, key).await {
            read.insert(key, id);
        }
    }
    let listed = run.list(usize::MAX).await.unwrap_or_default();
    assert_eq!(
        listed, read,
        "the listing and GET disagree once every client stopped"
    );
    read
}

async fn check_run(log_max: u64) {
    let seed = std::env::var("CONCURRENCY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            u64::try_from(
                std::time::SystemTime::UNIX_EPOCH
                    .elapsed()
                    .unwrap()
                    .as_nanos()
                    % 1_000_000_007,
            )
            .unwrap()
                | 1
        });
    let clients = sized(8, 16);
    let ops = sized(150, 1500);
    let dir = tempfile::tempdir().unwrap();
    let s3_port = free_port();
    let mut proc: Proc = launch(&dir.path().join("data"), dir.path(), s3_port, log_max).spawn();
    proc.wait_ready().await;
    let s3 = Api::new(s3_port);
    let made = s3
        .send(s3.request(Method::PUT, &format!("/{BUCKET}")), None)
        .await
        .unwrap();
    assert_eq!(made.code(), 200, "CreateBucket: {:?}", made.body);

    let run = Run {
        start: Instant::now(),
        native: proc.api(),
        s3,
        history: Mutex::default(),
        next_id: std::sync::atomic::AtomicU64::new(1),
    };
    let started = Instant::now();
    futures_util::future::join_all((0..clients).map(|c| run.client(c, seed, ops))).await;
    let took = started.elapsed();
    let before = quiescent(&run).await;

    // The same on what is on disk, after a kill -9.
    proc.restart();
    proc.wait_ready().await;
    let after = quiescent(&run).await;

    let history = run.history.into_inner().unwrap();
    let mut violations = Vec::new();
    let mut checked = 0;
    for (key, events) in &history.events {
        // Reads after the restart follow the same register: nothing acknowledged is lost.
        checked += events.len();
        if let Err(v) = linearizable::check(None, events) {
            // The operations around the first that did not fit.
            let at = v.stuck.first().map_or(0, |e| e.call);
            let mut near: Vec<&Event> = events
                .iter()
                .filter(|e| e.answered + 50_000_000 >= at && e.call <= at + 50_000_000)
                .collect();
            near.sort_by_key(|e| e.call);
            let near: Vec<String> = near.iter().map(|e| format!("    {e}")).collect();
            violations.push(format!("key {key}: {v}  nearby:\n{}", near.join("\n")));
        }
    }
    let total: usize = history.counts.values().sum();
    eprintln!(
        "concurrency checker (log_max_object_size {log_max}, seed {seed}): {clients} clients, {total} operations in {took:.1?} \
         ({:?}), {} key histories of {checked} events checked, {} violations, {} server errors, {} other errors",
        history.counts,
        history.events.len(),
        violations.len(),
        history.server_errors,
        history.errors.len(),
    );
    assert_eq!(before, after, "a restart changed what the store holds");
    assert!(
        violations.is_empty() && history.errors.is_empty(),
        "seed {seed}:\n{}\n{}",
        violations.join("\n"),
        history
            .errors
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[actix_web::test]
async fn concurrent_operations_on_sibling_keys_are_linearizable_with_the_log() {
    check_run(LOG_MAX).await;
}

#[actix_web::test]
async fn concurrent_operations_on_sibling_keys_are_linearizable_on_files_only() {
    check_run(0).await;
}
