//! The S3 face beside the native API of the same storaged, back to back in one run (order
//! alternating per run): PutObject and GetObject of 4 KiB at c=64, and a 1 GiB object
//! (multipart upload in 64 MiB parts, 4 at once, against one streamed native PUT; GET
//! against GET). The requests are unsigned (storaged's default open mode).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::large::put_large;
use crate::load::{self, MakeReq, Req, Stop};
use crate::report::Figures;
use crate::{block_on, gets, puts};

const PART_MIB: u64 = 64;

/// PUTs of 4 KiB to the S3 face at `endpoint` (bucket/prefix/n).
fn s3_puts(endpoint: &str, prefix: &str) -> MakeReq {
    // The native helper builds `{base}/v1/objects/{prefix}/{n}`; the S3 path is `/{prefix}/{n}`.
    let base = format!("{endpoint}/{prefix}");
    let body = Bytes::from(vec![0x33_u8; 4096]);
    std::sync::Arc::new(move |n| Req {
        method: awc::http::Method::PUT,
        url: format!("{base}/{n:08}"),
        body: body.clone(),
        json: false,
    })
}

/// GET of a whole object at `url`; MB/s.
fn get_large(url: String, expected: u64) -> f64 {
    block_on(move || async move {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(600))
            .finish();
        let t = Instant::now();
        let mut res = client.get(&url).send().await.expect("GET large");
        assert!(res.status().is_success(), "GET large: {}", res.status());
        let mut bytes = 0u64;
        while let Some(c) = res.next().await {
            bytes += c.expect("GET large body").len() as u64;
        }
        assert_eq!(bytes, expected);
        load::as_f64(bytes) / t.elapsed().as_secs_f64() / 1e6
    })
}

/// A multipart upload of `mib` MiB to `{endpoint}/{key}` in 64 MiB parts, 4 in flight;
/// MB/s from CreateMultipartUpload to the answer of CompleteMultipartUpload.
fn multipart_put(endpoint: &str, key: &str, mib: u64) -> f64 {
    let url = format!("{endpoint}/{key}");
    block_on(move || async move {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(600))
            .finish();
        let t = Instant::now();
        let mut created = client
            .post(format!("{url}?uploads"))
            .send()
            .await
            .expect("CreateMultipartUpload");
        let body = created.body().await.expect("upload id");
        let text = String::from_utf8_lossy(&body);
        let id = text
            .split("<UploadId>")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .expect("an upload id")
            .to_owned();
        let parts = mib.div_ceil(PART_MIB);
        let chunk = Bytes::from(vec![0x77_u8; 1 << 20]);
        let uploads = futures_util::stream::iter(1..=parts)
            .map(|n| {
                let client = client.clone();
                let chunk = chunk.clone();
                let url = format!("{url}?partNumber={n}&uploadId={id}");
                let size = PART_MIB.min(mib - (n - 1) * PART_MIB);
                async move {
                    let stream = futures_util::stream::iter(
                        (0..size).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                    );
                    let res = client
                        .put(&url)
                        .insert_header(("content-length", (size << 20).to_string()))
                        .send_stream(stream)
                        .await
                        .expect("UploadPart");
                    assert!(res.status().is_success(), "UploadPart: {}", res.status());
                    let etag = res.headers().get("etag").expect("part etag");
                    (n, etag.to_str().unwrap_or_default().to_owned())
                }
            })
            .buffered(4)
            .collect::<Vec<_>>()
            .await;
        let parts = uploads.iter().fold(String::new(), |mut xml, (n, etag)| {
            use std::fmt::Write as _;
            let _ = write!(
                xml,
                "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            );
            xml
        });
        let xml = format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>");
        let mut done = client
            .post(format!("{url}?uploadId={id}"))
            .send_body(xml)
            .await
            .expect("CompleteMultipartUpload");
        let answer = done.body().await.expect("complete answer");
        assert!(
            done.status().is_success() && !answer.windows(7).any(|w| w == b"<Error>"),
            "CompleteMultipartUpload: {}",
            String::from_utf8_lossy(&answer)
        );
        load::as_f64(mib << 20) / t.elapsed().as_secs_f64() / 1e6
    })
}

/// The S3 face's figures beside the native ones, each pair back to back.
pub(crate) fn s3_face(
    native: &str,
    endpoint: &str,
    runs: usize,
    secs: Duration,
    mib: u64,
    figs: &mut Figures,
) {
    block_on({
        let endpoint = endpoint.to_owned();
        move || async move {
            let res = awc::Client::default()
                .put(format!("{endpoint}/s3bench"))
                .send()
                .await
                .expect("CreateBucket");
            assert!(res.status().is_success(), "CreateBucket: {}", res.status());
        }
    });
    for run in 0..runs {
        for first_native in [run % 2 == 0, run % 2 != 0] {
            if first_native {
                let make = puts(native, &format!("bench/s3cmp/r{run}"));
                let s = load::run(64, Stop::After(secs), &make);
                figs.add("native PUT 4 KiB c=64 (beside S3)", "req/s", s.rate());
            } else {
                let make = s3_puts(endpoint, &format!("s3bench/r{run}"));
                let s = load::run(64, Stop::After(secs), &make);
                assert_eq!(s.errors, 0, "S3 PutObject errors");
                figs.add("S3 PutObject 4 KiB c=64", "req/s", s.rate());
            }
        }
        let native_get = gets(format!("{native}/v1/objects/bench/s3cmp/r{run}/00000000"));
        let s3_get = gets(format!("{endpoint}/s3bench/r{run}/00000000"));
        for first_native in [run % 2 == 0, run % 2 != 0] {
            if first_native {
                let s = load::run(64, Stop::After(secs), &native_get);
                figs.add("native GET 4 KiB c=64 (beside S3)", "req/s", s.rate());
            } else {
                let s = load::run(64, Stop::After(secs), &s3_get);
                assert_eq!(s.errors, 0, "S3 GetObject errors");
                figs.add("S3 GetObject 4 KiB c=64", "req/s", s.rate());
            }
        }
        let native_key = format!("bench/s3large/{run}");
        let s3_key = format!("s3bench/large/{run}");
        for first_native in [run % 2 == 0, run % 2 != 0] {
            if first_native {
                figs.add(
                    "native PUT 1 GiB (beside S3)",
                    "MB/s",
                    put_large(native, &native_key, mib),
                );
            } else {
                figs.add(
                    "S3 multipart PUT 1 GiB (64 MiB parts, 4 at once)",
                    "MB/s",
                    multipart_put(endpoint, &s3_key, mib),
                );
            }
        }
        for first_native in [run % 2 == 0, run % 2 != 0] {
            if first_native {
                let url = format!("{native}/v1/objects/{native_key}");
                figs.add(
                    "native GET 1 GiB (beside S3)",
                    "MB/s",
                    get_large(url, mib << 20),
                );
            } else {
                let url = format!("{endpoint}/{s3_key}");
                figs.add("S3 GetObject 1 GiB", "MB/s", get_large(url, mib << 20));
            }
        }
    }
}
