//! Prometheus metrics: one registry for the process, every series declared here (the shift
//! drift series in `drift`) so that names stay consistent across stages. Served as text at
//! `/metrics`.

pub mod drift;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder, exponential_buckets,
};
use std::sync::OnceLock;

pub struct Metrics {
    pub registry: Registry,
    /// Capture events taken from the queue.
    pub captures_received: IntCounterVec,
    /// Captures with a committed decision, by grade.
    pub captures_classified: IntCounterVec,
    /// Captures sent to the dead-letter queue, by reason code.
    pub captures_dead_lettered: IntCounterVec,
    /// Transient failures left unacknowledged for redelivery, by reason.
    pub captures_retried: IntCounterVec,
    /// Redelivered captures acknowledged without a second decision.
    pub captures_duplicate: IntCounterVec,
    /// Images per inference batch.
    pub batch_size: HistogramVec,
    /// Seconds spent in each stage (decode, preprocess, inference, store, ack).
    pub stage_seconds: HistogramVec,
    /// Seconds of inference per model and batch.
    pub model_inference_seconds: HistogramVec,
    /// Decisions carrying each flag.
    pub decisions_flagged: IntCounterVec,
    /// Decisions where the two models of a pair voted differently.
    pub model_pair_disagreements: IntCounterVec,
    /// 1 for the execution provider in use (label `provider`), with the fallback reason if any.
    pub execution_provider: IntGaugeVec,
    /// Reviews recorded, by whether the grade was changed (`overridden` true/false).
    pub reviews: IntCounterVec,
    /// HL7 messages written to the transport, by profile.
    pub hl7_sent: IntCounterVec,
    /// HL7 messages acknowledged with AA/CA.
    pub hl7_acked: IntCounterVec,
    /// HL7 messages parked as failed (AE) or stopped by a configuration error (AR 200-203).
    pub hl7_failed: IntCounterVec,
    /// HL7 resends after AR, a timeout or a dropped connection.
    pub hl7_retried: IntCounterVec,
    /// Plates whose QC settled, by state (`passed`, `failed`, `missing`).
    pub plates_qc: IntCounterVec,
    /// Outbox messages not yet acknowledged.
    pub outbox_depth: IntGauge,
    /// Age in seconds of the oldest pending outbox message.
    pub outbox_oldest_pending_seconds: IntGauge,
    /// 1 while the broker connection is up.
    pub broker_connected: IntGauge,
    /// Shift scores and the recent out-of-distribution share, per analyzer.
    pub drift: drift::Drift,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str], b: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(b), labels)
        .expect("valid metric definition");
    r.register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new_custom(Some("iari".into()), None).expect("valid registry prefix");
        let secs = exponential_buckets(0.0001, 2.0, 18).expect("valid buckets");
        let sizes = exponential_buckets(1.0, 2.0, 12).expect("valid buckets");
        let provider = IntGaugeVec::new(
            Opts::new(
                "execution_provider",
                "Execution provider in use (1) and fallback reason",
            ),
            &["provider", "requested", "fallback"],
        )
        .expect("valid metric definition");
        r.register(Box::new(provider.clone()))
            .expect("metric registered once");
        Metrics {
            captures_received: counter(
                &r,
                "captures_received_total",
                "Capture events received",
                &[],
            ),
            captures_classified: counter(
                &r,
                "captures_classified_total",
                "Captures decided",
                &["grade"],
            ),
            captures_dead_lettered: counter(
                &r,
                "captures_dead_lettered_total",
                "Captures dead-lettered",
                &["reason"],
            ),
            captures_retried: counter(
                &r,
                "captures_retried_total",
                "Transient failures left for redelivery",
                &["reason"],
            ),
            captures_duplicate: counter(
                &r,
                "captures_duplicate_total",
                "Redeliveries acknowledged without a new decision",
                &[],
            ),
            batch_size: histogram(&r, "batch_size", "Images per inference batch", &[], sizes),
            stage_seconds: histogram(
                &r,
                "stage_seconds",
                "Seconds per pipeline stage",
                &["stage"],
                secs.clone(),
            ),
            model_inference_seconds: histogram(
                &r,
                "model_inference_seconds",
                "Inference seconds per model and batch",
                &["model"],
                secs,
            ),
            plates_qc: counter(
                &r,
                "plates_qc_total",
                "Plates whose QC settled: passed, failed, or missing controls",
                &["state"],
            ),
            decisions_flagged: counter(
                &r,
                "decisions_flagged_total",
                "Decisions carrying a flag",
                &["flag"],
            ),
            model_pair_disagreements: counter(
                &r,
                "model_pair_disagreements_total",
                "Decisions where a model pair voted differently",
                &["model_a", "model_b"],
            ),
            execution_provider: provider,
            reviews: counter(&r, "reviews_total", "Reviews recorded", &["overridden"]),
            hl7_sent: counter(&r, "hl7_sent_total", "HL7 messages sent", &["profile"]),
            hl7_acked: counter(&r, "hl7_acked_total", "HL7 messages acknowledged", &[]),
            hl7_failed: counter(&r, "hl7_failed_total", "HL7 messages failed", &["reason"]),
            hl7_retried: counter(&r, "hl7_retried_total", "HL7 resends", &["reason"]),
            outbox_depth: gauge(&r, "outbox_depth", "HL7 messages pending"),
            outbox_oldest_pending_seconds: gauge(
                &r,
                "outbox_oldest_pending_seconds",
                "Age of the oldest pending HL7 message",
            ),
            broker_connected: gauge(
                &r,
                "broker_connected",
                "1 while the broker connection is up",
            ),
            drift: drift::Drift::new(&r),
            registry: r,
        }
    }

    /// Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}
