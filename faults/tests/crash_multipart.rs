//! Crash-point sweep over a multipart upload on the S3 face: storaged is killed (SIGKILL,
//! injected by strace) on entering the k-th `fsync`, `rename`, `unlink`, `linkat` or
//! `mkdir` of a script that creates a bucket, stages two parts and completes the upload
//! (which links the parts into a segment directory), for every k the script reaches. After a plain restart the object is absent or whole — whole if the completion
//! was acknowledged — and never a prefix of its parts; no temporary file is left.

use std::path::Path;
use std::time::Duration;

use awc::http::Method;
use faults::strace;
use testkit::{free_port, Api, Launch, Proc};

const PART_ONE: usize = 5 * 1024 * 1024 + 3;
const PART_TWO: usize = 1000;

fn whole() -> Vec<u8> {
    let mut content = vec![b'1'; PART_ONE];
    content.extend(vec![b'2'; PART_TWO]);
    content
}

/// The text between `<tag>` and `</tag>` in `xml`.
fn xml_value(xml: &[u8], tag: &str) -> Option<String> {
    let text = String::from_utf8_lossy(xml);
    let start = text.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = text[start..].find(&format!("</{tag}>"))? + start;
    Some(text[start..end].to_owned())
}

/// How far the script got before storaged died.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Reached {
    Nothing,
    Staged,
    Completed,
}

/// The open-mode S3 script (unsigned requests): bucket, upload, two parts, complete.
async fn script(s3: &Api) -> Reached {
    let ok = |r: Result<testkit::Reply, String>| r.ok().filter(|r| r.status.is_success());
    if ok(s3.send(s3.request(Method::PUT, "/lake"), None).await).is_none() {
        return Reached::Nothing;
    }
    let Some(created) = ok(s3
        .send(s3.request(Method::POST, "/lake/big.bin?uploads"), None)
        .await)
    else {
        return Reached::Nothing;
    };
    let id = xml_value(&created.body, "UploadId").expect("an upload id");
    let mut etags = Vec::new();
    for (n, content) in [(1, vec![b'1'; PART_ONE]), (2, vec![b'2'; PART_TWO])] {
        let path = format!("/lake/big.bin?partNumber={n}&uploadId={id}");
        let Some(reply) = ok(s3
            .send(s3.request(Method::PUT, &path), Some(content.into()))
            .await)
        else {
            return Reached::Nothing;
        };
        etags.push(reply.header("etag").unwrap_or_default().to_owned());
    }
    let body = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part>\
         <Part><PartNumber>2</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        etags[0], etags[1]
    );
    let path = format!("/lake/big.bin?uploadId={id}");
    match ok(s3
        .send(s3.request(Method::POST, &path), Some(body.into()))
        .await)
    {
        Some(_) => Reached::Completed,
        None => Reached::Staged,
    }
}

async fn run_until_killed(root: &Path, data: &Path, syscall: &str, k: usize) -> Option<Reached> {
    let s3_port = free_port();
    let mut p = Launch::storaged(data, free_port())
        .s3(s3_port)
        .under(strace::kill_at(syscall, k))
        .log_dir(root)
        .spawn();
    if !p.ready_or_exited().await {
        return Some(Reached::Nothing);
    }
    let reached = script(&Api::new(s3_port)).await;
    if !p.exited_or_killed(Duration::from_secs(5)) {
        return None;
    }
    Some(reached)
}

async fn check(root: &Path, data: &Path, reached: Reached) -> Result<(), String> {
    let p: Proc = Launch::storaged(data, free_port()).log_dir(root).spawn();
    p.wait_ready().await;
    let reply = p.api().get_ok("/v1/objects/lake/big.bin").await;
    match (reply.code(), reached) {
        (404, Reached::Completed) => Err("the acknowledged object is gone".into()),
        (404, _) => Ok(()),
        (200, _) if reply.body.as_ref() == whole().as_slice() => Ok(()),
        (200, _) => Err(format!(
            "the object holds {} bytes, not the whole",
            reply.body.len()
        )),
        (other, _) => Err(format!("GET answered {other}")),
    }?;
    let leftovers = std::fs::read_dir(data.join("tmp")).map_or(0, Iterator::count);
    if leftovers > 0 {
        return Err(format!("{leftovers} temporary files left after restart"));
    }
    Ok(())
}

#[actix_web::test]
async fn a_crash_anywhere_in_a_multipart_upload_leaves_no_object_or_all_of_it() {
    strace::require();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut explored = 0;
    let mut seen = std::collections::BTreeSet::new();
    for syscall in ["fsync", "rename", "unlink", "linkat", "mkdir"] {
        let mut k = 1;
        while let Some(reached) =
            run_until_killed(root, &root.join(format!("data-{syscall}-{k}")), syscall, k).await
        {
            let data = root.join(format!("data-{syscall}-{k}"));
            if let Err(violation) = check(root, &data, reached).await {
                panic!("crash at {syscall} #{k}: {violation}");
            }
            seen.insert(reached);
            explored += 1;
            k += 1;
            assert!(k < 500, "{syscall}: the sweep does not end");
        }
    }
    println!("multipart crash points explored: {explored} → 0 violations; reached {seen:?}");
    assert!(
        seen.contains(&Reached::Staged),
        "no crash fell inside the completion: {seen:?}"
    );
    assert!(explored >= 10, "too few crash points reached");
}
