//! `--only log` (also part of the full run): small writes and registers with storaged's
//! write log off and on (ADR 0017), beside the durable-file-write ceiling and PostgreSQL
//! upserting the same rows, interleaved run by run so that all see the same machine.

use std::path::Path;
use std::time::Duration;

use testkit::{free_port, Launch, Proc};

use crate::load::{self, Stop};
use crate::postgres::Postgres;
use crate::report::Figures;
use crate::{ceiling, puts, registers};

/// storaged (log on or off) and catalogd over it, both release builds with warn logs.
fn stack(work: &Path, bins: (&Path, &Path), name: &str, log: &str) -> (Proc, Proc) {
    let storaged = Launch::storaged(&work.join(name), free_port())
        .program(bins.0)
        .env("RUST_LOG", "warn")
        .env("STORAGED_LOG_MAX_OBJECT_SIZE", log)
        .log_dir(work)
        .spawn();
    storaged.wait_ready_blocking(Duration::from_secs(120));
    let catalogd = Launch::catalogd(&storaged.url(), free_port())
        .program(bins.1)
        .env("RUST_LOG", "warn")
        .log_dir(work)
        .spawn();
    catalogd.wait_ready_blocking(Duration::from_secs(120));
    (storaged, catalogd)
}

/// CPU seconds (user + system) of a process so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU used by storaged, catalogd and this load generator since `now`.
struct Cpu([f64; 3]);

impl Cpu {
    fn now(storaged: &Proc, catalogd: &Proc) -> Self {
        Self([
            cpu_seconds(&storaged.pid().to_string()),
            cpu_seconds(&catalogd.pid().to_string()),
            cpu_seconds("self"),
        ])
    }

    /// Adds µs of CPU per request in each process.
    fn per_request(
        &self,
        storaged: &Proc,
        catalogd: &Proc,
        requests: u64,
        what: &str,
        figs: &mut Figures,
    ) {
        let after = Self::now(storaged, catalogd);
        let n = crate::load::as_f64(requests.max(1));
        for (i, who) in ["storaged", "catalogd", "client"].iter().enumerate() {
            figs.add(
                &format!("register CPU per request {what}: {who}"),
                "µs",
                (after.0[i] - self.0[i]) * 1e6 / n,
            );
        }
    }
}

pub(crate) fn log_figures(
    work: &Path,
    bins: (&Path, &Path),
    runs: usize,
    secs: Duration,
    figs: &mut Figures,
) {
    let stop = Stop::After(secs);
    let pg = match Postgres::start(&work.join("postgres")) {
        Ok(pg) => Some(pg),
        Err(why) => {
            eprintln!("PostgreSQL: {why}");
            figs.note("register c=1, log", format!("PostgreSQL skipped: {why}"));
            None
        }
    };
    for run in 0..runs {
        let s = ceiling::durable_write(&work.join(format!("ceiling/r{run}")), 64, secs);
        figs.add("ceiling durable write c=64", "ops/s", s.rate());
        let mut ours = std::collections::HashMap::new();
        for (label, log) in [("files", "0"), ("log", "256 KiB")] {
            let (storaged, catalogd) = stack(work, bins, &format!("{label}-r{run}"), log);
            for c in [1, 8, 64] {
                let s = load::run(c, stop, &puts(&storaged.url(), &format!("p{run}c{c}")));
                assert_eq!(s.errors, 0, "PUT with {label}: errors");
                figs.add(&format!("PUT 4 KiB c={c}, {label}"), "req/s", s.rate());
            }
            for c in [1, 8, 64] {
                let cpu = Cpu::now(&storaged, &catalogd);
                let s = load::run(
                    c,
                    stop,
                    &registers(&catalogd.url(), format!("r{run}c{c}"), false),
                );
                assert_eq!(s.errors, 0, "registers with {label}: errors");
                cpu.per_request(&storaged, &catalogd, s.ok, &format!("c={c}, {label}"), figs);
                figs.add(&format!("register c={c}, {label}"), "req/s", s.rate());
                ours.insert((label, c, false), s.rate());
                figs.add(
                    &format!("register c={c} p99, {label}"),
                    "ms",
                    s.percentile_ms(0.99),
                );
            }
            let s = load::run(
                64,
                stop,
                &registers(&catalogd.url(), format!("h{run}"), true),
            );
            figs.add(
                &format!("register c=64 one hot name, {label}"),
                "req/s",
                s.rate(),
            );
            ours.insert((label, 64, true), s.rate());
        }
        let Some(pg) = &pg else { continue };
        for (c, hot) in [(1, false), (8, false), (64, false), (64, true)] {
            let theirs = pg.upserts(work, c, secs, hot);
            let what = if hot {
                format!("c={c} one hot name")
            } else {
                format!("c={c}")
            };
            figs.add(&format!("PostgreSQL upsert {what}"), "tx/s", theirs);
            for label in ["files", "log"] {
                figs.add(
                    &format!("register ÷ PostgreSQL {what}, {label}"),
                    "×",
                    ours[&(label, c, hot)] / theirs,
                );
            }
        }
    }
}
