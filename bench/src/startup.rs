//! `--only startup` (also part of the full run): storaged's start-up with many small
//! objects in its write log (ADR 0018). Fills the store over HTTP, stops it, drops the
//! page cache (`sync; echo 3 > /proc/sys/vm/drop_caches`, as root) and times start →
//! `/readyz` 200, with the RSS once ready; then once more with a warm cache.

use std::time::{Duration, Instant};

use testkit::{free_port, Launch};

use crate::load::{self, Stop};
use crate::report::Figures;
use crate::{blocking_get, puts};

/// Drops the page cache; `false` when this process may not (not root).
fn drop_page_cache() -> bool {
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

pub(crate) fn startup_figures(
    work: &std::path::Path,
    storaged_bin: &std::path::Path,
    objects: u64,
    runs: usize,
    figs: &mut Figures,
) {
    let launch = Launch::storaged(&work.join("startup"), free_port())
        .program(storaged_bin)
        .env("RUST_LOG", "warn")
        .env("STORAGED_LOG_SEGMENT_SIZE", "64 MiB")
        .log_dir(work);
    let mut storaged = launch.spawn();
    storaged.wait_ready_blocking(Duration::from_secs(120));
    let fill = load::run(64, Stop::Requests(objects), &puts(&storaged.url(), "start"));
    assert_eq!(fill.errors, 0, "filling storaged failed");
    figs.add("start-up fill: PUT 4 KiB c=64, log", "req/s", fill.rate());
    storaged.stop(Duration::from_secs(60));
    drop(storaged);
    let label = format!("{}k", objects / 1000);
    let start = |cache: &str, figs: &mut Figures| {
        let t0 = Instant::now();
        let mut storaged = launch.spawn();
        let ready = storaged.wait_ready_blocking(Duration::from_secs(600));
        let seconds = ready.duration_since(t0).as_secs_f64();
        let (rss, peak) = storaged.memory_mib();
        let last = format!("{}/v1/objects/start/{:08}", storaged.url(), objects - 1);
        assert_eq!(blocking_get(&last).len(), 4096, "the last object is back");
        storaged.stop(Duration::from_secs(60));
        let name = format!("storaged start-up, {label} objects in the log, {cache} cache");
        figs.add(&name, "s", seconds);
        figs.add(&format!("{name}: RSS when ready"), "MiB", rss);
        figs.add(&format!("{name}: peak RSS"), "MiB", peak);
    };
    for _ in 0..runs {
        if drop_page_cache() {
            start("cold", figs);
        } else {
            figs.note(
                "storaged start-up",
                "page cache not dropped (needs root): cold figures skipped".to_owned(),
            );
            break;
        }
    }
    start("warm", figs);
}

/// A storaged metric's value, 0 when absent.
fn metric(storaged: &testkit::Proc, name: &str) -> f64 {
    let text =
        String::from_utf8(blocking_get(&format!("{}/metrics", storaged.url()))).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Compaction (ADR 0018): 1 GiB of 4 KiB objects, three in four overwritten so that the
/// first segments are a quarter live; GET 4 KiB c=64 of the live objects while compaction
/// copies them forward, beside the same GETs before the overwrites; segment bytes before
/// and after.
pub(crate) fn compaction_figures(
    work: &std::path::Path,
    storaged_bin: &std::path::Path,
    secs: Duration,
    figs: &mut Figures,
) {
    const OBJECTS: u64 = 262_144;
    let mut storaged = Launch::storaged(&work.join("compaction"), free_port())
        .program(storaged_bin)
        .env("RUST_LOG", "info")
        .env("STORAGED_LOG_SEGMENT_SIZE", "64 MiB")
        .log_dir(work)
        .spawn();
    storaged.wait_ready_blocking(Duration::from_secs(120));
    let url = storaged.url();
    let fill = load::run(64, Stop::Requests(OBJECTS), &puts(&url, "compact"));
    assert_eq!(fill.errors, 0, "filling storaged failed");
    let live = {
        let url = format!("{url}/v1/objects/compact");
        std::sync::Arc::new(move |n: u64| load::Req::get(format!("{url}/{:08}", (n * 4) % OBJECTS)))
            as load::MakeReq
    };
    let quiet = load::run(64, Stop::After(secs * 3), &live);
    let overwrite = {
        let url = format!("{url}/v1/objects/compact");
        let body = bytes::Bytes::from(vec![0x44_u8; 4096]);
        std::sync::Arc::new(move |n: u64| load::Req {
            method: awc::http::Method::PUT,
            url: format!("{url}/{:08}", n / 3 * 4 + n % 3 + 1),
            body: body.clone(),
            json: false,
        }) as load::MakeReq
    };
    let dead = load::run(64, Stop::Requests(OBJECTS / 4 * 3), &overwrite);
    assert_eq!(dead.errors, 0, "overwriting failed");
    let peak = metric(&storaged, "storaged_log_segment_bytes");
    let compacted = metric(&storaged, "storaged_log_compacted_segments_total");
    let t0 = std::time::Instant::now();
    let busy = load::run(64, Stop::After(secs * 3), &live);
    assert_eq!(busy.errors, 0, "GETs during compaction failed");
    let during = metric(&storaged, "storaged_log_compacted_segments_total") - compacted;
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut last = (
        metric(&storaged, "storaged_log_compacted_segments_total"),
        0,
    );
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        let now = metric(&storaged, "storaged_log_compacted_segments_total");
        last = if (now - last.0).abs() < 0.5 {
            (now, last.1 + 1)
        } else {
            (now, 0)
        };
        if last.1 >= 5 {
            break;
        }
    }
    let took = t0.elapsed().as_secs_f64() - 5.0;
    let after = metric(&storaged, "storaged_log_segment_bytes");
    let reclaimed = metric(&storaged, "storaged_log_compaction_reclaimed_bytes_total");
    let copied = metric(&storaged, "storaged_log_compaction_copied_bytes_total");
    figs.add("GET 4 KiB c=64, log, no compaction", "req/s", quiet.rate());
    figs.add(
        "GET 4 KiB c=64, log, during compaction",
        "req/s",
        busy.rate(),
    );
    figs.add(
        "GET during ÷ without compaction",
        "×",
        busy.rate() / quiet.rate(),
    );
    figs.note(
        "GET during ÷ without compaction",
        format!("{during} segments compacted during the GETs"),
    );
    let mib = |b: f64| b / f64::from(1 << 20);
    figs.add("log segment files after the overwrites", "MiB", mib(peak));
    figs.add("log segment files after compaction", "MiB", mib(after));
    figs.add("compaction: segment bytes reclaimed", "MiB", mib(reclaimed));
    figs.add("compaction: live bytes copied", "MiB", mib(copied));
    figs.add("compaction: time after the overwrites", "s", took);
    figs.note(
        "log segment files after compaction",
        format!(
            "{OBJECTS} objects of 4 KiB live ({:.0} MiB of records)",
            mib(load::as_f64(OBJECTS) * 4196.0)
        ),
    );
    storaged.stop(Duration::from_secs(60));
}
