//! `lake cp` beside storaged's own PUTs of the same sizes (`lake-bench --only lake`).

use std::time::{Duration, Instant};

use crate::large::put_large;
use crate::load::{self, Stop};
use crate::puts_of;
use crate::report::Figures;

/// `lake cp` beside storaged's own PUT rate for the same sizes and concurrency: 1,000
/// files of 64 KiB (`-j 4` against 4 concurrent PUTs) and one large file.
pub(crate) fn lake_cli(
    work: &std::path::Path,
    storaged_url: &str,
    runs: usize,
    mib: u64,
    figs: &mut Figures,
) {
    const FILES: u64 = 1_000;
    let lake = testkit::bin("lake");
    let small = work.join("lake-cp/small");
    std::fs::create_dir_all(&small).expect("lake-cp dir");
    for i in 0..FILES {
        std::fs::write(small.join(format!("f{i:04}.bin")), vec![0x5a_u8; 64 << 10]).expect("file");
    }
    let big = work.join("lake-cp/big.bin");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&big).expect("big file");
        let chunk = vec![0x77_u8; 1 << 20];
        for _ in 0..mib {
            f.write_all(&chunk).expect("big file");
        }
    }
    // Seconds, and the peak RSS (VmHWM, sampled until the process exits) in MiB.
    let cp = |src: &std::path::Path, dst: &str, recursive: bool| -> (f64, f64) {
        let mut cmd = std::process::Command::new(&lake);
        cmd.arg("cp").arg("--quiet");
        if recursive {
            cmd.args(["-r", "-j", "4"]);
        }
        let t = Instant::now();
        let mut child = cmd
            .arg(src)
            .arg(dst)
            .env("LAKE_STORAGED_URL", storaged_url)
            .spawn()
            .expect("running lake");
        let status_file = format!("/proc/{}/status", child.id());
        let mut peak_kib = 0_u64;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for lake") {
                break status;
            }
            if let Ok(text) = std::fs::read_to_string(&status_file) {
                if let Some(kib) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak_kib = peak_kib.max(kib);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(status.success(), "lake cp {} failed", src.display());
        (t.elapsed().as_secs_f64(), load::as_f64(peak_kib) / 1024.0)
    };
    // Each pair is measured back to back from a synced disk, the order alternating per
    // run, so writeback left by one side does not slow the other.
    let sync = || {
        let _ = std::process::Command::new("sync").status();
    };
    for run in 0..runs {
        let storaged_small = |figs: &mut Figures| {
            sync();
            let s = load::run(
                4,
                Stop::Requests(FILES),
                &puts_of(storaged_url, &format!("bench/put64k/r{run}"), 64 << 10),
            );
            figs.add("storaged PUT 64 KiB c=4", "req/s", s.rate());
        };
        let lake_small = |figs: &mut Figures| {
            sync();
            let (secs, _) = cp(&small, &format!("s3://bench/lake-cp/r{run}/"), true);
            figs.add(
                "lake cp -r 1,000 × 64 KiB -j 4",
                "files/s",
                load::as_f64(FILES) / secs,
            );
        };
        let storaged_big = |figs: &mut Figures| {
            sync();
            let mbps = put_large(storaged_url, &format!("bench/beside-lake/{run}"), mib);
            figs.add("storaged PUT 1 GiB (beside lake cp)", "MB/s", mbps);
        };
        let lake_big = |figs: &mut Figures| {
            sync();
            let (secs, rss) = cp(&big, &format!("s3://bench/lake-cp-big/r{run}.bin"), false);
            figs.add(
                "lake cp 1 GiB",
                "MB/s",
                load::as_f64(mib << 20) / secs / 1e6,
            );
            figs.add("lake cp 1 GiB: lake peak RSS (VmHWM)", "MiB", rss);
        };
        if run % 2 == 0 {
            storaged_small(figs);
            lake_small(figs);
            storaged_big(figs);
            lake_big(figs);
        } else {
            lake_small(figs);
            storaged_small(figs);
            lake_big(figs);
            storaged_big(figs);
        }
    }
}
