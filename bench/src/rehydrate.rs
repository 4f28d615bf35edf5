//! Rehydration figures: fill the catalog, then time catalogd restarts with and without a
//! checkpoint.

use std::time::{Duration, Instant};

use manifest_codec::layout::CHECKPOINT_KEY;
use testkit::{free_port, Launch, Proc};

use crate::load::{self, Stop};
use crate::report::Figures;
use crate::{blocking_delete, blocking_get, registers, start_storaged};

pub(crate) fn datasets_in(catalogd: &Proc) -> u64 {
    let body = blocking_get(&format!("{}/readyz", catalogd.url()));
    serde_json::from_slice::<serde_json::Value>(&body).expect("readyz json")["datasets"]
        .as_u64()
        .expect("datasets count")
}

/// Registers distinct `fill.*` names until catalogd holds `target` datasets.
pub(crate) fn fill_to(catalogd: &Proc, target: u64) {
    let have = datasets_in(catalogd);
    if have < target {
        let sample = load::run(
            64,
            Stop::Requests(target - have),
            &registers(&catalogd.url(), format!("fill.t{target}"), false),
        );
        assert_eq!(sample.errors, 0, "filling the catalog failed");
    }
}

/// Restarts catalogd on its port and times start → `/readyz` 200.
pub(crate) struct Restart<'a> {
    pub(crate) catalogd: Launch,
    pub(crate) storaged: &'a str,
    pub(crate) runs: usize,
}

impl Restart<'_> {
    /// One restart without a checkpoint (every manifest fetched one by one: the first
    /// start after an upgrade from a release without checkpoints, or after losing it),
    /// then, once catalogd has written a checkpoint, `runs` restarts that read it.
    pub(crate) fn rehydrate(&self, mut catalogd: Proc, label: &str, figs: &mut Figures) -> Proc {
        let n = datasets_in(&catalogd);
        let restart = |mut catalogd: Proc, drop_checkpoint: bool| {
            catalogd.stop(Duration::from_secs(20));
            drop(catalogd);
            if drop_checkpoint {
                blocking_delete(&format!("{}/v1/objects/{CHECKPOINT_KEY}", self.storaged));
            }
            let t0 = Instant::now();
            let fresh = self.catalogd.spawn();
            let ready = fresh.wait_ready_blocking(Duration::from_secs(600));
            assert_eq!(datasets_in(&fresh), n, "the rebuilt index lost datasets");
            (fresh, ready.duration_since(t0).as_secs_f64())
        };
        let (fresh, cold) = restart(catalogd, true);
        catalogd = fresh;
        let cold_name = format!("rehydration {label}: start to ready, no checkpoint");
        figs.add(&cold_name, "s", cold);
        figs.note(&cold_name, format!("{n} datasets; one run"));
        wait_for_checkpoint(&catalogd);
        let name = format!("rehydration {label}: start to ready");
        for _ in 0..self.runs {
            let (fresh, seconds) = restart(catalogd, false);
            catalogd = fresh;
            figs.add(&name, "s", seconds);
            figs.add(
                &format!("rehydration {label}: catalogd RSS after"),
                "MiB",
                catalogd.memory_mib().0,
            );
        }
        figs.note(&name, format!("{n} datasets, current checkpoint"));
        catalogd
    }
}

/// Waits until catalogd reports a checkpoint written.
fn wait_for_checkpoint(catalogd: &Proc) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let metrics = String::from_utf8(blocking_get(&format!("{}/metrics", catalogd.url())))
            .unwrap_or_default();
        let written = metrics
            .lines()
            .find_map(|l| l.strip_prefix("catalogd_checkpoint_writes_total{outcome=\"ok\"} "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if written > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "catalogd never wrote a checkpoint"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `--only rehydrate`: storaged and catalogd as in the full run, filled with
/// `datasets`, then catalogd restarted (see `rehydrate.rs`).
pub(crate) fn rehydrate_only(
    work: &std::path::Path,
    bins: (&std::path::Path, &std::path::Path),
    datasets: u64,
    runs: usize,
    figs: &mut Figures,
) {
    let mut storaged = start_storaged(work, bins.0, free_port());
    let url = storaged.url();
    let launch = Launch::catalogd(&url, free_port())
        .program(bins.1)
        .env("RUST_LOG", "warn")
        .log_dir(work);
    let catalogd = launch.spawn();
    catalogd.wait_ready_blocking(Duration::from_secs(600));
    fill_to(&catalogd, datasets);
    let restart = Restart {
        catalogd: launch,
        storaged: &url,
        runs,
    };
    let mut catalogd = restart.rehydrate(catalogd, &format!("{}k", datasets / 1000), figs);
    catalogd.stop(Duration::from_secs(20));
    storaged.stop(Duration::from_secs(20));
}
