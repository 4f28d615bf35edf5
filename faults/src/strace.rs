//! Running a service under `strace` and reading its trace back.
//!
//! The trace is written with `-f -yy`, so every file descriptor argument carries its path
//! (`7</data/objects/a>`) or its TCP endpoints. A call interrupted by another thread's
//! line (`<unfinished ...>` … `<... resumed>`) becomes one [`Call`] spanning both lines,
//! so "A happened before B" is `a.end < b.start`.

use std::collections::HashMap;
use std::process::Command;

/// Syscalls the write-protocol checks look at.
pub const FILE_AND_SOCKET_CALLS: &str = "trace=openat,write,writev,pwrite64,sendto,sendmsg,\
fsync,fdatasync,rename,renameat,renameat2,mkdir,mkdirat,unlink,unlinkat";

/// Panics with an install hint when strace is missing.
pub fn require() {
    let ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "this test needs strace (apt-get install strace; .ci/run installs it)"
    );
}

/// The wrapper (for `Launch::under`) that runs a service under `strace -f` and kills it
/// with SIGKILL on entering the `k`-th `syscall` (counted per thread).
pub fn kill_at(syscall: &str, k: usize) -> Vec<String> {
    vec![
        "strace".to_owned(),
        "-f".into(),
        "-qq".into(),
        "-o".into(),
        "/dev/null".into(),
        "-e".into(),
        format!("trace={syscall}"),
        "-e".into(),
        format!("inject={syscall}:signal=SIGKILL:when={k}"),
    ]
}

/// One system call: its thread, name, raw argument text, return text, and the trace
/// lines where it started and ended.
#[derive(Debug, Clone)]
pub struct Call {
    pub tid: u32,
    pub name: String,
    pub args: String,
    pub ret: String,
    pub start: usize,
    pub end: usize,
}

impl Call {
    /// The path of the first argument when it is a file descriptor (`N<path>`).
    pub fn fd_path(&self) -> Option<&str> {
        let open = self.args.find('<')?;
        if !self.args[..open].chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some(until_close(&self.args[open + 1..]))
    }

    /// The path of the descriptor returned (`= N<path>`).
    pub fn ret_path(&self) -> Option<&str> {
        let open = self.ret.find('<')?;
        Some(until_close(&self.ret[open + 1..]))
    }

    /// The quoted string arguments, in order.
    pub fn strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = self.args.as_str();
        while let Some(open) = rest.find('"') {
            let mut s = String::new();
            let mut chars = rest[open + 1..].char_indices();
            let mut close = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            s.push('\\');
                            s.push(e);
                        }
                    }
                    '"' => {
                        close = Some(open + 1 + i);
                        break;
                    }
                    c => s.push(c),
                }
            }
            out.push(s);
            match close {
                Some(c) => rest = &rest[c + 1..],
                None => break,
            }
        }
        out
    }

    /// Whether the call returned successfully (not `-1`).
    pub fn ok(&self) -> bool {
        !self.ret.trim_start().starts_with("-1") && !self.ret.is_empty()
    }
}

/// The text up to the `>` closing a `<...>` (paths may hold `>` in `<char 1:3>`-style
/// suffixes; the last `>` of the token wins).
fn until_close(s: &str) -> &str {
    let token = s.split([',', ')']).next().unwrap_or(s);
    token.rfind('>').map_or(token, |i| &token[..i])
}

/// Parses an `strace -f` output file.
pub fn parse(text: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut pending: HashMap<u32, (String, String, usize)> = HashMap::new();
    for (line_no, line) in text.lines().enumerate() {
        let Some((tid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(tid) = tid.parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("+++") || rest.starts_with("---") {
            continue;
        }
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some((name, tail)) = resumed.split_once(" resumed>") else {
                continue;
            };
            let Some((first, args, start)) = pending.remove(&tid) else {
                continue;
            };
            debug_assert_eq!(first, name);
            let (more, returned) = split_ret(tail);
            calls.push(Call {
                tid,
                name: first,
                args: format!("{args}{more}"),
                ret: returned,
                start,
                end: line_no,
            });
            continue;
        }
        let Some(open) = rest.find('(') else {
            continue;
        };
        let name = rest[..open].to_owned();
        let body = &rest[open + 1..];
        if let Some(args) = body.strip_suffix(" <unfinished ...>") {
            pending.insert(tid, (name, args.to_owned(), line_no));
            continue;
        }
        let (args, returned) = split_ret(body);
        calls.push(Call {
            tid,
            name,
            args,
            ret: returned,
            start: line_no,
            end: line_no,
        });
    }
    calls.sort_by_key(|c| c.end);
    calls
}

/// Splits `args)   = ret` at the last `=` that follows a `)`.
fn split_ret(s: &str) -> (String, String) {
    let mut end = s.len();
    while let Some(i) = s[..end].rfind("= ") {
        if let Some(args) = s[..i].trim_end().strip_suffix(')') {
            return (args.to_owned(), s[i + 2..].trim().to_owned());
        }
        end = i;
    }
    (s.trim_end_matches(')').to_owned(), String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_and_interleaved_calls() {
        let text = "\
10 openat(AT_FDCWD</x>, \"/d/tmp/1.tmp\", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 7</d/tmp/1.tmp>
10 fsync(7</d/tmp/1.tmp> <unfinished ...>
11 sendto(9<TCP:[127.0.0.1:80->127.0.0.1:5000]>, \"HTTP/1.1 201 Created\\r\\nco\"..., 221, MSG_NOSIGNAL, NULL, 0) = 221
10 <... fsync resumed>)              = 0
10 rename(\"/d/tmp/1.tmp\", \"/d/objects/a%obj\") = 0
10 fsync(7</d/objects>) = -1 EIO (Input/output error)
10 +++ killed by SIGKILL +++
";
        let calls = parse(text);
        assert_eq!(calls.len(), 5);
        let fsync = calls.iter().find(|c| c.name == "fsync").unwrap();
        assert_eq!((fsync.start, fsync.end), (1, 3));
        assert_eq!(fsync.fd_path(), Some("/d/tmp/1.tmp"));
        assert!(fsync.ok());
        assert_eq!(calls[0].ret_path(), Some("/d/tmp/1.tmp"));
        assert_eq!(calls[0].strings(), vec!["/d/tmp/1.tmp"]);
        let send = calls.iter().find(|c| c.name == "sendto").unwrap();
        assert_eq!(send.fd_path(), Some("TCP:[127.0.0.1:80->127.0.0.1:5000]"));
        assert!(send.strings()[0].starts_with("HTTP/1.1 201"));
        let rename = calls.iter().find(|c| c.name == "rename").unwrap();
        assert_eq!(rename.strings(), vec!["/d/tmp/1.tmp", "/d/objects/a%obj"]);
        assert!(!calls.last().unwrap().ok());
    }
}
