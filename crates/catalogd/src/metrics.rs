//! Prometheus metrics, registered on a registry owned by one application instance.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Register outcomes, the values of the `outcome` label.
pub const OUTCOMES: [&str; 5] = ["created", "updated", "conflict", "invalid", "storage_error"];

/// catalogd's metrics; cheap to clone (every handle is shared).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route pattern, method and status.
    pub requests: IntCounterVec,
    /// Request latency by route pattern, method and status.
    pub latency: HistogramVec,
    /// Registers by outcome.
    pub registers: IntCounterVec,
    /// Datasets in the index (set when scraped).
    pub datasets: IntGauge,
    /// How long the last rehydration took.
    pub rehydration_seconds: Gauge,
    /// Manifests loaded by the last rehydration.
    pub rehydration_manifests: IntGauge,
    /// Manifests the last rehydration fetched one by one (not current in the checkpoint).
    pub rehydration_fetched: IntGauge,
    /// Keys under the manifest prefix that the last rebuild skipped as not manifests.
    pub foreign_manifest_keys: IntGauge,
    /// Checkpoint writes by outcome (`ok`, `error`).
    pub checkpoints: IntCounterVec,
    /// 1 once the index is rebuilt and requests are served.
    pub ready: IntGauge,
    /// Latency of calls to storaged by operation.
    pub storaged_latency: HistogramVec,
    /// Failed calls to storaged by operation and kind.
    pub storaged_errors: IntCounterVec,
    /// Authorization decisions by credential name (`-` unknown) and outcome (`allowed`,
    /// `unauthorized`, `forbidden`).
    pub credential_requests: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric on a fresh registry.
    #[allow(
        clippy::too_many_lines,
        reason = "one definition per metric, read top to bottom"
    )]
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let labels = &["route", "method", "status"];
        let requests = IntCounterVec::new(
            Opts::new(
                "catalogd_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            labels,
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "catalogd_http_request_duration_seconds",
                "HTTP request latency by route, method and status",
            )
            .buckets(service_kit::LATENCY_BUCKETS.to_vec()),
            labels,
        )?;
        let registers = IntCounterVec::new(
            Opts::new("catalogd_registers_total", "Register calls by outcome"),
            &["outcome"],
        )?;
        for outcome in OUTCOMES {
            registers.with_label_values(&[outcome]);
        }
        let datasets = IntGauge::new("catalogd_datasets", "Datasets in the index")?;
        let rehydration_seconds = Gauge::new(
            "catalogd_rehydration_duration_seconds",
            "Duration of the last index rebuild from storaged",
        )?;
        let rehydration_manifests = IntGauge::new(
            "catalogd_rehydration_manifests",
            "Manifests loaded by the last index rebuild",
        )?;
        let ready = IntGauge::new("catalogd_ready", "1 once the index is rebuilt")?;
        let rehydration_fetched = IntGauge::new(
            "catalogd_rehydration_fetched_manifests",
            "Manifests the last index rebuild fetched one by one (not current in the checkpoint)",
        )?;
        let foreign_manifest_keys = IntGauge::new(
            "catalogd_foreign_manifest_keys",
            "Keys under _catalog/manifests/ that are not <name>.parquet, skipped by the last index rebuild",
        )?;
        let checkpoints = IntCounterVec::new(
            Opts::new(
                "catalogd_checkpoint_writes_total",
                "Checkpoint writes by outcome",
            ),
            &["outcome"],
        )?;
        for outcome in ["ok", "error"] {
            checkpoints.with_label_values(&[outcome]);
        }
        let storaged_latency = HistogramVec::new(
            HistogramOpts::new(
                "catalogd_storaged_request_duration_seconds",
                "Latency of calls to storaged by operation",
            )
            .buckets(service_kit::LATENCY_BUCKETS.to_vec()),
            &["op"],
        )?;
        let storaged_errors = IntCounterVec::new(
            Opts::new(
                "catalogd_storaged_errors_total",
                "Failed calls to storaged by operation and kind",
            ),
            &["op", "kind"],
        )?;
        let credential_requests = IntCounterVec::new(
            Opts::new(
                "catalogd_credential_requests_total",
                "Authorization decisions by credential and outcome",
            ),
            &["credential", "outcome"],
        )?;
        for metric in [
            Box::new(credential_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(requests.clone()),
            Box::new(latency.clone()),
            Box::new(registers.clone()),
            Box::new(datasets.clone()),
            Box::new(rehydration_seconds.clone()),
            Box::new(rehydration_manifests.clone()),
            Box::new(ready.clone()),
            Box::new(storaged_latency.clone()),
            Box::new(storaged_errors.clone()),
            Box::new(rehydration_fetched.clone()),
            Box::new(foreign_manifest_keys.clone()),
            Box::new(checkpoints.clone()),
        ] {
            registry.register(metric)?;
        }
        Ok(Self {
            registry,
            requests,
            latency,
            registers,
            datasets,
            rehydration_seconds,
            rehydration_manifests,
            rehydration_fetched,
            foreign_manifest_keys,
            checkpoints,
            ready,
            storaged_latency,
            storaged_errors,
            credential_requests,
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
