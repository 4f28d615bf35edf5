//! One large object streamed from memory: storaged's PUT and GET rates.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::{block_on, load};

/// PUT then GET one object of `mib` MiB, streamed; returns MB/s of each.
pub(crate) fn large_object(storaged: &str, key: &str, mib: u64) -> (f64, f64) {
    let put = put_large(storaged, key, mib);
    let url = format!("{storaged}/v1/objects/{key}");
    let get = block_on(move || async move {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(600))
            .finish();
        let t = Instant::now();
        let mut res = client.get(&url).send().await.expect("GET large");
        let mut bytes = 0u64;
        while let Some(c) = res.next().await {
            bytes += c.expect("GET large body").len() as u64;
        }
        assert_eq!(bytes, mib << 20);
        load::as_f64(bytes) / t.elapsed().as_secs_f64() / 1e6
    });
    (put, get)
}

/// PUT one object of `mib` MiB streamed from memory; MB/s.
pub(crate) fn put_large(storaged: &str, key: &str, mib: u64) -> f64 {
    let url = format!("{storaged}/v1/objects/{key}");
    block_on(move || async move {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(600))
            .finish();
        let chunk = Bytes::from(vec![0x77_u8; 1 << 20]);
        let stream = futures_util::stream::iter(
            (0..mib).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
        );
        let t = Instant::now();
        let res = client
            .put(&url)
            .insert_header(("content-length", (mib << 20).to_string()))
            .send_stream(stream)
            .await
            .expect("PUT large");
        assert!(res.status().is_success(), "PUT large: {}", res.status());
        load::as_f64(mib << 20) / t.elapsed().as_secs_f64() / 1e6
    })
}
