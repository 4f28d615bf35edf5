//! Figures, the table, the targets as ratios to the same run's ceilings, and the
//! comparison with the previous results.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

/// Figures in the order they were first measured.
#[derive(Default)]
pub(crate) struct Figures {
    order: Vec<String>,
    values: BTreeMap<String, (String, Vec<f64>)>,
    notes: BTreeMap<String, String>,
}

pub(crate) struct Stat {
    pub(crate) name: String,
    pub(crate) unit: String,
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) runs: Vec<f64>,
    pub(crate) note: Option<String>,
}

impl Figures {
    pub(crate) fn add(&mut self, name: &str, unit: &str, value: f64) {
        if !self.values.contains_key(name) {
            self.order.push(name.to_owned());
        }
        self.values
            .entry(name.to_owned())
            .or_insert_with(|| (unit.to_owned(), Vec::new()))
            .1
            .push(value);
        eprintln!("  {name}: {value:.2} {unit}");
    }

    pub(crate) fn note(&mut self, name: &str, note: String) {
        self.notes.insert(name.to_owned(), note);
    }

    pub(crate) fn finish(mut self) -> Vec<Stat> {
        self.order
            .iter()
            .map(|name| {
                let (unit, runs) = self.values.remove(name).expect("a measured figure");
                let mut sorted = runs.clone();
                sorted.sort_by(f64::total_cmp);
                let median = if sorted.len() % 2 == 1 {
                    sorted[sorted.len() / 2]
                } else {
                    f64::midpoint(sorted[sorted.len() / 2 - 1], sorted[sorted.len() / 2])
                };
                Stat {
                    name: name.clone(),
                    unit,
                    median,
                    min: sorted[0],
                    max: sorted[sorted.len() - 1],
                    runs,
                    note: self.notes.remove(name),
                }
            })
            .collect()
    }
}

fn higher_is_better(unit: &str) -> bool {
    !matches!(unit, "ms" | "s" | "MiB")
}

fn median_of(stats: &[Stat], name: &str) -> Option<f64> {
    stats.iter().find(|s| s.name == name).map(|s| s.median)
}

/// The targets of issue 6, each a ratio to a ceiling of the same run (or an absolute bound).
#[allow(
    clippy::too_many_lines,
    reason = "the list of targets, read top to bottom"
)]
fn targets(stats: &[Stat]) -> Vec<Value> {
    let m = |name: &str| median_of(stats, name);
    let best_durable = ["1", "8", "64"]
        .iter()
        .filter_map(|c| m(&format!("ceiling durable write c={c}")))
        .fold(0.0_f64, f64::max);
    let mut out = Vec::new();
    let mut ratio = |what: &str, got: Option<f64>, ceiling: Option<f64>, factor: f64| {
        if let (Some(got), Some(ceiling)) = (got, ceiling) {
            let r = got / ceiling;
            out.push(json!({"target": what, "value": got, "ceiling": ceiling, "ratio": r, "required": factor, "met": r >= factor}));
        }
    };
    ratio(
        "register c=1 ≥ 0.6 × durable write c=1",
        m("register c=1"),
        m("ceiling durable write c=1"),
        0.6,
    );
    ratio(
        "register c=64 ≥ 0.8 × best durable write",
        m("register c=64"),
        Some(best_durable),
        0.8,
    );
    ratio(
        "register c=256 ≥ 0.8 × best durable write",
        m("register c=256"),
        Some(best_durable),
        0.8,
    );
    ratio(
        "GET dataset c=64 ≥ 0.3 × HTTP trivial c=64",
        m("GET dataset c=64"),
        m("ceiling HTTP trivial c=64"),
        0.3,
    );
    ratio(
        "storaged GET 4 KiB c=64 ≥ 0.3 × HTTP trivial c=64",
        m("storaged GET 4 KiB c=64"),
        m("ceiling HTTP trivial c=64"),
        0.3,
    );
    ratio(
        "storaged GET 1 GiB ≥ 0.7 × HTTP 64 MiB from memory",
        m("storaged GET 1 GiB"),
        m("ceiling HTTP 64 MiB from memory c=4"),
        0.7,
    );
    ratio(
        "lake cp -r 1,000 × 64 KiB ≥ 0.8 × storaged PUT 64 KiB c=4",
        m("lake cp -r 1,000 × 64 KiB -j 4"),
        m("storaged PUT 64 KiB c=4"),
        0.8,
    );
    ratio(
        "lake cp 1 GiB ≥ 0.8 × storaged PUT 1 GiB (beside it)",
        m("lake cp 1 GiB"),
        m("storaged PUT 1 GiB (beside lake cp)"),
        0.8,
    );
    ratio(
        "S3 PutObject 4 KiB c=64 ≥ 0.8 × native PUT (beside it)",
        m("S3 PutObject 4 KiB c=64"),
        m("native PUT 4 KiB c=64 (beside S3)"),
        0.8,
    );
    ratio(
        "S3 GetObject 4 KiB c=64 ≥ 0.8 × native GET (beside it)",
        m("S3 GetObject 4 KiB c=64"),
        m("native GET 4 KiB c=64 (beside S3)"),
        0.8,
    );
    ratio(
        "S3 multipart PUT 1 GiB ≥ 0.8 × native PUT (beside it)",
        m("S3 multipart PUT 1 GiB (64 MiB parts, 4 at once)"),
        m("native PUT 1 GiB (beside S3)"),
        0.8,
    );
    ratio(
        "S3 GetObject 1 GiB ≥ 0.8 × native GET (beside it)",
        m("S3 GetObject 1 GiB"),
        m("native GET 1 GiB (beside S3)"),
        0.8,
    );
    ratio(
        "storaged PUT 1 GiB ≥ 0.7 × disk sequential write",
        m("storaged PUT 1 GiB"),
        m("ceiling disk sequential write 1 GiB + fsync"),
        0.7,
    );
    let mut bound = |what: &str, got: Option<f64>, max: f64| {
        if let Some(got) = got {
            out.push(json!({"target": what, "value": got, "bound": max, "met": got <= max}));
        }
    };
    bound(
        "rehydration of 100,000 ≤ 5 s",
        m("rehydration 100k: start to ready"),
        5.0,
    );
    bound(
        "catalogd RSS after 100,000 ≤ 500 MiB",
        m("rehydration 100k: catalogd RSS after"),
        500.0,
    );
    out
}

/// Figures whose median moved the wrong way by more than 10 % against the baseline.
fn regressions(stats: &[Stat], baseline: &Value) -> Vec<String> {
    stats
        .iter()
        .filter_map(|s| {
            let old = baseline["figures"][&s.name]["median"].as_f64()?;
            let worse = if higher_is_better(&s.unit) {
                s.median < old * 0.9
            } else {
                s.median > old * 1.1
            };
            worse.then(|| format!("{}: {:.2} → {:.2} {}", s.name, old, s.median, s.unit))
        })
        .collect()
}

pub(crate) fn print_and_save(stats: &[Stat], out: &Path, baseline: &Path) {
    println!("| figure | median | min | max | unit | |");
    println!("| --- | ---: | ---: | ---: | --- | --- |");
    for s in stats {
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {} | {} |",
            s.name,
            s.median,
            s.min,
            s.max,
            s.unit,
            s.note.as_deref().unwrap_or("")
        );
    }
    let targets = targets(stats);
    println!("\n| target | value | ratio or bound | met |\n| --- | ---: | ---: | --- |");
    for t in &targets {
        let against = t["ratio"].as_f64().map_or_else(
            || format!("≤ {}", t["bound"]),
            |r| format!("{r:.2} (≥ {})", t["required"]),
        );
        println!(
            "| {} | {:.2} | {} | {} |",
            t["target"].as_str().unwrap_or_default(),
            t["value"].as_f64().unwrap_or_default(),
            against,
            if t["met"] == true { "yes" } else { "**no**" }
        );
    }
    let baseline_json = std::fs::read(baseline)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let regressed = baseline_json
        .as_ref()
        .map(|b| regressions(stats, b))
        .unwrap_or_default();
    match &baseline_json {
        None => println!("\nno baseline at {}; nothing compared", baseline.display()),
        Some(_) if regressed.is_empty() => {
            println!(
                "\nno figure regressed by more than 10 % against {}",
                baseline.display()
            );
        }
        Some(_) => {
            println!(
                "\nregressed by more than 10 % against {}:",
                baseline.display()
            );
            for r in &regressed {
                println!("- {r}");
            }
        }
    }
    let figures: serde_json::Map<String, Value> = stats
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                json!({"unit": s.unit, "median": s.median, "min": s.min, "max": s.max, "runs": s.runs, "note": s.note}),
            )
        })
        .collect();
    let doc = json!({
        "machine": machine(),
        "figures": figures,
        "targets": targets,
        "regressions": regressed,
    });
    std::fs::write(out, serde_json::to_vec_pretty(&doc).expect("json")).expect("writing results");
    println!("\nwritten to {}", out.display());
}

fn machine() -> Value {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({"cpus": cpus, "kernel": kernel.trim()})
}

/// req/s that `wrk` drives against `url`, when wrk is installed: shows whether our own
/// client, not the server, is the bottleneck.
pub(crate) fn wrk(url: &str, connections: usize, duration: Duration) -> Option<f64> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs().max(1)),
            url,
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Prints and saves the figures as `dir/name` beside the baseline, then removes the work
/// directory.
pub(crate) fn finish(figs: Figures, dir: &Path, baseline: &Path, name: &str, work: &Path) {
    let results = figs.finish();
    print_and_save(&results, &dir.join(name), baseline);
    std::fs::remove_dir_all(work).expect("removing the work directory");
}
