//! Command-line S3 tools against the real storaged: the aws CLI (venv), s3cmd and rclone
//! (Debian). Each syncs a directory tree up and back; the trees must be byte-identical.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use md5::Digest as _;

use crate::S3Stack;

/// A tree of files: nested directories, a name with spaces, empty, small and a 20 MiB
/// file (multipart for s3cmd, which splits at 15 MiB).
fn make_tree(root: &Path) {
    let files: [(&str, usize); 6] = [
        ("a.txt", 11),
        ("empty", 0),
        ("dir/b.bin", 100_000),
        ("dir/with space/c.parquet", 3_000),
        ("dir/deeper/d.json", 700),
        ("big/e.bin", 20 * 1024 * 1024),
    ];
    for (name, size) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let content: Vec<u8> = (0..size)
            .map(|i| u8::try_from(i * 31 % 251).unwrap_or(0))
            .collect();
        std::fs::write(path, content).unwrap();
    }
}

/// Every file under `root`, relative path → content.
fn read_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn md5_hex(path: &Path) -> String {
    use std::fmt::Write as _;
    md5::Md5::digest(std::fs::read(path).unwrap())
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

fn run(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn venv_bin(name: &str) -> PathBuf {
    testkit::venv_python().parent().unwrap().join(name)
}

/// The aws CLI against `stack`, configured by the environment alone.
fn aws_cli<'a>(stack: &'a S3Stack, work: &'a Path) -> impl Fn(&[&str]) -> Command + 'a {
    move |args: &[&str]| {
        let mut command = Command::new(venv_bin("aws"));
        command
            .args(args)
            .env("AWS_ENDPOINT_URL", stack.endpoint())
            .env("AWS_ACCESS_KEY_ID", "k")
            .env("AWS_SECRET_ACCESS_KEY", "s")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", work.join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", work.join("none"));
        command
    }
}

#[test]
fn the_aws_cli_syncs_copies_multipart_and_writes_conditionally() {
    let stack = S3Stack::open();
    let work = tempfile::tempdir().unwrap();
    let aws = aws_cli(&stack, work.path());
    let up = work.path().join("up");
    make_tree(&up);
    run(&mut aws(&["s3", "mb", "s3://lake"]));
    run(&mut aws(&[
        "s3",
        "sync",
        up.to_str().unwrap(),
        "s3://lake/tree/",
    ]));
    let listed = run(&mut aws(&["s3", "ls", "--recursive", "s3://lake/tree/"]));
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 6);
    let down = work.path().join("down");
    run(&mut aws(&[
        "s3",
        "sync",
        "s3://lake/tree/",
        down.to_str().unwrap(),
    ]));
    assert_eq!(read_tree(&down), read_tree(&up));
    // A second sync finds nothing to do.
    let again = run(&mut aws(&[
        "s3",
        "sync",
        up.to_str().unwrap(),
        "s3://lake/tree/",
    ]));
    assert!(
        again.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    // 64 MiB goes up in 8 MiB parts; the ETag says so.
    let big = work.path().join("big.bin");
    let content: Vec<u8> = (0..64 * 1024 * 1024_u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&big, &content).unwrap();
    run(&mut aws(&[
        "s3",
        "cp",
        big.to_str().unwrap(),
        "s3://lake/big.bin",
    ]));
    let head = run(&mut aws(&[
        "s3api",
        "head-object",
        "--bucket",
        "lake",
        "--key",
        "big.bin",
    ]));
    let head: serde_json::Value = serde_json::from_slice(&head.stdout).unwrap();
    assert!(head["ETag"].as_str().unwrap().ends_with("-8\""), "{head}");
    let back = work.path().join("big.back");
    run(&mut aws(&[
        "s3",
        "cp",
        "s3://lake/big.bin",
        back.to_str().unwrap(),
    ]));
    assert!(std::fs::read(&back).unwrap() == content);

    // Create-only writes: the second is refused with 412 and changes nothing.
    let once = |body: &Path| {
        aws(&[
            "s3api",
            "put-object",
            "--bucket",
            "lake",
            "--key",
            "once",
            "--body",
        ])
        .arg(body)
        .args(["--if-none-match", "*"])
        .output()
        .unwrap()
    };
    assert!(once(&up.join("a.txt")).status.success());
    let second = once(&up.join("dir/deeper/d.json"));
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("PreconditionFailed"));

    // A presigned URL reads without credentials.
    let url = run(&mut aws(&[
        "s3",
        "presign",
        "s3://lake/once",
        "--expires-in",
        "60",
    ]));
    let url = String::from_utf8(url.stdout).unwrap();
    let fetched = run(Command::new(testkit::venv_python()).args([
        "-c",
        "import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())",
        url.trim(),
    ]));
    assert_eq!(fetched.stdout, std::fs::read(up.join("a.txt")).unwrap());

    run(&mut aws(&["s3", "rm", "--recursive", "s3://lake/"]));
    run(&mut aws(&["s3", "rb", "s3://lake"]));
    let buckets = run(&mut aws(&["s3", "ls"]));
    assert!(buckets.stdout.is_empty());
}

#[test]
fn s3cmd_syncs_a_tree_up_and_back_with_md5_checks() {
    let stack = S3Stack::open();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("s3cfg");
    let host = format!("127.0.0.1:{}", stack.s3_port);
    std::fs::write(
        &config,
        format!(
            "[default]\naccess_key = k\nsecret_key = s\nhost_base = {host}\nhost_bucket = {host}\n\
             use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
        ),
    )
    .unwrap();
    let s3cmd = |args: &[&str]| {
        let mut command = Command::new("s3cmd");
        command.arg("-c").arg(&config).args(args);
        command
    };
    let up = work.path().join("up");
    make_tree(&up);
    run(&mut s3cmd(&["mb", "s3://lake"]));
    let up_arg = format!("{}/", up.display());
    run(&mut s3cmd(&["sync", &up_arg, "s3://lake/tree/"]));
    let down = work.path().join("down");
    std::fs::create_dir_all(&down).unwrap();
    let down_arg = format!("{}/", down.display());
    run(&mut s3cmd(&["sync", "s3://lake/tree/", &down_arg]));
    assert_eq!(read_tree(&down), read_tree(&up));
    let info = run(&mut s3cmd(&["info", "s3://lake/tree/a.txt"]));
    let info = String::from_utf8_lossy(&info.stdout);
    // s3cmd shows the MD5 it read from the ETag.
    let local = md5_hex(&up.join("a.txt"));
    assert!(info.contains(&local), "{info}");
}

#[test]
fn rclone_syncs_and_checks_hashes_both_ways() {
    let stack = S3Stack::open();
    let work = tempfile::tempdir().unwrap();
    let rclone = |args: &[&str]| {
        let mut command = Command::new("rclone");
        // rclone's AWS SDK cannot take a CA bundle with its own HTTP transport (and the
        // endpoint is plain HTTP anyway).
        command
            .args(args)
            .env_remove("AWS_CA_BUNDLE")
            .env("RCLONE_CONFIG", work.path().join("rclone.conf"))
            .env("RCLONE_CONFIG_LAKE_TYPE", "s3")
            .env("RCLONE_CONFIG_LAKE_PROVIDER", "Other")
            .env("RCLONE_CONFIG_LAKE_ENDPOINT", stack.endpoint())
            .env("RCLONE_CONFIG_LAKE_ACCESS_KEY_ID", "k")
            .env("RCLONE_CONFIG_LAKE_SECRET_ACCESS_KEY", "s")
            .env("RCLONE_CONFIG_LAKE_REGION", "us-east-1")
            .env("RCLONE_CONFIG_LAKE_FORCE_PATH_STYLE", "true");
        command
    };
    let up = work.path().join("up");
    make_tree(&up);
    run(&mut rclone(&["mkdir", "lake:lake"]));
    run(&mut rclone(&[
        "sync",
        up.to_str().unwrap(),
        "lake:lake/tree",
    ]));
    // `check` compares sizes and MD5s (the ETags) of every file.
    run(&mut rclone(&[
        "check",
        up.to_str().unwrap(),
        "lake:lake/tree",
    ]));
    let down = work.path().join("down");
    run(&mut rclone(&[
        "sync",
        "lake:lake/tree",
        down.to_str().unwrap(),
    ]));
    assert_eq!(read_tree(&down), read_tree(&up));
    let md5 = run(&mut rclone(&["md5sum", "lake:lake/tree/a.txt"]));
    let local = md5_hex(&up.join("a.txt"));
    assert!(String::from_utf8_lossy(&md5.stdout).starts_with(&local));
}
