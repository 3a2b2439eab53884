//! TLS client set-up for the MLLP transport: rustls with the ring provider, the server
//! certificate verified against `lis.tls_ca_file` (PEM) or the webpki roots, the name from
//! `lis.tls_server_name` or the host part of `lis.addr`, and for an LIS that asks for mutual TLS
//! our client certificate chain and key (`lis.tls_client_cert_file`, `lis.tls_client_key_file`).

use super::SetupError;
use crate::config::LisSettings;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
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
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let config = if lis.tls_client_cert_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let (chain, key) = client_identity(lis)?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| SetupError(format!("lis.tls_client_key_file: {e}")))?
    };
    let name = server_name(lis)?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

/// Our certificate chain and its private key (PEM; PKCS#8, PKCS#1 or SEC1 key).
fn client_identity(
    lis: &LisSettings,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), SetupError> {
    let path = &lis.tls_client_cert_file;
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| SetupError(format!("lis.tls_client_cert_file {path}: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SetupError(format!("lis.tls_client_cert_file {path}: {e}")))?;
    if chain.is_empty() {
        return Err(SetupError(format!(
            "lis.tls_client_cert_file {path}: no certificates"
        )));
    }
    let key_path = &lis.tls_client_key_file;
    // Not the key itself in the message: only where it is and what went wrong.
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| SetupError(format!("lis.tls_client_key_file {key_path}: {e}")))?;
    Ok((chain, key))
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
