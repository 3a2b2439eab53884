//! Opening broker connections: the one place that turns `amqp.url` and `amqp.tls_ca_file` into a
//! lapin connection (worker, publish, demo all come here), and that tells a setup the broker will
//! never accept (untrusted certificate, refused credentials) from a broker that is not there yet.

use super::amqp::BrokerError;
use crate::config::AmqpSettings;
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::tcp::OwnedTLSConfig;
use lapin::{Connection, ConnectionProperties, ErrorKind};

/// Opens a connection. With `amqps://`, the server certificate is verified against the system
/// roots plus the CA in `amqp.tls_ca_file` when set (lapin's rustls with the platform verifier).
pub async fn open(
    settings: &AmqpSettings,
    props: ConnectionProperties,
) -> Result<Connection, BrokerError> {
    let tls = OwnedTLSConfig {
        identity: None,
        cert_chain: ca_pem(settings)?,
    };
    let runtime = lapin::runtime::default_runtime()?;
    Ok(Connection::connect_with_config(settings.url.expose(), props, tls, runtime).await?)
}

/// The CA file's PEM text; checked again here because the file may change after start-up.
fn ca_pem(settings: &AmqpSettings) -> Result<Option<String>, BrokerError> {
    let path = &settings.tls_ca_file;
    if path.is_empty() {
        return Ok(None);
    }
    let pem =
        std::fs::read_to_string(path).map_err(|e| BrokerError::CaFile(format!("{path}: {e}")))?;
    crate::config::parse_ca_pem(&pem).map_err(|e| BrokerError::CaFile(format!("{path}: {e}")))?;
    Ok(Some(pem))
}

const PREFLIGHT_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Connects once and closes again, so that start-up stops with a clear error when the broker
/// can never be used as configured. A broker that is merely unreachable is only logged: the
/// consumer's reconnect loop waits for it, as after any other outage.
pub async fn preflight(settings: &AmqpSettings) -> Result<(), BrokerError> {
    let props = ConnectionProperties::default().with_connection_name("iari-preflight".into());
    // A host that drops packets would hold start-up for the system's TCP timeout; past this
    // bound the broker counts as unreachable and the reconnect loop takes over.
    let Ok(opened) = tokio::time::timeout(PREFLIGHT_LIMIT, open(settings, props)).await else {
        tracing::warn!(
            limit_s = PREFLIGHT_LIMIT.as_secs(),
            "broker did not answer; the worker keeps retrying"
        );
        return Ok(());
    };
    match opened {
        Ok(conn) => {
            let _ = conn.close(200, "preflight done".into()).await;
            Ok(())
        }
        Err(e) if e.is_permanent() => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "broker not reachable yet; the worker keeps retrying");
            Ok(())
        }
    }
}

impl BrokerError {
    /// Whether retrying cannot succeed without a configuration change: the CA file is unusable,
    /// the TLS handshake failed (certificate not trusted, wrong name, not a TLS port), or the
    /// broker refused the credentials or the virtual host.
    pub fn is_permanent(&self) -> bool {
        match self {
            BrokerError::CaFile(_) => true,
            BrokerError::Lapin(e) => match e.kind() {
                ErrorKind::IOError(io) => is_tls_failure(io),
                ErrorKind::ProtocolError(p) => matches!(
                    p.kind(),
                    AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
                        | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED)
                ),
                _ => false,
            },
            _ => false,
        }
    }
}

/// Whether a rustls error lies anywhere in the chain (io errors hide their payload from
/// `source()`, hence `get_ref`).
fn is_tls_failure(e: &std::io::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = match e.get_ref() {
        Some(inner) => Some(inner),
        None => return false,
    };
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            return true;
        }
        cur = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|i| i as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}
