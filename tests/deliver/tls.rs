//! MLLP over TLS: the server certificate is verified against `lis.tls_ca_file` and the name in
//! `lis.tls_server_name`; an LIS that asks for mutual TLS gets our client certificate
//! (`lis.tls_client_cert_file`, `lis.tls_client_key_file`). Certificates are made per test with
//! the openssl command line.

use crate::common::*;
use iari::deliver::{Sender, Step};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl on PATH");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for `lis.test` signed by it.
fn make_pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=IARI test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "srv.key",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=lis.test",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("srv.ext"),
        "subjectAltName=DNS:lis.test\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "srv.ext",
        ],
    );
}

/// A client certificate for `iari` signed by the same CA.
fn make_client_cert(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "cli.key",
            "-out",
            "cli.csr",
            "-subj",
            "/CN=iari",
        ],
    );
    std::fs::write(
        dir.join("cli.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "cli.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cli.pem",
            "-days",
            "2",
            "-extfile",
            "cli.ext",
        ],
    );
}

/// A server that requires a client certificate signed by the test CA.
fn mutual_acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(dir.join("srv.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("srv.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

fn acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(dir.join("srv.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("srv.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn delivers_over_tls_only_to_a_verified_server() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let lis = FakeLis::start_tls(vec![], acceptor(dir.path())).await;
    let pool = fresh_db().await;
    seed_decision(&pool, "CAP-1", "neg", ["neg"; 5], false).await;
    let id = messages(&pool).await[0].id;

    // Wrong name: the certificate does not verify, nothing reaches the LIS, the message waits.
    let mut settings = lis_settings(&lis.addr);
    settings.tls = true;
    settings.tls_ca_file = dir.path().join("ca.pem").display().to_string();
    settings.tls_server_name = "other.test".into();
    let mut wrong = Sender::new(pool.clone(), &settings).unwrap();
    assert!(matches!(
        wrong.step().await.unwrap(),
        Step::Retrying { reason: "io", .. }
    ));
    assert!(lis.received().is_empty());
    let err = messages(&pool).await[0].last_error.clone().unwrap();
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");

    settings.tls_server_name = "lis.test".into();
    let mut right = Sender::new(pool.clone(), &settings).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(right.step().await.unwrap(), Step::Delivered { id });
    assert_eq!(lis.received().len(), 1);
}

#[tokio::test]
async fn mutual_tls_sends_our_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    make_client_cert(dir.path());
    let lis = FakeLis::start_tls(vec![], mutual_acceptor(dir.path())).await;
    let pool = fresh_db().await;
    seed_decision(&pool, "CAP-1", "neg", ["neg"; 5], false).await;
    let id = messages(&pool).await[0].id;
    let mut settings = lis_settings(&lis.addr);
    settings.tls = true;
    settings.tls_ca_file = dir.path().join("ca.pem").display().to_string();
    settings.tls_server_name = "lis.test".into();
    // No client certificate: the LIS ends the handshake; nothing reaches it, the message waits.
    let mut without = Sender::new(pool.clone(), &settings).unwrap();
    assert!(matches!(
        without.step().await.unwrap(),
        Step::Retrying { reason: "io", .. }
    ));
    assert!(lis.received().is_empty());
    settings.tls_client_cert_file = dir.path().join("cli.pem").display().to_string();
    settings.tls_client_key_file = dir.path().join("cli.key").display().to_string();
    let mut with = Sender::new(pool.clone(), &settings).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(with.step().await.unwrap(), Step::Delivered { id });
    assert_eq!(lis.received().len(), 1);
    // A key file that is not a key is a setup error naming the key.
    settings.tls_client_key_file = dir.path().join("ca.pem").display().to_string();
    let err = Sender::new(pool.clone(), &settings)
        .err()
        .expect("setup error");
    assert!(err.to_string().contains("tls_client_key_file"), "{err}");
}

#[test]
fn a_missing_ca_file_is_a_setup_error() {
    let mut settings = lis_settings("127.0.0.1:2575");
    settings.tls = true;
    settings.tls_ca_file = "/nonexistent/ca.pem".into();
    let err = iari::deliver::transport::Transport::from_settings(&settings)
        .err()
        .expect("setup error");
    assert!(err.to_string().contains("tls_ca_file"), "{err}");
}
