//! boto3: every implemented operation, open and signed; signatures and scopes.

use crate::{run_python, S3Stack};

const ADMIN: &str = r#"
[[credential]]
name = "admin"
access_key_id = "AKADMIN"
secret_access_key = "admin-secret"
scopes = ["admin"]

[[credential]]
name = "orders-writer"
access_key_id = "AKORDERS"
secret_access_key = "orders-secret"
scopes = ["write:lake/orders/", "read:lake/"]

[[credential]]
name = "bearer-only"
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
scopes = ["admin"]
"#;

#[test]
fn every_operation_in_the_open_mode_and_the_bytes_match_the_native_api() {
    let stack = S3Stack::open();
    let out = run_python(
        "boto3_ops.py",
        &[&stack.endpoint(), "any-key", "any-secret", &stack.native()],
    );
    // The open mode takes no signature, so an expired presigned URL still reads.
    assert_eq!(out["expired_status"], 200, "{out}");
    // The script read the directory marker back through the native API; being small, it
    // is a write-log record, not a file beside the directory it names.
    let marker = stack.data_dir().join("objects/lake/orders/%obj");
    assert!(
        !marker.try_exists().unwrap(),
        "the directory marker is a log record"
    );
}

#[test]
fn every_operation_signed_with_an_access_key() {
    let stack = S3Stack::with_credentials(ADMIN);
    let out = run_python(
        "boto3_ops.py",
        &[
            &stack.endpoint(),
            "AKADMIN",
            "admin-secret",
            &stack.native(),
            "test",
        ],
    );
    assert_eq!(
        out["expired_status"], 403,
        "an expired presigned URL is refused: {out}"
    );
}

#[test]
fn signatures_keys_and_scopes_are_checked() {
    let stack = S3Stack::with_credentials(ADMIN);
    run_python("boto3_auth.py", &[&stack.endpoint()]);
}

#[test]
fn multipart_uploads_publish_atomically_and_expire() {
    let stack = S3Stack::start_with(None, &[("STORAGED_MULTIPART_EXPIRY", "3s")]);
    let out = run_python("boto3_multipart.py", &[&stack.endpoint(), &stack.native()]);
    let left = out["left"].as_str().unwrap();
    let staging = stack.data_dir().join("objects/_s3/uploads/lake");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while staging.join(left).try_exists().unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "upload {left} was not swept"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn pyarrow_writes_a_partitioned_dataset_with_directory_markers_and_reads_it_back() {
    let stack = S3Stack::open();
    let out = run_python(
        "lake_tools.py",
        &["pyarrow", &stack.endpoint(), &stack.native()],
    );
    assert_eq!(out["rows"], 1000);
}

#[test]
fn polars_writes_and_scans_parquet_over_s3() {
    let stack = S3Stack::open();
    let out = run_python(
        "lake_tools.py",
        &["polars", &stack.endpoint(), &stack.native()],
    );
    assert_eq!(out["rows"], 1000);
}

#[test]
fn duckdb_copies_to_s3_in_parts_and_globs_it_back() {
    let stack = S3Stack::open();
    let out = run_python(
        "lake_tools.py",
        &["duckdb", &stack.endpoint(), &stack.native()],
    );
    assert_eq!(out["rows"], 6_000_000);
    let completed =
        r#"storaged_s3_requests_total{operation="CompleteMultipartUpload",status="200"}"#;
    assert_eq!(
        stack.metric(completed),
        Some(3.0),
        "each COPY TO was a multipart upload"
    );
}
