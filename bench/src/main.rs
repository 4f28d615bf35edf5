//! `make bench`: the product's figures beside the machine's own ceilings, all measured in
//! one run (on a shared, noisy machine only a ratio within one run means anything).
//!
//! Starts the release `storaged` and `catalogd` (fsync on) on loopback, measures every
//! figure `--runs` times, prints a table (median, min, max) and the targets as ratios to
//! the ceilings, and writes JSON to `target/bench/results.json`. Figures that regress by
//! more than 10 % against `--baseline` (default `bench/baseline.json`) are listed.
//! Every file is kept until the end of the run: on this filesystem, creating files near
//! freshly deleted ones is 10–40× slower for a while.

mod ceiling;
mod lake;
mod large;
mod load;
mod log;
mod on_s3;
mod postgres;
mod rehydrate;
mod report;
mod s3;
mod startup;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::Method;
use bytes::Bytes;
use clap::Parser;

use load::{MakeReq, Req, Stop};
use manifest_codec::layout::MANIFEST_PREFIX;
use rehydrate::{fill_to, Restart};
use report::Figures;
use testkit::{free_port, Launch, Proc};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks storaged and catalogd against the machine's ceilings")]
struct Args {
    /// Runs per figure (the table shows median, min and max).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds per timed load point.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Where the work files go (one directory per run, removed at the end).
    #[arg(long, default_value = "target/bench")]
    dir: PathBuf,
    /// Previous results to compare with.
    #[arg(long, default_value = "bench/baseline.json")]
    baseline: PathBuf,
    /// Datasets for the large rehydration figure.
    #[arg(long, default_value_t = 100_000)]
    rehydrate_large: u64,
    /// Small objects storaged holds for the start-up figure.
    #[arg(long, default_value_t = 1_000_000)]
    startup_objects: u64,
    /// Size of the large object, in MiB.
    #[arg(long, default_value_t = 1024)]
    large_object_mib: u64,
    /// Only one group of figures (with what they are compared with).
    #[arg(long, value_enum)]
    only: Option<Only>,
    #[arg(long)]
    storaged_bin: Option<PathBuf>,
    #[arg(long)]
    catalogd_bin: Option<PathBuf>,
}

/// A group of figures run on its own (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    /// `lake cp` (and storaged's PUTs beside it).
    Lake,
    /// The S3 face (and the native API beside it).
    S3,
    /// storaged on an S3 store (moto), beside moto itself.
    OnS3,
    /// Small writes and registers with storaged's write log off and on.
    Log,
    /// storaged's start-up with many small objects in the write log, cold and warm, and
    /// GETs during log compaction.
    Startup,
    /// catalogd's rebuild of `--rehydrate-large` datasets, with and without its checkpoint.
    Rehydrate,
}

fn register_body(name: &str, objects: usize) -> Bytes {
    let objects: Vec<serde_json::Value> = (0..objects)
        .map(|i| serde_json::json!({"key": format!("lake/{name}/part-{i:05}.parquet"), "size": 4096 + i}))
        .collect();
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "name": name, "schema_fingerprint": "sha256:bench", "objects": objects, "row_count": 1000
        }))
        .expect("json"),
    )
}

pub(crate) fn registers(base: &str, prefix: String, hot: bool) -> MakeReq {
    let url = format!("{base}/v1/datasets");
    Arc::new(move |n| {
        let name = if hot {
            format!("{prefix}.hot")
        } else {
            format!("{prefix}.n{n:08}")
        };
        Req {
            method: Method::POST,
            url: url.clone(),
            body: register_body(&name, 10),
            json: true,
        }
    })
}

pub(crate) fn puts(base: &str, prefix: &str) -> MakeReq {
    puts_of(base, prefix, 4096)
}

fn puts_of(base: &str, prefix: &str, size: usize) -> MakeReq {
    let url = format!("{base}/v1/objects/{prefix}");
    let body = Bytes::from(vec![0x33_u8; size]);
    Arc::new(move |n| Req {
        method: Method::PUT,
        url: format!("{url}/{n:08}"),
        body: body.clone(),
        json: false,
    })
}

fn gets(url: String) -> MakeReq {
    Arc::new(move |_| Req::get(url.clone()))
}

/// The release storaged (fsync on, warn-level logs, as in production) over
/// `work/storaged`, its S3 face on `s3_port`, once ready.
pub(crate) fn start_storaged(
    work: &std::path::Path,
    program: &std::path::Path,
    s3_port: u16,
) -> Proc {
    let storaged = Launch::storaged(&work.join("storaged"), free_port())
        .program(program)
        .s3(s3_port)
        .env("RUST_LOG", "warn")
        .log_dir(work)
        .spawn();
    storaged.wait_ready_blocking(Duration::from_secs(600));
    storaged
}

/// Runs the future `make` builds on an actix runtime of its own, in its own thread (the
/// awc client is not `Send`), and returns its output.
fn block_on<T, Fut>(make: impl FnOnce() -> Fut + Send + 'static) -> T
where
    T: Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    std::thread::spawn(move || actix_web::rt::System::new().block_on(make()))
        .join()
        .expect("client thread")
}

pub(crate) fn blocking_delete(url: &str) {
    let url = url.to_owned();
    block_on(move || async move {
        let res = awc::Client::new()
            .delete(&url)
            .send()
            .await
            .expect("DELETE");
        assert!(res.status().is_success(), "DELETE {url}: {}", res.status());
    });
}

pub(crate) fn blocking_put(url: &str, body: Vec<u8>) {
    let url = url.to_owned();
    block_on(move || async move {
        let res = awc::Client::new()
            .put(&url)
            .send_body(body)
            .await
            .expect("PUT");
        assert!(res.status().is_success(), "PUT {url}: {}", res.status());
    });
}

pub(crate) fn blocking_get(url: &str) -> Vec<u8> {
    let url = url.to_owned();
    block_on(move || async move {
        let mut res = awc::Client::new().get(&url).send().await.expect("GET");
        res.body().limit(64 << 20).await.expect("body").to_vec()
    })
}

/// Walks every page of a storaged listing; returns the number of keys.
fn list_all(storaged: &str, prefix: &str) -> u64 {
    let base = format!("{storaged}/v1/objects?prefix={prefix}&limit=1000");
    block_on(move || async move {
        let client = awc::Client::new();
        let mut token: Option<String> = None;
        let mut keys = 0;
        loop {
            let url = match &token {
                Some(t) => format!("{base}&continuation_token={t}"),
                None => base.clone(),
            };
            let mut res = client.get(&url).send().await.expect("list");
            let page: serde_json::Value = res.json().limit(64 << 20).await.expect("page");
            keys += page["objects"].as_array().map_or(0, Vec::len) as u64;
            match page["next_continuation_token"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => return keys,
            }
        }
    })
}

#[allow(
    clippy::too_many_lines,
    reason = "the benchmark plan, read top to bottom"
)]
fn main() {
    let args = Args::parse();
    let runs = args.runs.max(1);
    let secs = Duration::from_secs_f64(args.seconds);
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    std::fs::create_dir_all(&args.dir).expect("bench dir");
    let work = args.dir.join(format!(
        "work-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    ));
    std::fs::create_dir_all(&work).expect("work dir");
    let storaged_bin = args
        .storaged_bin
        .clone()
        .unwrap_or_else(testkit::storaged_bin);
    let catalogd_bin = args
        .catalogd_bin
        .clone()
        .unwrap_or_else(testkit::catalogd_bin);
    let mut figs = Figures::default();
    eprintln!(
        "work directory {}; {runs} runs of every figure",
        work.display()
    );

    let done = |figs, name| report::finish(figs, &args.dir, &args.baseline, name, &work);
    if args.only == Some(Only::S3) {
        let s3_port = free_port();
        let mut storaged = start_storaged(&work, &storaged_bin, s3_port);
        let endpoint = format!("http://127.0.0.1:{s3_port}");
        s3::s3_face(
            &storaged.url(),
            &endpoint,
            runs,
            secs,
            args.large_object_mib,
            &mut figs,
        );
        storaged.stop(Duration::from_secs(20));
        done(figs, "results-s3.json");
        return;
    }

    if args.only == Some(Only::Log) {
        log::log_figures(&work, (&storaged_bin, &catalogd_bin), runs, secs, &mut figs);
        done(figs, "results-log.json");
        return;
    }

    if args.only == Some(Only::Rehydrate) {
        rehydrate::rehydrate_only(
            &work,
            (&storaged_bin, &catalogd_bin),
            args.rehydrate_large,
            runs,
            &mut figs,
        );
        done(figs, "results-rehydrate.json");
        return;
    }

    if args.only == Some(Only::Startup) {
        startup::startup_figures(&work, &storaged_bin, args.startup_objects, runs, &mut figs);
        startup::compaction_figures(&work, &storaged_bin, secs, &mut figs);
        done(figs, "results-startup.json");
        return;
    }

    if args.only == Some(Only::OnS3) {
        on_s3::on_moto(&work, (&storaged_bin, &catalogd_bin), runs, secs, &mut figs);
        done(figs, "results-on-s3.json");
        return;
    }

    if args.only == Some(Only::Lake) {
        let mut storaged = start_storaged(&work, &storaged_bin, free_port());
        lake::lake_cli(
            &work,
            &storaged.url(),
            runs,
            args.large_object_mib,
            &mut figs,
        );
        storaged.stop(Duration::from_secs(20));
        done(figs, "results-lake.json");
        return;
    }

    // -- ceilings --------------------------------------------------------------------
    for run in 0..runs {
        for threads in [1, 8, 64] {
            let s = ceiling::durable_write(
                &work.join(format!("ceiling/r{run}c{threads}")),
                threads,
                secs,
            );
            figs.add(
                &format!("ceiling durable write c={threads}"),
                "ops/s",
                s.rate(),
            );
            figs.add(
                &format!("ceiling durable write c={threads} p50"),
                "ms",
                s.percentile_ms(0.5),
            );
            figs.add(
                &format!("ceiling durable write c={threads} p99"),
                "ms",
                s.percentile_ms(0.99),
            );
        }
        let mbps = ceiling::disk_write(&work.join(format!("ceiling/disk{run}")), 1 << 30);
        figs.add("ceiling disk sequential write 1 GiB + fsync", "MB/s", mbps);
    }
    {
        let http = ceiling::HttpCeiling::start(workers);
        for _ in 0..runs {
            for c in [1, 64] {
                let s = load::run(c, Stop::After(secs), &gets(http.url("/tiny")));
                figs.add(&format!("ceiling HTTP trivial c={c}"), "req/s", s.rate());
            }
            let s = load::run(4, Stop::After(secs), &gets(http.url("/big")));
            figs.add(
                "ceiling HTTP 64 MiB from memory c=4",
                "MB/s",
                load::as_f64(s.bytes) / s.seconds / 1e6,
            );
            if let Some(rate) = report::wrk(&http.url("/tiny"), 64, secs) {
                figs.add("ceiling HTTP trivial c=64 (wrk)", "req/s", rate);
            }
        }
    }

    // -- the product -------------------------------------------------------------------
    // fsync on (the default); warn-level logs, as a production deployment would run.
    let s3_port = free_port();
    let storaged = start_storaged(&work, &storaged_bin, s3_port);
    let storaged_url = storaged.url();
    let catalogd_launch = Launch::catalogd(&storaged_url, free_port())
        .program(&catalogd_bin)
        .env("RUST_LOG", "warn")
        .log_dir(&work);
    let mut catalogd = catalogd_launch.spawn();
    catalogd.wait_ready_blocking(Duration::from_secs(600));
    let restart = Restart {
        catalogd: catalogd_launch,
        storaged: &storaged_url,
        runs,
    };

    // Rehydration of 10,000 first, before the register runs add datasets.
    fill_to(&catalogd, 10_000);
    catalogd = restart.rehydrate(catalogd, "10k", &mut figs);

    for run in 0..runs {
        for (c, requests) in [(1_usize, 1_500_u64), (16, 4_000), (64, 6_000), (256, 8_000)] {
            let s = load::run(
                c,
                Stop::Requests(requests),
                &registers(&catalogd.url(), format!("reg.r{run}c{c}"), false),
            );
            assert_eq!(s.errors, 0, "register c={c} had errors");
            figs.add(&format!("register c={c}"), "registers/s", s.rate());
            figs.add(&format!("register c={c} p50"), "ms", s.percentile_ms(0.5));
            figs.add(&format!("register c={c} p99"), "ms", s.percentile_ms(0.99));
            figs.add(
                &format!("register c={c} p999"),
                "ms",
                s.percentile_ms(0.999),
            );
        }
        let s = load::run(
            64,
            Stop::After(secs),
            &registers(&catalogd.url(), format!("hot.r{run}"), true),
        );
        figs.add("register one hot name c=64", "registers/s", s.rate());

        let s = load::run(
            64,
            Stop::After(secs),
            &gets(format!("{}/v1/datasets/reg.r0c1.n00000000", catalogd.url())),
        );
        figs.add("GET dataset c=64", "req/s", s.rate());
        let s = load::run(
            64,
            Stop::After(secs),
            &gets(format!(
                "{}/v1/datasets?prefix=reg.&limit=100",
                catalogd.url()
            )),
        );
        figs.add("GET list page (100) c=64", "req/s", s.rate());

        for c in [1, 64] {
            let s = load::run(
                c,
                Stop::After(secs),
                &puts(&storaged_url, &format!("bench/put/r{run}c{c}")),
            );
            figs.add(&format!("storaged PUT 4 KiB c={c}"), "req/s", s.rate());
            figs.add(
                &format!("storaged PUT 4 KiB c={c} p99"),
                "ms",
                s.percentile_ms(0.99),
            );
        }
        for c in [1, 64] {
            let s = load::run(
                c,
                Stop::After(secs),
                &gets(format!(
                    "{storaged_url}/v1/objects/bench/put/r{run}c1/00000000"
                )),
            );
            figs.add(&format!("storaged GET 4 KiB c={c}"), "req/s", s.rate());
        }
    }

    fill_to(&catalogd, args.rehydrate_large);
    catalogd = restart.rehydrate(catalogd, "100k", &mut figs);

    for _ in 0..runs {
        let t = Instant::now();
        let keys = list_all(&storaged_url, MANIFEST_PREFIX);
        figs.add(
            "storaged list all pages (1,000 per page)",
            "keys/s",
            load::as_f64(keys) / t.elapsed().as_secs_f64(),
        );
        figs.note(
            "storaged list all pages (1,000 per page)",
            format!("{keys} keys"),
        );
    }
    for run in 0..runs {
        let (put, get) = large::large_object(
            &storaged_url,
            &format!("bench/large/{run}"),
            args.large_object_mib,
        );
        figs.add("storaged PUT 1 GiB", "MB/s", put);
        figs.add("storaged GET 1 GiB", "MB/s", get);
        figs.add(
            "storaged peak RSS (VmHWM) after 1 GiB PUT+GET",
            "MiB",
            storaged.memory_mib().1,
        );
    }
    lake::lake_cli(&work, &storaged_url, runs, args.large_object_mib, &mut figs);
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    s3::s3_face(
        &storaged_url,
        &endpoint,
        runs,
        secs,
        args.large_object_mib,
        &mut figs,
    );
    catalogd.stop(Duration::from_secs(20));
    let mut storaged = storaged;
    storaged.stop(Duration::from_secs(20));
    on_s3::on_moto(&work, (&storaged_bin, &catalogd_bin), runs, secs, &mut figs);
    log::log_figures(&work, (&storaged_bin, &catalogd_bin), runs, secs, &mut figs);
    startup::startup_figures(&work, &storaged_bin, args.startup_objects, runs, &mut figs);
    startup::compaction_figures(&work, &storaged_bin, secs, &mut figs);

    done(figs, "results.json");
}
