//! Provenance stored with each decision: the ensemble, runtime and worker identity shared by a
//! batch, per-image stage timings, and each sub-model's answer as JSON.

use crate::domain::{Classification, ModelAnswer};
use serde::Serialize;
use serde_json::{Value, json};

/// What the whole batch shares: the ensemble, the runtime and this worker.
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub ensemble_name: String,
    pub ensemble_version: String,
    /// `{onnxruntime_version, provider, requested, fallback_reason, preprocessing}`, and
    /// `shift: {version, reference_sha256, threshold}` when the manifest has a shift reference.
    pub runtime: Value,
    /// `{version, build, host, pid}`
    pub worker: Value,
}

/// `{version, build, host, pid}` of this process.
pub fn worker_identity() -> Value {
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "build": option_env!("IARI_BUILD").unwrap_or(env!("CARGO_PKG_VERSION")),
        "host": host,
        "pid": std::process::id(),
    })
}

/// Stage timings in milliseconds and the size of the batch the image was classified in.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    pub decode_ms: f64,
    pub preprocess_ms: f64,
    pub inference_ms: f64,
    pub queue_ms: f64,
    pub batch_size: usize,
}

/// `[{name, version, sha256, status, probabilities, vote, error}]` in manifest order.
pub fn models_json(c: &Classification) -> Value {
    Value::Array(
        c.models
            .iter()
            .map(|(m, answer)| match answer {
                ModelAnswer::Voted {
                    probabilities,
                    vote,
                } => json!({
                    "name": m.name, "version": m.version, "sha256": m.sha256,
                    "status": "voted", "probabilities": probabilities, "vote": vote, "error": null,
                }),
                ModelAnswer::Failed { error } => json!({
                    "name": m.name, "version": m.version, "sha256": m.sha256,
                    "status": "failed", "probabilities": null, "vote": null, "error": error,
                }),
            })
            .collect(),
    )
}
