//! Load generator for catalogd's register path: distinct names (or one hot name), N
//! concurrent clients; prints registers/s and latency percentiles as one JSON line.
//!
//! ```text
//! cargo run --release -p catalogd --example register_load -- \
//!     --url http://127.0.0.1:8102 --concurrency 64 --requests 5000 --objects 10 [--hot] \
//!     [--ca-file ca.pem]   # for an https:// URL
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;

#[derive(Debug, Parser)]
struct Args {
    /// catalogd base URL.
    #[arg(long, default_value = "http://127.0.0.1:8102")]
    url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Registers in all.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Objects per register.
    #[arg(long, default_value_t = 10)]
    objects: usize,
    /// Register one name over and over instead of distinct names.
    #[arg(long)]
    hot: bool,
    /// Prefix of the generated names (a distinct prefix per run keeps runs independent).
    #[arg(long, default_value = "load")]
    prefix: String,
    /// PEM certificates of the CA to trust for an `https://` URL.
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
}

fn body(name: &str, objects: usize) -> Vec<u8> {
    let objects: Vec<serde_json::Value> = (0..objects)
        .map(|i| serde_json::json!({"key": format!("lake/{name}/part-{i}.parquet"), "size": 4096}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "name": name, "schema_fingerprint": "sha256:bench", "objects": objects, "row_count": 1
    }))
    .expect("json")
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a small vector"
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let args = Args::parse();
    actix_web::rt::System::new().block_on(async move {
        let builder = awc::Client::builder().timeout(Duration::from_secs(30));
        let client = match &args.ca_file {
            Some(ca) => {
                let tls = service_kit::tls::client_config(Some(ca)).expect("the CA file");
                builder
                    .connector(awc::Connector::new().rustls_0_23(std::sync::Arc::new(tls)))
                    .finish()
            }
            None => builder.finish(),
        };
        let url = format!("{}/v1/datasets", args.url.trim_end_matches('/'));
        let started = Instant::now();
        let results: Vec<(u16, Duration)> = futures_util::stream::iter(0..args.requests)
            .map(|i| {
                let name = if args.hot {
                    format!("{}.hot", args.prefix)
                } else {
                    format!("{}.n{i:07}", args.prefix)
                };
                let payload = body(&name, args.objects);
                let req = client
                    .post(&url)
                    .insert_header(("content-type", "application/json"));
                async move {
                    let t = Instant::now();
                    let status = match req.send_body(payload).await {
                        Ok(mut res) => {
                            let _ = res.body().await;
                            res.status().as_u16()
                        }
                        Err(_) => 0,
                    };
                    (status, t.elapsed())
                }
            })
            .buffer_unordered(args.concurrency.max(1))
            .collect()
            .await;
        let elapsed = started.elapsed().as_secs_f64();
        let ok = results.iter().filter(|r| r.0 == 200 || r.0 == 201).count();
        let mut latencies: Vec<Duration> = results.iter().map(|r| r.1).collect();
        latencies.sort_unstable();
        #[allow(clippy::cast_precision_loss, reason = "a request count")]
        let rate = ok as f64 / elapsed;
        println!(
            "{}",
            serde_json::json!({
                "concurrency": args.concurrency,
                "requests": args.requests,
                "ok": ok,
                "errors": args.requests - ok,
                "seconds": elapsed,
                "registers_per_s": rate,
                "p50_ms": percentile_ms(&latencies, 0.50),
                "p99_ms": percentile_ms(&latencies, 0.99),
                "p999_ms": percentile_ms(&latencies, 0.999),
            })
        );
    });
}
