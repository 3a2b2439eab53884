//! Start-up checks of what types alone cannot express: ranges, names, consistency. Each error
//! names the key at fault.

use super::{ConfigError, LisTransport, Settings, invalid};
use std::net::SocketAddr;

/// Most unacknowledged deliveries a worker may hold (`amqp.prefetch`).
pub const MAX_PREFETCH: usize = 1024;

impl Settings {
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
        // Every unacknowledged delivery is held in memory (up to images.max_bytes of inline
        // image each): the prefetch window is what bounds the worker's memory.
        if usize::from(self.amqp.prefetch) > MAX_PREFETCH {
            return Err(invalid(
                "amqp.prefetch",
                format!("must be at most {MAX_PREFETCH}"),
            ));
        }
        if self.images.max_bytes == 0 || self.images.max_width == 0 || self.images.max_height == 0 {
            return Err(invalid("images.max_bytes", "image limits must be positive"));
        }
        if self.images.decode_budget_ms == 0 {
            return Err(invalid("images.decode_budget_ms", "must be positive"));
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
        self.qc
            .check()
            .map_err(|(key, reason)| invalid(key, reason))?;
        if !(10..=100_000).contains(&self.drift.window) {
            return Err(invalid("drift.window", "must be 10-100000"));
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
        self.lis.check_site()?;
        self.validate_http()?;
        self.validate_workstation()
    }

    fn validate_http(&self) -> Result<(), ConfigError> {
        let h = &self.http;
        if !(1..=100).contains(&h.db_pool_size) {
            return Err(invalid("http.db_pool_size", "must be 1-100"));
        }
        // 0 would switch PostgreSQL's timeout off, which is what this key exists to prevent.
        if !(100..=3_600_000).contains(&h.statement_timeout_ms) {
            return Err(invalid(
                "http.statement_timeout_ms",
                "must be 100-3600000 (0.1 s to 1 h)",
            ));
        }
        if !(100..=3_600_000).contains(&h.request_timeout_ms) {
            return Err(invalid(
                "http.request_timeout_ms",
                "must be 100-3600000 (0.1 s to 1 h)",
            ));
        }
        if !(1..=10_000).contains(&h.max_concurrent_requests) {
            return Err(invalid("http.max_concurrent_requests", "must be 1-10000"));
        }
        Ok(())
    }

    fn validate_workstation(&self) -> Result<(), ConfigError> {
        let w = &self.workstation;
        if w.idle_timeout_s == 0 {
            return Err(invalid("workstation.idle_timeout_s", "must be positive"));
        }
        if w.absolute_timeout_s < w.idle_timeout_s {
            return Err(invalid(
                "workstation.absolute_timeout_s",
                "must be at least workstation.idle_timeout_s",
            ));
        }
        if w.lockout_failures == 0 || w.lockout_s == 0 {
            return Err(invalid(
                "workstation.lockout_failures",
                "lock-out failures and seconds must be positive",
            ));
        }
        if !(250..=5000).contains(&w.worklist_refresh_ms) {
            return Err(invalid(
                "workstation.worklist_refresh_ms",
                "must be 250-5000 (a new decision shows within 5 s)",
            ));
        }
        if !(1..=1000).contains(&w.page_size) {
            return Err(invalid("workstation.page_size", "must be 1-1000"));
        }
        if w.reasons.is_empty() {
            return Err(invalid("workstation.reasons", "needs at least one code"));
        }
        for (code, words) in &w.reasons {
            let ok = !code.is_empty()
                && code.len() <= 40
                && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok || words.trim().is_empty() {
                return Err(invalid(
                    "workstation.reasons",
                    format!("{code:?}: codes are 1-40 of a-z, 0-9, _ with words"),
                ));
            }
        }
        Ok(())
    }
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
