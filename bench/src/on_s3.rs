//! storaged on an S3 store (moto, from the project venv) beside the store itself: what a
//! GET costs through storaged against the same GET straight to moto, PUTs, and registers
//! through catalogd over storaged-on-moto. moto is a slow Python server; the point is
//! storaged's added latency per call, not moto's rate.

use std::path::Path;
use std::time::Duration;

use crate::load::{self, Stop};
use crate::report::Figures;
use crate::{gets, puts, registers};
use std::io::{Read, Write};
use std::time::Instant;
use testkit::{free_port, Launch, Moto};

/// Requests in flight for the figures on moto.
const CONCURRENCY: usize = 8;

/// Adds the figures on moto to `figs`; notes why when the venv (moto) is missing.
pub(crate) fn on_moto(
    work: &Path,
    bins: (&Path, &Path),
    runs: usize,
    secs: Duration,
    figs: &mut Figures,
) {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if !venv.try_exists().unwrap_or(false) {
        figs.note(
            "storaged on moto",
            "skipped: moto is in the project venv (`make venv`)".into(),
        );
        return;
    }
    let moto = Moto::start();
    moto.create_bucket("bench");
    let storaged = Launch::storaged(&work.join("storaged-on-moto"), free_port())
        .program(bins.0)
        .envs(moto.storaged_env("bench"))
        // moto assembles a multipart upload in Python: completing 2 GiB takes longer than
        // the default 10 s a call may take.
        .env("STORAGED_S3_TIMEOUT", "120s")
        .env("RUST_LOG", "warn")
        .log_dir(work)
        .spawn();
    storaged.wait_ready_blocking(Duration::from_secs(120));
    let catalogd = Launch::catalogd(&storaged.url(), free_port())
        .program(bins.1)
        .env("RUST_LOG", "warn")
        .env("CATALOGD_STORAGED_TIMEOUT", "30s")
        .log_dir(work)
        .spawn();
    catalogd.wait_ready_blocking(Duration::from_secs(120));
    let stop = Stop::After(secs);
    crate::blocking_put(
        &format!("{}/v1/objects/onmoto/get/one", storaged.url()),
        vec![0x42; 4096],
    );
    // The same 4 KiB straight in moto, readable without a signature.
    let direct_url = format!("{}/bench/direct/one", moto.endpoint());
    crate::block_on({
        let url = direct_url.clone();
        move || async move {
            let res = awc::Client::new()
                .put(&url)
                .insert_header(("x-amz-acl", "public-read"))
                .insert_header(("content-type", "application/octet-stream"))
                .send_body(vec![0x42_u8; 4096])
                .await
                .expect("PUT to moto");
            assert!(res.status().is_success(), "PUT to moto: {}", res.status());
        }
    });
    let through = gets(format!("{}/v1/objects/onmoto/get/one", storaged.url()));
    let direct = gets(direct_url.clone());
    for run in 0..runs {
        // One request at a time, both through the bench's client (keep-alive): the latency
        // storaged adds to the store's. And moto on a fresh connection per request.
        let fresh_ms = direct_get_p50_ms(&direct_url, 200);
        let s = load::run(1, Stop::Requests(200), &direct);
        assert_eq!(s.errors, 0, "GET from moto: errors");
        let direct_ms = s.percentile_ms(0.5);
        let s = load::run(1, Stop::Requests(200), &through);
        assert_eq!(s.errors, 0, "GET through storaged: errors");
        let through_ms = s.percentile_ms(0.5);
        figs.add(
            "moto GET 4 KiB c=1 p50 (direct, a connection each)",
            "ms",
            fresh_ms,
        );
        figs.add("moto GET 4 KiB c=1 p50 (direct)", "ms", direct_ms);
        figs.add("storaged-on-moto GET 4 KiB c=1 p50", "ms", through_ms);
        figs.add(
            "storaged's added latency per GET on moto",
            "ms",
            through_ms - direct_ms,
        );
        let s = load::run(CONCURRENCY, stop, &through);
        assert_eq!(s.errors, 0, "GET through storaged: errors");
        figs.add("storaged-on-moto GET 4 KiB c=8", "req/s", s.rate());
        let s = load::run(
            CONCURRENCY,
            stop,
            &puts(&storaged.url(), &format!("onmoto/put/r{run}")),
        );
        figs.add("storaged-on-moto PUT 4 KiB c=8", "req/s", s.rate());
        let s = load::run(
            CONCURRENCY,
            stop,
            &registers(&catalogd.url(), format!("onmoto.r{run}"), false),
        );
        assert_eq!(s.errors, 0, "registers with storaged on moto: errors");
        figs.add("register c=8, storaged on moto", "req/s", s.rate());
        figs.add(
            "register c=8, storaged on moto p50",
            "ms",
            s.percentile_ms(0.5),
        );
    }
    // Memory stays bounded however large the object: a multipart upload holds a few
    // parts, a download streams. Once (moto keeps the object in memory).
    let (put, get) = crate::large::large_object(&storaged.url(), "onmoto/large", 2048);
    figs.add("storaged-on-moto PUT 2 GiB", "MB/s", put);
    figs.add("storaged-on-moto GET 2 GiB", "MB/s", get);
    figs.add(
        "storaged-on-moto peak RSS (VmHWM) after 2 GiB PUT+GET",
        "MiB",
        storaged.memory_mib().1,
    );
}

/// The median latency of `n` GETs of `url` (plain HTTP/1.0, one at a time), in ms.
fn direct_get_p50_ms(url: &str, n: usize) -> f64 {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut took: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let mut stream = std::net::TcpStream::connect(host).expect("moto");
            write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("request");
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).expect("answer");
            assert!(answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200"));
            t.elapsed()
        })
        .collect();
    took.sort_unstable();
    load::percentile_ms(&took, 0.5)
}
