//! What goes to stdout and stderr. `--json`: one JSON object per line on stdout and nothing
//! else. Otherwise human tables. Progress bars go to stderr, only when stderr is a terminal
//! and neither `--json` nor `--quiet` is given.

use std::io::{IsTerminal, Write};

use comfy_table::{presets, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

/// How this invocation prints.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// One JSON object per line.
    pub json: bool,
    /// No progress, no summaries (results still print).
    pub quiet: bool,
    progress: bool,
}

/// Writes a line to stdout; a closed pipe (`lake ls | head`) ends the program quietly.
pub fn write_line(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

impl Output {
    /// The output of this invocation.
    pub fn new(json: bool, quiet: bool) -> Self {
        Self {
            json,
            quiet,
            progress: !json && !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// One result: a JSON line with `--json`, else `human` (if any).
    pub fn result(&self, json: &Value, human: Option<&str>) {
        if self.json {
            write_line(&json.to_string());
        } else if let Some(h) = human {
            write_line(h);
        }
    }

    /// A table of results: JSON lines with `--json`, else a table with `header`.
    pub fn table(&self, header: &[&str], rows: &[(Value, Vec<String>)]) {
        if self.json {
            for (json, _) in rows {
                write_line(&json.to_string());
            }
            return;
        }
        if rows.is_empty() {
            return;
        }
        let mut table = Table::new();
        table.load_preset(presets::NOTHING);
        table.set_header(header.iter().map(|h| h.to_uppercase()));
        for (_, row) in rows {
            table.add_row(row.clone());
        }
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        for line in table.to_string().lines() {
            write_line(line.trim_end());
        }
    }

    /// A summary line for humans, on stderr (never with `--json` or `--quiet`).
    pub fn summary(&self, line: &str) {
        if !self.json && !self.quiet {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }

    /// A progress bar over `total` bytes, drawn on stderr only when allowed.
    pub fn progress(&self, total: u64) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    }
}

/// Bytes for humans: `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
