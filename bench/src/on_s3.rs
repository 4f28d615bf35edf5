//! storaged on an S3 store (moto, from the project venv) beside the store itself: what a
//! GET costs through storaged against the same GET straight to moto, PUTs, and registers
//! through catalogd over storaged-on-moto. moto is a slow Python server; the point is
//! storaged's added latency per call, not moto's rate.

use std::path::Path;
use std::time::Duration;

use crate::load::{self, Stop};
use crate::report::Figures;
use crate::{gets, puts, registers};
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
    let direct = gets(format!("{}/bench/onmoto/get/one", moto.endpoint()));
    let through = gets(format!("{}/v1/objects/onmoto/get/one", storaged.url()));
    for run in 0..runs {
        for first_direct in [run % 2 == 0, run % 2 != 0] {
            let (name, make) = if first_direct {
                ("moto GET 4 KiB c=8 (direct)", &direct)
            } else {
                ("storaged-on-moto GET 4 KiB c=8", &through)
            };
            let s = load::run(CONCURRENCY, stop, make);
            assert_eq!(s.errors, 0, "{name}: errors");
            figs.add(name, "req/s", s.rate());
            figs.add(&format!("{name} p50"), "ms", s.percentile_ms(50.0));
        }
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
        figs.add("register c=8, storaged on moto", "req/s", s.rate());
        figs.add(
            "register c=8, storaged on moto p50",
            "ms",
            s.percentile_ms(50.0),
        );
    }
}
