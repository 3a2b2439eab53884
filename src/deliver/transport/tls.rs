//! TLS client set-up for the MLLP transport: rustls with the ring provider, the server
//! certificate verified against `lis.tls_ca_file` (PEM) or the webpki roots, and the name from
//! `lis.tls_server_name` or the host part of `lis.addr`.

use super::SetupError;
use crate::config::LisSettings;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;

pub(super) fn connector(
    lis: &LisSettings,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    if lis.tls_ca_file.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        let certs = CertificateDer::pem_file_iter(&lis.tls_ca_file)
            .map_err(|e| SetupError(format!("lis.tls_ca_file {}: {e}", lis.tls_ca_file)))?;
        for cert in certs {
            let cert = cert.map_err(|e| SetupError(format!("lis.tls_ca_file: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| SetupError(format!("lis.tls_ca_file: {e}")))?;
        }
        if roots.is_empty() {
            return Err(SetupError(format!(
                "lis.tls_ca_file {}: no certificates",
                lis.tls_ca_file
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = server_name(lis)?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

fn server_name(lis: &LisSettings) -> Result<ServerName<'static>, SetupError> {
    let name = if lis.tls_server_name.is_empty() {
        let host = lis
            .addr
            .rsplit_once(':')
            .map_or(lis.addr.as_str(), |(h, _)| h);
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    } else {
        lis.tls_server_name.clone()
    };
    ServerName::try_from(name.clone())
        .map_err(|e| SetupError(format!("TLS server name {name:?}: {e}")))
}
