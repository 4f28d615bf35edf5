//! The machine's own ceilings, measured in the same run as the product: what a durable
//! write costs on this filesystem, what actix-web serves with nothing behind it, and what
//! the disk writes sequentially.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::Bytes;

use crate::load::Sample;

/// "write 4 KiB to a temp file, fsync, rename, fsync the directory" in `threads` threads
/// for `duration`, in `dir` (on the data directory's filesystem).
pub(crate) fn durable_write(dir: &Path, threads: usize, duration: Duration) -> Sample {
    let tmp = dir.join("tmp");
    let objects = dir.join("objects");
    fs::create_dir_all(&tmp).expect("ceiling tmp dir");
    fs::create_dir_all(&objects).expect("ceiling objects dir");
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (tmp, objects, next) = (tmp.clone(), objects.clone(), next.clone());
            std::thread::spawn(move || {
                let data = [0x5a_u8; 4096];
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    durable_write_one(&tmp.join(format!("{n}.tmp")), &objects, n, &data)
                        .expect("durable write");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("writer thread"))
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Sample {
        ok: latencies.len() as u64,
        errors: 0,
        bytes: latencies.len() as u64 * 4096,
        seconds,
        latencies,
    }
}

fn durable_write_one(temp: &Path, objects: &Path, n: u64, data: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(temp)?;
    file.write_all(data)?;
    file.sync_all()?;
    drop(file);
    fs::rename(temp, objects.join(n.to_string()))?;
    File::open(objects)?.sync_all()
}

/// Sequential write of `bytes` in 1 MiB blocks, fsync at the end → MB/s (10^6 bytes).
pub(crate) fn disk_write(path: &PathBuf, bytes: u64) -> f64 {
    let block = vec![0xa5_u8; 1 << 20];
    let started = Instant::now();
    let mut file = File::create(path).expect("disk ceiling file");
    let mut written = 0;
    while written < bytes {
        file.write_all(&block).expect("disk ceiling write");
        written += block.len() as u64;
    }
    file.sync_all().expect("disk ceiling fsync");
    crate::load::as_f64(written) / started.elapsed().as_secs_f64() / 1e6
}

/// A trivial actix-web server with the services' worker count: `/tiny` answers two bytes,
/// `/big` a 64 MiB body from memory.
pub(crate) struct HttpCeiling {
    pub(crate) port: u16,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub(crate) const BIG_BODY: usize = 64 << 20;

impl HttpCeiling {
    pub(crate) fn start(workers: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let big = Bytes::from(vec![0x42_u8; BIG_BODY]);
                let server = HttpServer::new(move || {
                    let big = big.clone();
                    App::new()
                        .route(
                            "/tiny",
                            web::get().to(|| async { HttpResponse::Ok().body("ok") }),
                        )
                        .route(
                            "/big",
                            web::get().to(move || {
                                let big = big.clone();
                                async move { HttpResponse::Ok().body(big) }
                            }),
                        )
                })
                .workers(workers)
                .disable_signals()
                .bind("127.0.0.1:0")
                .expect("bind the ceiling server");
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, server.handle())).expect("report the port");
                let _ = server.await;
            });
        });
        let (port, handle) = rx.recv().expect("ceiling server started");
        Self {
            port,
            handle,
            thread: Some(thread),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for HttpCeiling {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let _ = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(handle.stop(false));
        })
        .join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
