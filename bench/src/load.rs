//! A closed-loop HTTP load client: N requests in flight, split over a few client threads
//! (each its own actix runtime), for a fixed time or a fixed number of requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::Method;
use bytes::Bytes;
use futures_util::StreamExt;

/// One request to send; `n` numbers the request across all threads.
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) body: Bytes,
    pub(crate) json: bool,
}

impl Req {
    pub(crate) fn get(url: String) -> Self {
        Self {
            method: Method::GET,
            url,
            body: Bytes::new(),
            json: false,
        }
    }
}

pub(crate) type MakeReq = Arc<dyn Fn(u64) -> Req + Send + Sync>;

/// When a load run stops.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stop {
    After(Duration),
    Requests(u64),
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) latencies: Vec<Duration>,
}

impl Sample {
    pub(crate) fn rate(&self) -> f64 {
        as_f64(self.ok) / self.seconds
    }

    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies, p)
    }
}

#[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
pub(crate) fn as_f64(n: u64) -> f64 {
    n as f64
}

/// The `p` quantile of sorted latencies, in milliseconds.
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a vector"
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Runs `concurrency` requests in flight until `stop`; 2xx answers count as ok.
pub(crate) fn run(concurrency: usize, stop: Stop, make: &MakeReq) -> Sample {
    let threads = if concurrency >= 2 { 2 } else { 1 };
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = match stop {
        Stop::After(d) => Some(started + d),
        Stop::Requests(_) => None,
    };
    let limit = match stop {
        Stop::After(_) => u64::MAX,
        Stop::Requests(n) => n,
    };
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let share = concurrency / threads + usize::from(t < concurrency % threads);
            let make = make.clone();
            let next = next.clone();
            std::thread::spawn(move || {
                actix_web::rt::System::new()
                    .block_on(client_thread(share, deadline, limit, &make, &next))
            })
        })
        .collect();
    let mut total = Sample {
        ok: 0,
        errors: 0,
        bytes: 0,
        seconds: 0.0,
        latencies: Vec::new(),
    };
    for h in handles {
        let s = h.join().expect("client thread");
        total.ok += s.ok;
        total.errors += s.errors;
        total.bytes += s.bytes;
        total.latencies.extend(s.latencies);
    }
    total.seconds = started.elapsed().as_secs_f64();
    total.latencies.sort_unstable();
    total
}

async fn client_thread(
    concurrency: usize,
    deadline: Option<Instant>,
    limit: u64,
    make: &MakeReq,
    next: &AtomicU64,
) -> Sample {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .connector(awc::Connector::new().limit(concurrency.max(1) + 4))
        .finish();
    let results: Vec<(bool, u64, Duration)> = futures_util::stream::iter(0..concurrency)
        .map(|_| async {
            let mut out = Vec::new();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                let req = make(n);
                let mut builder = client.request(req.method, &req.url);
                if req.json {
                    builder = builder.insert_header(("content-type", "application/json"));
                }
                let t = Instant::now();
                let outcome = match builder.send_body(req.body).await {
                    Ok(mut res) => {
                        let mut bytes = 0u64;
                        let mut ok = res.status().is_success();
                        while let Some(chunk) = res.next().await {
                            let Ok(c) = chunk else {
                                ok = false;
                                break;
                            };
                            bytes += c.len() as u64;
                        }
                        (ok, bytes)
                    }
                    Err(_) => (false, 0),
                };
                out.push((outcome.0, outcome.1, t.elapsed()));
            }
            futures_util::stream::iter(out)
        })
        .buffer_unordered(concurrency.max(1))
        .flatten()
        .collect()
        .await;
    let mut sample = Sample {
        ok: 0,
        errors: 0,
        bytes: 0,
        seconds: 0.0,
        latencies: Vec::with_capacity(results.len()),
    };
    for (ok, bytes, latency) in results {
        if ok {
            sample.ok += 1;
        } else {
            sample.errors += 1;
        }
        sample.bytes += bytes;
        sample.latencies.push(latency);
    }
    sample
}
