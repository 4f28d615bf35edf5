//! Hand-made S3 requests the client libraries never send: truncated and malformed
//! `aws-chunked` bodies, trailing checksums that lie, malformed XML. Each gets the right S3
//! error and stores nothing; honest ones work. Also virtual-host addressing.

use std::io::{Read, Write};

use s3s::crypto::Checksum as _;

use crate::S3Stack;

/// Sends `head` (without the blank line) and `body` on a new connection; the status and
/// the response body.
fn raw(port: u16, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "{head}\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn chunked_put(
    port: u16,
    key: &str,
    decoded: usize,
    trailer: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut head = format!(
        "PUT /lake/{key} HTTP/1.1\r\nx-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n\
         Content-Encoding: aws-chunked\r\nx-amz-decoded-content-length: {decoded}"
    );
    if let Some(name) = trailer {
        head = format!("{head}\r\nx-amz-trailer: {name}");
    }
    raw(port, &head, body)
}

fn crc32_base64(data: &[u8]) -> String {
    let sum = s3s::crypto::Crc32::checksum(data);
    base64_simd::STANDARD.encode_to_string(sum)
}

#[test]
fn aws_chunked_bodies_are_unframed_checked_and_refused_when_broken() {
    let stack = S3Stack::open();
    stack.create_bucket("lake");
    let port = stack.s3_port;

    let good_crc = crc32_base64(b"hello world");
    let honest =
        format!("5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:{good_crc}\r\n\r\n");
    let (status, body) = chunked_put(
        port,
        "ok",
        11,
        Some("x-amz-checksum-crc32"),
        honest.as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(raw(port, "GET /lake/ok HTTP/1.1", b"").1, "hello world");

    let cases: [(&str, Option<&str>, String, &str); 4] = [
        (
            "truncated",
            None,
            "5\r\nhello\r\n6\r\n wo".to_owned(),
            "IncompleteBody",
        ),
        (
            "bad-size",
            None,
            "zz\r\nhello\r\n0\r\n\r\n".to_owned(),
            "IncompleteBody",
        ),
        (
            "lying-trailer",
            Some("x-amz-checksum-crc32"),
            "5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n".to_owned(),
            "BadDigest",
        ),
        (
            "missing-trailer",
            Some("x-amz-checksum-crc32"),
            "5\r\nhello\r\n0\r\n\r\n".to_owned(),
            "BadDigest",
        ),
    ];
    for (key, trailer, body, code) in cases {
        let (status, reply) = chunked_put(port, key, 11, trailer, body.as_bytes());
        assert_eq!(status, 400, "{key}: {reply}");
        assert!(
            reply.contains(&format!("<Code>{code}</Code>")),
            "{key}: {reply}"
        );
        let (status, _) = raw(port, &format!("HEAD /lake/{key} HTTP/1.1"), b"");
        assert_eq!(status, 404, "{key}: nothing is stored");
    }
}

#[test]
fn malformed_requests_get_s3_errors() {
    let stack = S3Stack::open();
    stack.create_bucket("lake");
    let port = stack.s3_port;
    let (status, reply) = raw(port, "POST /lake/k?uploads HTTP/1.1", b"");
    assert_eq!(status, 200, "{reply}");
    let id = reply
        .split("<UploadId>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let (status, reply) = raw(
        port,
        &format!("POST /lake/k?uploadId={id} HTTP/1.1"),
        b"<not-xml",
    );
    assert_eq!(status, 400, "{reply}");
    assert!(reply.contains("<Code>MalformedXML</Code>"), "{reply}");
    let (status, reply) = raw(
        port,
        "PUT /lake/k?partNumber=10001&uploadId=0 HTTP/1.1",
        b"x",
    );
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = raw(
        port,
        "PUT /lake?versioning HTTP/1.1",
        b"<VersioningConfiguration/>",
    );
    assert_eq!(
        status, 501,
        "an unimplemented operation is never a success: {reply}"
    );
    assert!(reply.contains("<Code>NotImplemented</Code>"), "{reply}");
    let (status, reply) = raw(port, "GET /_catalog/x HTTP/1.1", b"");
    assert_eq!(status, 400, "{reply}");
    assert!(reply.contains("InvalidBucketName"), "{reply}");
}

#[test]
fn virtual_host_addressing_with_s3_domain() {
    let stack = S3Stack::start_with(None, &[("STORAGED_S3_DOMAIN", "s3.lake.test")]);
    stack.create_bucket("lake");
    let port = stack.s3_port;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"PUT /vh.txt HTTP/1.1\r\nHost: lake.s3.lake.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nvh")
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(raw(port, "GET /lake/vh.txt HTTP/1.1", b"").1, "vh");
}
