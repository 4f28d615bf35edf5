//! The write protocol of storaged, read from its system calls (`strace -f`): for every
//! acknowledged write, data to a temporary file → fsync(file) → rename → fsync(parent) and
//! the parent of every directory created → only then the response on the socket.

use std::path::{Path, PathBuf};
use std::process::Command;

use faults::strace::{self, Call, FILE_AND_SOCKET_CALLS};
use testkit::{free_port, Launch};

/// One step of the scripted workload.
#[derive(Debug, Clone)]
enum Op {
    Put { key: String, body: Vec<u8> },
    Delete { key: String },
}

/// A create in a new nested directory, an overwrite, a delete, a large (streamed) object,
/// then 200 mixed PUTs (new and existing keys, small and large, new directories) with
/// deletes among them.
fn script() -> Vec<Op> {
    let put = |key: &str, body: Vec<u8>| Op::Put {
        key: key.to_owned(),
        body,
    };
    let mut ops = vec![
        put("audit/new/nested/dir/first", b"one".to_vec()),
        put("audit/new/nested/dir/first", b"two".to_vec()),
        Op::Delete {
            key: "audit/new/nested/dir/first".into(),
        },
        put("audit/big/object", vec![7; 600 * 1024]),
    ];
    for i in 0..200_usize {
        let key = format!("audit/mixed/d{}/k{}", i % 7, i % 23);
        let body = if i % 25 == 0 {
            vec![u8::try_from(i % 251).unwrap(); 300 * 1024 + i]
        } else {
            format!("value {i}").into_bytes()
        };
        ops.push(put(&key, body));
        if i % 20 == 19 {
            ops.push(Op::Delete { key });
        }
    }
    ops
}

/// The file that holds `key` (keys here need no escaping).
fn object_file(objects: &Path, key: &str) -> String {
    format!("{}/{key}%obj", objects.display())
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(p, _)| p)
}

fn is_response(c: &Call) -> bool {
    matches!(c.name.as_str(), "write" | "writev" | "sendto" | "sendmsg")
        && c.fd_path().is_some_and(|p| p.starts_with("TCP:"))
        && c.strings()
            .first()
            .is_some_and(|s| s.starts_with("HTTP/1.1 "))
}

/// Objects up to this size are log records when the write log is on (the setting below).
const LOG_MAX: usize = 256 * 1024;

/// Every way the trace breaks the protocol: the op's index and a message. With `log`,
/// objects up to [`LOG_MAX`] bytes are records in the write log (ADR 0017).
fn audit(calls: &[Call], ops: &[Op], data: &Path, log: bool) -> Vec<(usize, String)> {
    // Where each key's current version is: `true` for the log.
    let mut in_log = std::collections::HashMap::<&str, bool>::new();
    let responses: Vec<&Call> = calls.iter().filter(|c| is_response(c)).collect();
    assert!(
        responses.len() >= ops.len(),
        "fewer responses than requests"
    );
    let responses = &responses[responses.len() - ops.len()..];
    let mut violations = Vec::new();
    // The first window starts after the response before the script (the readiness probe).
    let mut window_start = calls
        .iter()
        .rev()
        .find(|c| is_response(c) && c.end < responses[0].start)
        .map_or(0, |c| c.end);
    for (i, (op, response)) in ops.iter().zip(responses).enumerate() {
        let window = Window {
            calls: calls
                .iter()
                .filter(|c| c.start > window_start && c.end < response.start && c.ok())
                .collect(),
        };
        let status = response.strings()[0].clone();
        let objects = data.join("objects");
        let found = match op {
            Op::Put { key, body } => {
                let was_in_log = in_log.get(key.as_str()).copied();
                let to_log = log && body.len() <= LOG_MAX;
                let mut found = if to_log {
                    let mut found = window.logged(&data.join("log"), body.len(), None);
                    if was_in_log == Some(false) {
                        found.extend(window.delete(&objects, key));
                    }
                    found
                } else {
                    let mut found = window.put(&objects, &data.join("tmp"), key, body);
                    if was_in_log == Some(true) {
                        // The record it replaces is superseded by a delete record, after
                        // the rename.
                        let rename = window.rename_onto(&object_file(&objects, key));
                        found.extend(window.logged(&data.join("log"), 0, rename));
                    }
                    found
                };
                in_log.insert(key, to_log);
                if !(status.starts_with("HTTP/1.1 201") || status.starts_with("HTTP/1.1 200")) {
                    found.push(format!("answered {status}"));
                }
                found
            }
            Op::Delete { key } => {
                let mut found = match in_log.remove(key.as_str()) {
                    Some(true) => window.logged(&data.join("log"), 0, None),
                    _ => window.delete(&objects, key),
                };
                if !status.starts_with("HTTP/1.1 204") {
                    found.push(format!("answered {status}"));
                }
                found
            }
        };
        violations.extend(
            found
                .into_iter()
                .map(|v| (i, format!("op {i} {op:?}: {v}"))),
        );
        window_start = response.end;
    }
    violations
}

/// The successful calls between one response and the next.
struct Window<'a> {
    calls: Vec<&'a Call>,
}

impl Window<'_> {
    fn synced_after(&self, path: &str, after: usize) -> bool {
        self.calls.iter().any(|c| {
            matches!(c.name.as_str(), "fsync" | "fdatasync")
                && c.fd_path() == Some(path)
                && c.start > after
        })
    }

    fn put(&self, objects: &Path, tmp: &Path, key: &str, body: &[u8]) -> Vec<String> {
        let mut found = Vec::new();
        let target = object_file(objects, key);
        let Some(rename) = self
            .calls
            .iter()
            .find(|c| c.name.starts_with("rename") && c.strings().get(1) == Some(&target))
        else {
            return vec!["no rename onto the object file before the response".into()];
        };
        let from = rename.strings()[0].clone();
        if !from.starts_with(&format!("{}/", tmp.display())) {
            found.push(format!("renamed from {from}, outside tmp/"));
        }
        let writes: Vec<&&Call> = self
            .calls
            .iter()
            .filter(|c| {
                matches!(c.name.as_str(), "write" | "pwrite64" | "writev")
                    && c.fd_path() == Some(from.as_str())
            })
            .collect();
        let written: usize = writes
            .iter()
            .filter_map(|c| c.ret.parse::<usize>().ok())
            .sum();
        if written < body.len() + 64 {
            found.push(format!("{written} bytes written to the temporary file"));
        }
        let last_write = writes.iter().map(|c| c.end).max().unwrap_or(0);
        if writes.iter().any(|c| c.start > rename.start) {
            found.push("a write to the temporary file after the rename".into());
        }
        let file_synced = self.calls.iter().any(|c| {
            matches!(c.name.as_str(), "fsync" | "fdatasync")
                && c.fd_path() == Some(from.as_str())
                && c.start > last_write
                && c.end < rename.start
        });
        if !file_synced {
            found.push(
                "no fsync of the temporary file between its last write and the rename".into(),
            );
        }
        if !self.synced_after(parent(&target), rename.end) {
            found.push(format!("no fsync of {} after the rename", parent(&target)));
        }
        for mkdir in self.calls.iter().filter(|c| c.name.starts_with("mkdir")) {
            let dir = mkdir.strings()[0].clone();
            if mkdir.end > rename.start {
                found.push(format!("{dir} created after the rename"));
            }
            if !self.synced_after(parent(&dir), mkdir.end) {
                found.push(format!("created {dir} but no fsync of its parent after"));
            }
        }
        found
    }

    /// The end of the rename onto `target`, if there is one.
    fn rename_onto(&self, target: &str) -> Option<usize> {
        self.calls
            .iter()
            .find(|c| {
                c.name.starts_with("rename")
                    && c.strings().get(1).map(String::as_str) == Some(target)
            })
            .map(|c| c.end)
    }

    /// A record of at least `content` bytes written to a log segment (after `after`, when
    /// given), then an `fdatasync` of that segment after the write.
    fn logged(&self, log: &Path, content: usize, after: Option<usize>) -> Vec<String> {
        let segments = format!("{}/", log.display());
        let after = after.unwrap_or(0);
        let writes: Vec<&&Call> = self
            .calls
            .iter()
            .filter(|c| {
                matches!(
                    c.name.as_str(),
                    "pwrite64" | "write" | "pwritev" | "pwritev2"
                ) && c.start > after
                    && c.fd_path().is_some_and(|p| p.starts_with(&segments))
            })
            .collect();
        let Some(last) = writes.iter().max_by_key(|c| c.end) else {
            return vec!["no write to a log segment before the response".into()];
        };
        let written: usize = writes
            .iter()
            .filter_map(|c| c.ret.parse::<usize>().ok())
            .sum();
        let mut found = Vec::new();
        // A batch header (32 bytes) and a record header (80) around the content.
        if written < content + 112 {
            found.push(format!(
                "{written} bytes written to the log for {content} of content"
            ));
        }
        let segment = last.fd_path().unwrap_or_default();
        if !self
            .calls
            .iter()
            .any(|c| c.name == "fdatasync" && c.fd_path() == Some(segment) && c.start > last.end)
        {
            found.push(format!(
                "no fdatasync of {segment} after the record's write"
            ));
        }
        found
    }

    fn delete(&self, objects: &Path, key: &str) -> Vec<String> {
        let target = object_file(objects, key);
        match self
            .calls
            .iter()
            .find(|c| c.name.starts_with("unlink") && c.strings().first() == Some(&target))
        {
            None => vec!["no unlink of the object file before the response".into()],
            Some(unlink) if !self.synced_after(parent(&target), unlink.end) => {
                vec![format!("no fsync of {} after the unlink", parent(&target))]
            }
            Some(_) => Vec::new(),
        }
    }
}

/// How many distinct ops the violations name.
fn ops_named(violations: &[(usize, String)]) -> usize {
    violations
        .iter()
        .map(|(i, _)| *i)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// Runs the script against storaged under strace (with the write log on or off) and
/// returns the trace, the script and the data directory.
async fn traced_script(root: &Path, log: bool) -> (Vec<Call>, Vec<Op>, PathBuf) {
    let data = root.join("data");
    let trace: PathBuf = root.join("trace.txt");
    let mut storaged = Launch::storaged(&data, free_port())
        .env(
            "STORAGED_LOG_MAX_OBJECT_SIZE",
            if log { LOG_MAX.to_string() } else { "0".into() },
        )
        .under([
            "strace".as_ref(),
            "-f".as_ref(),
            "-yy".as_ref(),
            "-s".as_ref(),
            "24".as_ref(),
            "-e".as_ref(),
            FILE_AND_SOCKET_CALLS.as_ref(),
            "-o".as_ref(),
            trace.as_os_str(),
        ])
        .log_dir(root)
        .spawn();
    storaged.wait_ready().await;

    let ops = script();
    let api = storaged.api();
    for op in &ops {
        let reply = match op {
            Op::Put { key, body } => api.put(&format!("/v1/objects/{key}"), body.clone()).await,
            Op::Delete { key } => {
                api.send(
                    api.request(awc::http::Method::DELETE, &format!("/v1/objects/{key}")),
                    None,
                )
                .await
            }
        }
        .unwrap();
        assert!(reply.status.is_success(), "{op:?}: {}", reply.code());
    }
    // SIGTERM to storaged and strace: storaged drains, strace flushes the trace.
    Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", storaged.pid())])
        .status()
        .unwrap();
    assert!(
        storaged
            .wait_exit(std::time::Duration::from_secs(20))
            .is_some(),
        "strace did not exit"
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    (strace::parse(&text), ops, data)
}

#[actix_web::test]
async fn every_acknowledged_write_is_fsynced_renamed_and_its_directory_fsynced_first() {
    strace::require();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (calls, ops, data) = traced_script(&root, false).await;
    let violations = audit(&calls, &ops, &data, false);
    let messages: Vec<&str> = violations.iter().map(|(_, m)| m.as_str()).collect();
    assert!(violations.is_empty(), "{}", messages.join("\n"));
    let puts = ops.iter().filter(|o| matches!(o, Op::Put { .. })).count();
    let renames = calls
        .iter()
        .filter(|c| c.name.starts_with("rename"))
        .count();
    let fsyncs = calls.iter().filter(|c| c.name == "fsync").count();
    let mkdirs = calls
        .iter()
        .filter(|c| c.name.starts_with("mkdir") && c.ok())
        .count();
    println!(
        "write protocol: {} acknowledged writes ({puts} PUTs, {} DELETEs) audited over {} \
         system calls ({renames} renames, {fsyncs} fsyncs, {mkdirs} directories created): \
         0 violations",
        ops.len(),
        ops.len() - puts,
        calls.len()
    );

    // The audit can fail: the same trace without the directory fsyncs, or with the file
    // fsyncs dropped, breaks it for every write.
    let tmp = format!("{}/", data.join("tmp").display());
    let no_dir_sync: Vec<Call> = calls
        .iter()
        .filter(|c| !(c.name == "fsync" && c.fd_path().is_some_and(|p| !p.starts_with(&tmp))))
        .cloned()
        .collect();
    assert_eq!(
        ops_named(&audit(&no_dir_sync, &ops, &data, false)),
        ops.len()
    );
    let no_file_sync: Vec<Call> = calls
        .iter()
        .filter(|c| !(c.name == "fsync" && c.fd_path().is_some_and(|p| p.starts_with(&tmp))))
        .cloned()
        .collect();
    assert_eq!(ops_named(&audit(&no_file_sync, &ops, &data, false)), puts);
}

#[actix_web::test]
async fn with_the_write_log_every_acknowledged_record_is_covered_by_an_fdatasync_first() {
    strace::require();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (calls, ops, data) = traced_script(&root, true).await;
    let violations = audit(&calls, &ops, &data, true);
    let messages: Vec<&str> = violations.iter().map(|(_, m)| m.as_str()).collect();
    assert!(violations.is_empty(), "{}", messages.join("\n"));
    let syncs = calls.iter().filter(|c| c.name == "fdatasync").count();
    let logged = ops
        .iter()
        .filter(|o| !matches!(o, Op::Put { body, .. } if body.len() > LOG_MAX))
        .count();
    println!(
        "write protocol with the write log: {} acknowledged writes ({logged} of them log \
         records) audited over {} system calls ({syncs} fdatasyncs): 0 violations",
        ops.len(),
        calls.len()
    );
    // The audit can fail: without the log's fdatasyncs every logged write breaks it (and
    // every large write over a logged key, whose delete record is synced too).
    let no_log_sync: Vec<Call> = calls
        .iter()
        .filter(|c| c.name != "fdatasync")
        .cloned()
        .collect();
    assert!(ops_named(&audit(&no_log_sync, &ops, &data, true)) >= logged);
}
