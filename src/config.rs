//! The one configuration tree: built-in defaults, then a file, then `IARI__SECTION__KEY`
//! environment variables; validated at start-up with errors that name the key.

use crate::domain::PlateFormat;
use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    pub worker: WorkerSettings,
    pub lis: LisSettings,
    pub http: HttpSettings,
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
    pub batch_size: usize,
    pub intra_threads: usize,
    pub cuda_device_id: i32,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub addr: SocketAddr,
    pub read_tokens: Vec<SecretToken>,
    pub review_tokens: Vec<SecretToken>,
}

/// A bearer token; never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretToken(SecretString);

impl SecretToken {
    pub fn new(s: &str) -> Self {
        SecretToken(SecretString::from(s.to_string()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A connection URL whose password is redacted when shown.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    pub fn new(s: &str) -> Self {
        SecretUrl(SecretString::from(s.to_string()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with any password replaced by `***`, safe for logs.
    pub fn redacted(&self) -> String {
        redact_url(self.expose())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password of `scheme://user:password@host…` and any `password=` query value.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find('/')
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                out.replace_range(start..rest_start + at, "***");
            }
        }
    }
    if let Some(q) = out.find("password=") {
        let start = q + "password=".len();
        let end = out[start..].find('&').map_or(out.len(), |i| start + i);
        out.replace_range(start..end, "***");
    }
    out
}

/// Checks that `pem` holds at least one well-formed certificate; returns how many.
pub fn parse_ca_pem(pem: &str) -> Result<usize, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("unusable certificate: {e}"))?;
    }
    match roots.len() {
        0 => Err("no certificate in the file".into()),
        n => Ok(n),
    }
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
            .list_separator(",")
            .with_list_parse_key("http.read_tokens")
            .with_list_parse_key("http.review_tokens")
            .try_parsing(true)
            .source(env);
        let settings: Settings = builder.add_source(env_source).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot: ranges, names, consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database.url.expose();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid(
                "database.url",
                "must start with postgres:// or postgresql://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        let amqp = self.amqp.url.expose();
        if !(amqp.starts_with("amqp://") || amqp.starts_with("amqps://")) {
            return Err(invalid("amqp.url", "must start with amqp:// or amqps://"));
        }
        if !self.amqp.tls_ca_file.is_empty() {
            if !amqp.starts_with("amqps://") {
                return Err(invalid(
                    "amqp.tls_ca_file",
                    "set, but amqp.url is not amqps://",
                ));
            }
            let path = &self.amqp.tls_ca_file;
            std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|pem| parse_ca_pem(&pem))
                .map_err(|e| invalid("amqp.tls_ca_file", format!("{path}: {e}")))?;
        }
        for (key, v) in [
            ("amqp.exchange", &self.amqp.exchange),
            ("amqp.routing_key", &self.amqp.routing_key),
            ("amqp.queue", &self.amqp.queue),
            ("amqp.dead_letter_exchange", &self.amqp.dead_letter_exchange),
            ("amqp.dead_letter_queue", &self.amqp.dead_letter_queue),
        ] {
            if v.is_empty() || v.len() > 255 {
                return Err(invalid(key, "must be 1-255 characters"));
            }
        }
        if self.amqp.delivery_limit < 2 {
            return Err(invalid("amqp.delivery_limit", "must be at least 2"));
        }
        if self.inference.batch_size == 0 || self.inference.batch_size > 4096 {
            return Err(invalid("inference.batch_size", "must be 1-4096"));
        }
        if usize::from(self.amqp.prefetch) < self.inference.batch_size {
            return Err(invalid(
                "amqp.prefetch",
                "must be at least inference.batch_size",
            ));
        }
        if self.images.max_bytes == 0 || self.images.max_width == 0 || self.images.max_height == 0 {
            return Err(invalid("images.max_bytes", "image limits must be positive"));
        }
        if self.plate.rows == 0 || self.plate.rows > 26 || self.plate.columns == 0 {
            return Err(invalid(
                "plate.rows",
                "plate must have 1-26 rows and at least 1 column",
            ));
        }
        if !(1..=5).contains(&self.decision.quorum) {
            return Err(invalid("decision.quorum", "must be 1-5"));
        }
        if !(0.0..=1.0).contains(&self.decision.low_confidence_threshold) {
            return Err(invalid(
                "decision.low_confidence_threshold",
                "must be within 0..1",
            ));
        }
        if !(0.0..=1.0).contains(&self.decision.review_min_agreement) {
            return Err(invalid(
                "decision.review_min_agreement",
                "must be within 0..1",
            ));
        }
        if self.lis.transport == LisTransport::Mllp && self.lis.addr.parse::<SocketAddr>().is_err()
        {
            let ok = self
                .lis
                .addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
            if !ok {
                return Err(invalid("lis.addr", "must be host:port"));
            }
        }
        let lcs = &self.lis.local_coding_system;
        if !(lcs.starts_with("99") && (3..=5).contains(&lcs.len())) {
            return Err(invalid(
                "lis.local_coding_system",
                "must be 99 plus 1-3 characters",
            ));
        }
        if !matches!(self.lis.processing_id.as_str(), "P" | "T" | "D") {
            return Err(invalid("lis.processing_id", "must be P, T or D"));
        }
        if self.lis.ack_timeout_ms == 0 || self.lis.connect_timeout_ms == 0 {
            return Err(invalid("lis.ack_timeout_ms", "timeouts must be positive"));
        }
        if self.lis.send_batch == 0 {
            return Err(invalid("lis.send_batch", "must be at least 1"));
        }
        if self.lis.backoff_initial_ms == 0 || self.lis.backoff_max_ms < self.lis.backoff_initial_ms
        {
            return Err(invalid(
                "lis.backoff_max_ms",
                "must be >= lis.backoff_initial_ms > 0",
            ));
        }
        if self.lis.max_frame_bytes < 1024 {
            return Err(invalid("lis.max_frame_bytes", "must be at least 1024"));
        }
        for (key, v) in [
            ("lis.sending_application", &self.lis.sending_application),
            ("lis.sending_facility", &self.lis.sending_facility),
            ("lis.receiving_application", &self.lis.receiving_application),
            ("lis.receiving_facility", &self.lis.receiving_facility),
            ("lis.test_code", &self.lis.test_code),
        ] {
            if v.is_empty() || v.contains(['|', '^', '~', '\\', '&', '\r', '\n']) {
                return Err(invalid(key, "must be non-empty with no HL7 delimiter"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_load_and_validate() {
        let s = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(s.amqp.queue, "iari.captures");
        assert_eq!(s.inference.device, Device::Auto);
        assert_eq!(s.lis.profile, LisProfile::OruR01);
        assert_eq!(
            s.plate,
            PlateFormat {
                rows: 8,
                columns: 12
            }
        );
    }

    #[test]
    fn environment_overrides_file_and_defaults() {
        let s = Settings::load_from(
            None,
            env(&[
                ("IARI__AMQP__QUEUE", "q.test"),
                ("IARI__LIS__TRANSPORT", "mllp"),
                ("IARI__LIS__ADDR", "lis.example:2575"),
                ("IARI__HTTP__ADDR", "0.0.0.0:9000"),
                ("IARI__HTTP__READ_TOKENS", "a,b"),
                ("IARI__INFERENCE__DEVICE", "cpu"),
            ]),
        )
        .unwrap();
        assert_eq!(s.amqp.queue, "q.test");
        assert_eq!(s.lis.transport, LisTransport::Mllp);
        assert_eq!(s.http.addr.port(), 9000);
        assert_eq!(s.http.read_tokens.len(), 2);
        assert_eq!(s.inference.device, Device::Cpu);
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("IARI__INFERENCE__DEVICE", "tpu", "device"),
            ("IARI__DECISION__QUORUM", "9", "decision.quorum"),
            ("IARI__LIS__PROFILE", "adt", "profile"),
            ("IARI__DATABASE__URL", "mysql://x", "database.url"),
            ("IARI__HTTP__ADDR", "nowhere", "http.addr"),
            ("IARI__AMQP__NO_SUCH_KEY", "1", "no_such_key"),
        ];
        for (k, v, needle) in cases {
            let e = Settings::load_from(None, env(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{k}={v}: {e}");
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Settings::load_from(
            None,
            env(&[
                (
                    "IARI__DATABASE__URL",
                    "postgres://u:hunter2@db/iari?password=hunter3",
                ),
                ("IARI__HTTP__REVIEW_TOKENS", "tok-secret"),
            ]),
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("hunter3"), "{shown}");
        assert!(!shown.contains("tok-secret"), "{shown}");
        assert!(!shown.contains("guest:guest"), "{shown}");
        assert_eq!(
            s.database.url.redacted(),
            "postgres://u:***@db/iari?password=***"
        );
        assert_eq!(s.http.review_tokens[0].expose(), "tok-secret");
    }

    #[test]
    fn amqp_tls_ca_file_must_exist_hold_certificates_and_go_with_amqps() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let missing = dir.path().join("missing.pem");
        let amqps = "amqps://u:p@broker:5671/%2f";
        for (url, file, needle) in [
            (amqps, &missing, "missing.pem"),
            (amqps, &garbage, "no certificate"),
            ("amqp://u:p@broker:5672/%2f", &garbage, "not amqps://"),
        ] {
            let e = Settings::load_from(
                None,
                env(&[
                    ("IARI__AMQP__URL", url),
                    ("IARI__AMQP__TLS_CA_FILE", file.to_str().unwrap()),
                ]),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("amqp.tls_ca_file") && e.contains(needle), "{e}");
        }
        let s = Settings::load_from(None, env(&[("IARI__AMQP__URL", amqps)])).unwrap();
        assert_eq!(s.amqp.tls_ca_file, "");
    }

    #[test]
    fn redact_leaves_passwordless_urls_alone() {
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(
            redact_url("amqp://a:b@h:5672/%2f"),
            "amqp://a:***@h:5672/%2f"
        );
    }
}
