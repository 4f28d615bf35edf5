//! `lake` against the real stack: the real storaged and catalogd binaries (testkit) and the
//! real `lake` binary, with Parquet files written by pyarrow from the project's venv.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::{free_port, Launch, Proc};

const READY: Duration = Duration::from_secs(60);

fn python() -> PathBuf {
    testkit::venv_python()
}

/// Runs `tests/data/write_tree.py MODE TARGET`.
fn write_parquet(mode: &str, target: &Path) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/write_tree.py");
    let out = Command::new(python())
        .arg(script)
        .arg(mode)
        .arg(target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// storaged and catalogd, real binaries, on free ports; a scratch directory.
struct Stack {
    storaged: Proc,
    catalogd: Proc,
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(out: &Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every stdout line, each of which must be one JSON object.
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}"));
                assert!(v.is_object(), "{l}");
                v
            })
            .collect()
    }

    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Stack {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let storaged = Launch::storaged(&dir.path().join("data"), free_port())
            .log_dir(&logs)
            .spawn();
        storaged.wait_ready_blocking(READY);
        let catalogd = Launch::catalogd(&storaged.url(), free_port())
            .log_dir(&logs)
            .spawn();
        catalogd.wait_ready_blocking(READY);
        Self {
            storaged,
            catalogd,
            dir,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lake"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("LAKE_STORAGED_URL", self.storaged.url())
            .env("LAKE_CATALOGD_URL", self.catalogd.url());
        cmd
    }

    fn lake(&self, args: &[&str]) -> Run {
        Run::from(&self.command(args).output().unwrap())
    }
}

fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_tree_goes_up_lists_and_comes_back_byte_identical_and_update_skips_it_all() {
    let stack = Stack::start();
    let src = stack.path("src");
    write_parquet("tree", &src);

    let up = stack
        .lake(&["cp", "-r", "--json", "src", "s3://lake/orders/"])
        .ok();
    let lines = up.json_lines();
    assert_eq!(lines.len(), 5, "{}", up.stdout);
    assert!(lines.iter().all(|l| l["status"] == "copied"), "{lines:?}");
    assert!(lines
        .iter()
        .any(|l| l["destination"] == "s3://lake/orders/2024/sp ace/ünï cødé.parquet"));

    // One level: objects and prefixes; -r: every object.
    let ls = stack.lake(&["ls", "s3://lake/orders/", "--json"]).ok();
    let entries: Vec<(String, String)> = ls
        .json_lines()
        .iter()
        .map(|l| {
            (
                l["type"].as_str().unwrap().to_owned(),
                l["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("prefix".to_owned(), "s3://lake/orders/2024/".to_owned()),
            ("object".to_owned(), "s3://lake/orders/a.parquet".to_owned()),
            ("object".to_owned(), "s3://lake/orders/notes.txt".to_owned()),
        ]
    );
    let all = stack.lake(&["--json", "ls", "-r", "s3://lake/"]).ok();
    assert_eq!(all.json_lines().len(), 5);
    let human = stack.lake(&["ls", "-l", "s3://lake/orders/2024/"]).ok();
    assert!(human.stdout.starts_with("SIZE"), "{}", human.stdout);
    assert!(
        human.stdout.contains("s3://lake/orders/2024/sp ace/"),
        "{}",
        human.stdout
    );
    let buckets = stack.lake(&["ls"]).ok();
    assert_eq!(buckets.stdout.trim(), "PATH\ns3://lake/");

    // Back down, byte for byte.
    stack
        .lake(&["cp", "-r", "-j", "3", "s3://lake/orders/", "back"])
        .ok();
    assert_eq!(files_under(&src), files_under(&stack.path("back")));

    // --update: nothing to transfer either way the second time.
    for args in [
        ["cp", "-r", "--update", "--json", "src", "s3://lake/orders/"],
        [
            "cp",
            "-r",
            "--update",
            "--json",
            "s3://lake/orders/",
            "back",
        ],
    ] {
        let again = stack.lake(&args).ok();
        let lines = again.json_lines();
        assert_eq!(lines.len(), 5);
        assert!(lines.iter().all(|l| l["status"] == "skipped"), "{lines:?}");
    }
    // A changed file is transferred again, the rest skipped.
    std::fs::write(src.join("notes.txt"), "changed\n").unwrap();
    let changed = stack
        .lake(&["cp", "-r", "--update", "--json", "src", "s3://lake/orders/"])
        .ok();
    let copied: Vec<Value> = changed
        .json_lines()
        .into_iter()
        .filter(|l| l["status"] == "copied")
        .map(|l| l["destination"].clone())
        .collect();
    assert_eq!(copied, [Value::from("s3://lake/orders/notes.txt")]);

    let cat = stack.lake(&["cat", "s3://lake/orders/notes.txt"]).ok();
    assert_eq!(cat.stdout, "changed\n");
    let stat = stack
        .lake(&["stat", "--json", "s3://lake/orders/notes.txt"])
        .ok();
    assert_eq!(stat.json_lines()[0]["size"], 8);

    // rm: one object; a prefix needs -r (usage error), then goes whole.
    stack.lake(&["rm", "s3://lake/orders/notes.txt"]).ok();
    let refused = stack.lake(&["rm", "s3://lake/orders/2024/"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("use -r"), "{}", refused.stderr);
    let removed = stack
        .lake(&["rm", "-r", "--json", "s3://lake/orders/2024/"])
        .ok();
    assert_eq!(removed.json_lines().len(), 3);
    let left = stack.lake(&["ls", "-r", "--json", "s3://lake/"]).ok();
    assert_eq!(left.json_lines().len(), 1);
}

fn manifest(stack: &Stack, name: &str) -> Value {
    let show = stack.lake(&["datasets", "show", name, "--json"]).ok();
    show.json_lines().remove(0)
}

#[test]
fn register_sums_rows_fingerprints_and_refuses_another_schema_by_name() {
    let stack = Stack::start();
    write_parquet("tree", &stack.path("src"));
    stack.lake(&["cp", "-r", "src", "s3://lake/orders/"]).ok();

    let reg = stack
        .lake(&["register", "sales.orders", "s3://lake/orders/", "--json"])
        .ok();
    let answer = &reg.json_lines()[0];
    assert_eq!(answer["existing"], false);
    let m = &answer["manifest"];
    assert_eq!(m["row_count"], 42);
    assert_eq!(m["version"], 1);
    assert_eq!(
        m["objects"].as_array().unwrap().len(),
        4,
        "notes.txt is not Parquet"
    );
    // The fingerprint is the one `lake fingerprint` computes for each file.
    let fp = stack
        .lake(&[
            "fingerprint",
            "--json",
            "src/a.parquet",
            "src/2024/01/deep.parquet",
        ])
        .ok();
    for line in fp.json_lines() {
        assert_eq!(line["fingerprint"], m["schema_fingerprint"]);
    }
    assert!(m["schema_fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let size_of_a = std::fs::metadata(stack.path("src/a.parquet"))
        .unwrap()
        .len();
    assert!(m["objects"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["key"] == "lake/orders/a.parquet" && o["size"] == size_of_a));

    // A new file with the same schema: version 2 with the new object list.
    write_parquet("same", &stack.path("more.parquet"));
    stack
        .lake(&["cp", "more.parquet", "s3://lake/orders/2025/"])
        .ok();
    let reg = stack
        .lake(&["register", "sales.orders", "s3://lake/orders/"])
        .ok();
    assert!(reg.stdout.contains("version 2 (updated)"), "{}", reg.stdout);
    let m = manifest(&stack, "sales.orders");
    assert_eq!(m["row_count"], 45);
    assert_eq!(m["objects"].as_array().unwrap().len(), 5);

    // Another schema: refused, the file named, nothing changed.
    write_parquet("other", &stack.path("other.parquet"));
    stack
        .lake(&["cp", "other.parquet", "s3://lake/orders/2025/"])
        .ok();
    let refused = stack.lake(&["register", "sales.orders", "s3://lake/orders/"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("s3://lake/orders/2025/other.parquet"),
        "{}",
        refused.stderr
    );
    assert_eq!(manifest(&stack, "sales.orders")["version"], 2);

    // From a local directory: uploaded, then registered.
    let reg = stack
        .lake(&[
            "register",
            "sales.orders_local",
            "src",
            "--upload-to",
            "s3://lake/local/",
        ])
        .ok();
    assert!(reg.stdout.contains("version 1 (created)"), "{}", reg.stdout);
    assert_eq!(manifest(&stack, "sales.orders_local")["row_count"], 42);
}

#[test]
fn history_diff_rm_undrop_and_query_that_duckdb_runs() {
    let stack = Stack::start();
    write_parquet("tree", &stack.path("src"));
    stack.lake(&["cp", "-r", "src", "s3://lake/t/"]).ok();
    stack.lake(&["register", "t", "s3://lake/t/"]).ok();
    stack.lake(&["rm", "s3://lake/t/2024/b.parquet"]).ok();
    write_parquet("same", &stack.path("new.parquet"));
    stack.lake(&["cp", "new.parquet", "s3://lake/t/"]).ok();
    stack.lake(&["register", "t", "s3://lake/t/"]).ok();

    let history = stack.lake(&["datasets", "history", "t", "--json"]).ok();
    let versions: Vec<i64> = history
        .json_lines()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);

    let diff = stack
        .lake(&["datasets", "diff", "t", "1", "2", "--json"])
        .ok();
    let changes: Vec<(String, String)> = diff
        .json_lines()
        .iter()
        .filter(|l| l["key"].is_string())
        .map(|l| {
            (
                l["change"].as_str().unwrap().to_owned(),
                l["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("removed".to_owned(), "lake/t/2024/b.parquet".to_owned()),
            ("added".to_owned(), "lake/t/new.parquet".to_owned()),
        ]
    );
    let rows = diff.json_lines().pop().unwrap();
    assert_eq!(
        (rows["from"].clone(), rows["to"].clone()),
        (42.into(), 25.into())
    );
    let human = stack.lake(&["datasets", "diff", "t", "1", "2"]).ok();
    assert!(
        human.stdout.contains("rows: 42 → 25 (-17)"),
        "{}",
        human.stdout
    );

    // query: the printed statement runs in DuckDB as printed (httpfs from the venv).
    let sql = stack.lake(&["query", "t"]).ok().stdout;
    let script = r#"
import os, sys, duckdb, duckdb_extension_httpfs as ext
path = os.path.join(os.path.dirname(ext.__file__), 'extensions', 'v' + duckdb.__version__, 'httpfs.duckdb_extension')
con = duckdb.connect()
con.execute(f"LOAD '{path}'")
print(con.sql(sys.stdin.read()).aggregate('count(*), sum(id)').fetchone())
"#;
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{sql}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 42 rows minus b.parquet's 20 plus the new file's 3; ids 0..10, 30..42, 1000..1003.
    let expected_sum: i64 = (0..10).chain(30..42).chain(1000..1003).sum();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("(25, {expected_sum})")
    );
    let s3 = stack.lake(&["query", "t", "--s3"]).ok().stdout;
    assert!(s3.contains("'s3://lake/t/new.parquet'"), "{s3}");

    // rm is soft; undrop brings it back; --purge removes the history.
    stack.lake(&["datasets", "rm", "t"]).ok();
    let gone = stack.lake(&["datasets", "show", "t"]);
    assert_eq!(gone.code, 1);
    assert!(
        gone.stderr.contains("no dataset named t"),
        "{}",
        gone.stderr
    );
    let back = stack.lake(&["datasets", "undrop", "t", "--json"]).ok();
    assert_eq!(back.json_lines()[0]["version"], 2);
    let listed = stack.lake(&["datasets", "ls", "--json"]).ok();
    assert_eq!(listed.json_lines().len(), 1);
    stack.lake(&["datasets", "rm", "--purge", "t"]).ok();
    let history = stack.lake(&["datasets", "history", "t"]);
    assert_eq!(history.code, 1, "{}", history.stdout);
}

#[test]
fn verify_refuses_a_register_whose_object_is_missing() {
    let stack = Stack::start();
    write_parquet("tree", &stack.path("src"));
    stack.lake(&["cp", "-r", "src", "s3://lake/v/"]).ok();
    // What `lake register` sends, with one listed object that storaged does not hold.
    let body = serde_json::json!({
        "name": "v", "schema_fingerprint": "sha256:x", "row_count": 1,
        "objects": [{"key": "lake/v/a.parquet", "size": std::fs::metadata(stack.path("src/a.parquet")).unwrap().len()},
                    {"key": "lake/v/gone.parquet", "size": 10}],
    });
    let reply = actix_rt::System::new().block_on(async {
        stack
            .catalogd
            .api()
            .post_json("/v1/datasets?verify=true", &body)
            .await
            .unwrap()
    });
    reply.assert_error(422, "objects_invalid");
    assert_eq!(reply.json()["offenders"][0]["key"], "lake/v/gone.parquet");
    assert_eq!(reply.json()["offenders"][0]["problem"], "missing");
    let show = stack.lake(&["datasets", "show", "v"]);
    assert_eq!(show.code, 1);
}

#[test]
fn json_output_and_exit_codes() {
    let stack = Stack::start();
    // Usage errors: 2, nothing on stdout.
    for args in [
        &["frobnicate"][..],
        &["ls", "lake/orders"],
        &["ls", "s3://_catalog/"],
        &["cp", "-j", "0", "a", "s3://lake/a"],
        &["cp", "s3://lake/a", "s3://lake/b"],
        &["register", "Bad Name", "s3://lake/x/"],
        &["register", "ok", "dir-without-upload-to"],
        &["--storaged", "localhost:1", "ls"],
    ] {
        let run = stack.lake(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    // Failures: 1, the server's message on stderr, nothing on stdout with --json.
    let missing = stack.lake(&["--json", "datasets", "show", "nope"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stdout.is_empty());
    assert!(
        missing.stderr.contains("no dataset named nope"),
        "{}",
        missing.stderr
    );
    let no_object = stack.lake(&["cat", "s3://lake/none"]);
    assert_eq!(no_object.code, 1);
    assert!(
        no_object.stderr.contains("no such object"),
        "{}",
        no_object.stderr
    );
    let down = stack.lake(&["--catalogd", "http://127.0.0.1:1", "datasets", "ls"]);
    assert_eq!(down.code, 1);
    assert!(
        down.stderr.contains("catalogd at http://127.0.0.1:1"),
        "{}",
        down.stderr
    );
    let not_parquet = stack.path("x.txt");
    std::fs::write(&not_parquet, "hello").unwrap();
    let fp = stack.lake(&["fingerprint", "x.txt"]);
    assert_eq!(fp.code, 1);
    assert!(
        fp.stderr.contains("x.txt: not a Parquet file"),
        "{}",
        fp.stderr
    );

    // A config file is read, and flags win over it.
    std::fs::create_dir_all(stack.path("config/lake")).unwrap();
    std::fs::write(
        stack.path("config/lake/config.toml"),
        "catalogd_url = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    let mut cmd = stack.command(&["datasets", "ls"]);
    cmd.env_remove("LAKE_CATALOGD_URL");
    assert_eq!(Run::from(&cmd.output().unwrap()).code, 1);
    let mut cmd = stack.command(&["datasets", "ls", "--catalogd", &stack.catalogd.url()]);
    cmd.env_remove("LAKE_CATALOGD_URL");
    Run::from(&cmd.output().unwrap()).ok();
}

#[test]
fn an_interrupted_upload_leaves_no_object_and_stdin_uploads_whole() {
    let stack = Stack::start();
    let mut child = stack
        .command(&["cp", "-", "s3://lake/stream.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&vec![7u8; 4 << 20]).unwrap();
    stdin.flush().unwrap();
    // storaged is receiving the body; Ctrl-C (SIGINT) the client mid-way.
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(!status.success());
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ls = stack.lake(&["ls", "-r", "--json", "s3://lake/"]).ok();
        assert!(
            ls.stdout.is_empty(),
            "a partial object is visible: {}",
            ls.stdout
        );
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    let mut child = stack
        .command(&["cp", "-", "s3://lake/stream.bin"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    assert!(child.wait().unwrap().success());
    let out = stack
        .command(&["cat", "s3://lake/stream.bin"])
        .output()
        .unwrap();
    assert!(out.stdout == data, "{} bytes back", out.stdout.len());
}

/// tmux runs `lake` on a real terminal; capture-pane reads what it drew.
#[test]
fn a_progress_bar_on_a_terminal_and_none_when_piped_or_quiet() {
    let stack = Stack::start();
    let big = stack.path("big.bin");
    std::fs::write(&big, vec![1u8; 64 << 20]).unwrap();
    let session = format!("lake-test-{}", testkit::unique());
    let lake = env!("CARGO_BIN_EXE_lake");
    let run_in_tmux = |args: &str| -> String {
        let marker = stack.path(&format!("done-{}", testkit::unique()));
        let shell = format!(
            "cd {dir} && LAKE_STORAGED_URL={s} LAKE_CATALOGD_URL={c} {lake} {args}; touch {marker}; sleep 30",
            dir = stack.dir.path().display(),
            s = stack.storaged.url(),
            c = stack.catalogd.url(),
            marker = marker.display(),
        );
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                "200",
                "-y",
                "20",
                &shell,
            ])
            .status()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        while !marker.try_exists().unwrap_or(false) {
            assert!(Instant::now() < deadline, "lake did not finish in tmux");
            std::thread::sleep(Duration::from_millis(50));
        }
        let pane = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &session])
            .output()
            .unwrap();
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &session])
            .status();
        String::from_utf8_lossy(&pane.stdout).into_owned()
    };
    let pane = run_in_tmux("cp big.bin s3://lake/big.bin");
    assert!(
        pane.contains("64.00 MiB/64.00 MiB") && pane.contains("ETA"),
        "no progress bar on the terminal:\n{pane}"
    );
    let quiet = run_in_tmux("cp --quiet big.bin s3://lake/big2.bin");
    assert!(!quiet.contains("MiB/"), "{quiet}");

    // Piped: stderr is a file, not a terminal: no bar.
    let piped = stack.lake(&["cp", "big.bin", "s3://lake/big3.bin"]).ok();
    assert!(!piped.stderr.contains("MiB/"), "{}", piped.stderr);
    assert!(piped.stderr.contains("copied 1 file ("), "{}", piped.stderr);
}

#[test]
fn https_services_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = testkit::pki::pki(dir.path(), "lake");
    let tls = |launch: Launch| pki.serve(launch).log_dir(dir.path());
    // Readiness over HTTPS: the async wait (its client trusts the CA), not the plain probe.
    let storaged = tls(Launch::storaged(&dir.path().join("data"), free_port())).spawn();
    actix_rt::System::new().block_on(storaged.wait_ready());
    let catalogd = tls(Launch::catalogd(&storaged.url(), free_port()))
        .env("CATALOGD_STORAGED_CA_FILE", &pki.ca)
        .spawn();
    actix_rt::System::new().block_on(catalogd.wait_ready());
    assert!(storaged.url().starts_with("https://"));
    let stack = Stack {
        storaged,
        catalogd,
        dir,
    };
    write_parquet("tree", &stack.path("src"));
    let ca = pki.ca.to_string_lossy().into_owned();

    // Without the CA the certificate is refused: a failure (1) that says so.
    let refused = stack.lake(&["ls", "s3://lake/"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("storaged at https://"),
        "{}",
        refused.stderr
    );

    stack
        .lake(&["--ca-file", &ca, "cp", "-r", "src", "s3://lake/tls/"])
        .ok();
    let mut cmd = stack.command(&["register", "tls.orders", "s3://lake/tls/"]);
    cmd.env("LAKE_CA_FILE", &ca);
    let reg = Run::from(&cmd.output().unwrap()).ok();
    assert!(reg.stdout.contains("42 rows"), "{}", reg.stdout);
}
