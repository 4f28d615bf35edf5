//! Prometheus metrics, registered on a registry owned by one application instance.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};

/// storaged's metrics; cheap to clone (every handle is shared).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route pattern, method and status.
    pub requests: IntCounterVec,
    /// Request latency by route pattern, method and status.
    pub latency: HistogramVec,
    /// Body bytes received by uploads.
    pub bytes_in: IntCounter,
    /// Body bytes sent by downloads.
    pub bytes_out: IntCounter,
    /// Latency of each fsync (files and directories).
    pub fsync_seconds: Histogram,
    /// Error responses by error code.
    pub errors: IntCounterVec,
    /// The write log's batches, records and bytes (each batch one `fdatasync`, counted in
    /// `fsync_seconds` too).
    pub log: crate::backend::LogMetrics,
    /// Authorization decisions by credential name (`-` unknown) and outcome (`allowed`,
    /// `unauthorized`, `forbidden`).
    pub credential_requests: IntCounterVec,
    /// S3 face requests by operation and status.
    pub s3_requests: IntCounterVec,
    /// S3 face latency by operation.
    pub s3_latency: HistogramVec,
}

impl Metrics {
    /// Creates and registers every metric on a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let labels = &["route", "method", "status"];
        let requests = IntCounterVec::new(
            Opts::new(
                "storaged_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            labels,
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "storaged_http_request_duration_seconds",
                "HTTP request latency by route, method and status",
            )
            .buckets(service_kit::LATENCY_BUCKETS.to_vec()),
            labels,
        )?;
        let bytes_in = IntCounter::new("storaged_bytes_in_total", "Object bytes received")?;
        let bytes_out = IntCounter::new("storaged_bytes_out_total", "Object bytes sent")?;
        let fsync_seconds = Histogram::with_opts(
            HistogramOpts::new("storaged_fsync_duration_seconds", "fsync latency").buckets(vec![
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                1.0,
            ]),
        )?;
        let errors = IntCounterVec::new(
            Opts::new("storaged_errors_total", "Error responses by error code"),
            &["kind"],
        )?;
        let credential_requests = IntCounterVec::new(
            Opts::new(
                "storaged_credential_requests_total",
                "Authorization decisions by credential and outcome",
            ),
            &["credential", "outcome"],
        )?;
        let s3_requests = IntCounterVec::new(
            Opts::new(
                "storaged_s3_requests_total",
                "S3 face requests by operation and status",
            ),
            &["operation", "status"],
        )?;
        let s3_latency = HistogramVec::new(
            HistogramOpts::new(
                "storaged_s3_request_duration_seconds",
                "S3 face request latency by operation",
            )
            .buckets(service_kit::LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )?;
        registry.register(Box::new(s3_requests.clone()))?;
        registry.register(Box::new(s3_latency.clone()))?;
        registry.register(Box::new(credential_requests.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(bytes_in.clone()))?;
        registry.register(Box::new(bytes_out.clone()))?;
        registry.register(Box::new(fsync_seconds.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        let log = log_metrics(&registry, &fsync_seconds)?;
        Ok(Self {
            registry,
            requests,
            latency,
            bytes_in,
            bytes_out,
            fsync_seconds,
            errors,
            log,
            credential_requests,
            s3_requests,
            s3_latency,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The write log's metrics (ADR 0017, 0018), registered in `registry`.
fn log_metrics(
    registry: &Registry,
    fsync_seconds: &Histogram,
) -> Result<crate::backend::LogMetrics, prometheus::Error> {
    let log = crate::backend::LogMetrics {
        batches: IntCounter::new(
            "storaged_log_batches_total",
            "Write-log batches written, each one fdatasync",
        )?,
        records: IntCounter::new("storaged_log_records_total", "Write-log records written")?,
        bytes: IntCounter::new("storaged_log_bytes_total", "Write-log bytes written")?,
        sync_seconds: Some(fsync_seconds.clone()),
        checkpoints: IntCounter::new(
            "storaged_log_checkpoints_total",
            "Write-log index checkpoints written",
        )?,
        compacted_segments: IntCounter::new(
            "storaged_log_compacted_segments_total",
            "Write-log segments compaction removed",
        )?,
        compaction_copied_bytes: IntCounter::new(
            "storaged_log_compaction_copied_bytes_total",
            "Bytes of live records compaction copied forward",
        )?,
        compaction_reclaimed_bytes: IntCounter::new(
            "storaged_log_compaction_reclaimed_bytes_total",
            "Bytes of segment files compaction removed",
        )?,
        segment_bytes: prometheus::IntGauge::new(
            "storaged_log_segment_bytes",
            "Bytes of write-log segment files on disk",
        )?,
    };
    registry.register(Box::new(log.batches.clone()))?;
    registry.register(Box::new(log.records.clone()))?;
    registry.register(Box::new(log.bytes.clone()))?;
    registry.register(Box::new(log.checkpoints.clone()))?;
    registry.register(Box::new(log.compacted_segments.clone()))?;
    registry.register(Box::new(log.compaction_copied_bytes.clone()))?;
    registry.register(Box::new(log.compaction_reclaimed_bytes.clone()))?;
    registry.register(Box::new(log.segment_bytes.clone()))?;
    Ok(log)
}
