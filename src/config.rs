//! The one configuration tree: built-in defaults, then a file, then `IARI__SECTION__KEY`
//! environment variables; validated at start-up with errors that name the key.

use crate::domain::PlateFormat;
use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod lis;
mod qc;
mod secret;
#[cfg(test)]
mod tests;
mod validate;

pub use lis::{GradeWord, GradeWords, LisDetail, ResultCode, UnreviewedStatus, WithdrawStatus};
pub use qc::{QcMode, QcSettings};
pub use secret::{SecretToken, SecretUrl, redact_url};
pub use validate::parse_ca_pem;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Load(#[from] config::ConfigError),
    #[error("config: {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub log: LogSettings,
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub images: ImageSettings,
    pub plate: PlateFormat,
    pub models: ModelSettings,
    pub inference: InferenceSettings,
    pub decision: DecisionSettings,
    pub drift: DriftSettings,
    pub qc: QcSettings,
    pub worker: WorkerSettings,
    pub lis: LisSettings,
    pub http: HttpSettings,
    pub workstation: WorkstationSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretUrl,
    pub max_connections: u32,
    pub acquire_timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    pub url: SecretUrl,
    /// Extra CA (PEM) trusted for `amqps://`; empty: the system roots only.
    pub tls_ca_file: String,
    pub exchange: String,
    pub routing_key: String,
    pub queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub delivery_limit: u32,
    pub prefetch: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSettings {
    pub root: PathBuf,
    pub max_bytes: u64,
    pub max_width: u32,
    pub max_height: u32,
    pub decode_budget_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    pub manifest: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Auto,
    Cpu,
    Cuda,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Auto => "auto",
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceSettings {
    pub device: Device,
    pub ort_library: PathBuf,
    /// SHA-256 the library must have when it is not one of the pinned builds (a lab's own
    /// build); empty: only the pinned builds load.
    #[serde(default)]
    pub ort_library_sha256: String,
    pub batch_size: usize,
    pub intra_threads: usize,
    pub cuda_device_id: i32,
    /// TF32 tensor-core maths in CUDA convolutions and matrix products.
    pub cuda_tf32: bool,
    /// On CUDA, copy each batch to the GPU once and let all five sessions read that copy.
    pub cuda_shared_input: bool,
    /// How cuDNN picks each convolution's algorithm on CUDA.
    pub cuda_conv_search: ConvSearch,
}

/// cuDNN's choice of convolution algorithm: `exhaustive` times every algorithm once per input
/// shape (a stall at each new batch size), `heuristic` asks cuDNN's heuristics, `default`
/// always takes the implicit-precomputed GEMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvSearch {
    Exhaustive,
    Heuristic,
    Default,
}

impl InferenceSettings {
    /// The runtime library to load: `ORT_DYLIB_PATH` when set, else `inference.ort_library`.
    pub fn ort_library_path(&self) -> PathBuf {
        match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => self.ort_library.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionSettings {
    pub quorum: usize,
    pub low_confidence_threshold: f32,
    pub review_min_agreement: f32,
}

/// How `/metrics` follows the shift score across captures (`metrics::drift`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftSettings {
    pub window: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub batch_wait_ms: u64,
    pub shutdown_grace_s: u64,
    pub reconnect_initial_s: u64,
    pub reconnect_max_s: u64,
    pub retry_delay_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LisTransport {
    Mllp,
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LisProfile {
    OruR01,
    OulR22,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LisSettings {
    pub transport: LisTransport,
    pub addr: String,
    pub dir: PathBuf,
    pub profile: LisProfile,
    pub sending_application: String,
    pub sending_facility: String,
    pub receiving_application: String,
    pub receiving_facility: String,
    pub processing_id: String,
    pub local_coding_system: String,
    pub test_code: String,
    pub test_name: String,
    pub loinc_code: String,
    pub loinc_name: String,
    pub assigning_authority: String,
    pub placer_namespace: String,
    pub method_code: String,
    pub method_text: String,
    pub specimen_type_code: String,
    pub specimen_type_text: String,
    pub specimen_type_system: String,
    pub connect_timeout_ms: u64,
    pub ack_timeout_ms: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub send_batch: u32,
    pub max_frame_bytes: usize,
    pub tls: bool,
    pub tls_ca_file: String,
    pub tls_server_name: String,
    /// PEM client certificate chain and key for LISs that ask for mutual TLS; empty: none.
    pub tls_client_cert_file: String,
    pub tls_client_key_file: String,
    /// Longest a frame may take to write before the connection counts as dropped.
    pub write_timeout_ms: u64,
    /// After a commit ACK (CA), how long to wait for the application ACK.
    pub app_ack_timeout_ms: u64,
    /// Sends of one message that the LIS refused or left unanswered before it is parked.
    pub max_attempts: u32,
    /// The site's time zone (IANA name) for every HL7 timestamp.
    pub timezone: chrono_tz::Tz,
    pub detail: LisDetail,
    pub unreviewed_status: UnreviewedStatus,
    pub retract_status: WithdrawStatus,
    /// `qc.withdraw_status`, copied here at load: the HL7 builder reads only `lis`.
    #[serde(skip)]
    pub qc_withdraw_status: WithdrawStatus,
    pub grades: GradeWords,
    /// (test code, screening cell) → OBX-3 result code, name and LOINC.
    pub results: Vec<ResultCode>,
}

/// The HTTP server: where it listens, and the bounds that keep its readers from starving the
/// worker's decision commits (`store::http_pool`, `http::limits`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub addr: SocketAddr,
    /// Connections of the HTTP server's own database pool.
    pub db_pool_size: u32,
    /// PostgreSQL `statement_timeout` of that pool's connections.
    pub statement_timeout_ms: u64,
    /// Longest a request may take before it is answered 503.
    pub request_timeout_ms: u64,
    /// Requests served at once; one more is answered 503 at once.
    pub max_concurrent_requests: u32,
}

/// `iari serve`: sessions, lock-out, and the signature reasons (docs/workstation.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkstationSettings {
    pub idle_timeout_s: u32,
    pub absolute_timeout_s: u32,
    pub lockout_failures: u32,
    pub lockout_s: u32,
    pub secure_cookies: bool,
    pub worklist_refresh_ms: u32,
    pub page_size: u32,
    /// Reason code → words, in code order.
    pub reasons: std::collections::BTreeMap<String, String>,
}
impl Settings {
    /// Loads defaults, then `file` (if any), then `IARI__…` variables from the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_from(file, None)
    }

    /// Like [`Settings::load`], with an explicit environment (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
        let env_source = Environment::with_prefix("IARI")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(env);
        let mut settings: Settings = builder.add_source(env_source).build()?.try_deserialize()?;
        settings.lis.qc_withdraw_status = settings.qc.withdraw_status;
        settings.validate()?;
        Ok(settings)
    }
}
