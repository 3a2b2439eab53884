//! One test PKI: a certificate authority and a server certificate signed by it, made with the
//! openssl command line in a temporary directory, for every test that speaks TLS (the fake LIS,
//! private PostgreSQL and RabbitMQ instances, a CA that signed nothing the server shows).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// `ca.pem` (with `ca.key`), and `server.pem` / `server.key` for the names given.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Pki {
    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn new() -> Pki {
        Pki::for_names(&["DNS:localhost", "IP:127.0.0.1"])
    }

    /// A server certificate for `names` (subjectAltName entries: `DNS:lis.test`, `IP:…`); the
    /// first name is also its common name.
    pub fn for_names(names: &[&str]) -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let cn = names
            .first()
            .and_then(|n| n.split_once(':'))
            .map_or("localhost", |(_, v)| v);
        let subject = format!("/CN={cn}");
        let dir_path = dir.path();
        let ca = format!("req -x509 {EC_KEY} -keyout ca.key -out ca.pem -days 2");
        openssl(dir_path, &ca, &["-subj", "/CN=IARI test CA"]);
        let csr = format!("req {EC_KEY} -keyout server.key -out server.csr");
        openssl(dir_path, &csr, &["-subj", &subject]);
        let ext = format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
             extendedKeyUsage=serverAuth\n",
            names.join(",")
        );
        std::fs::write(dir_path.join("server.ext"), ext).expect("write server.ext");
        let sign = "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                    -extfile server.ext -out server.pem";
        openssl(dir_path, sign, &[]);
        // Servers that run as another user (PostgreSQL as `postgres`) must read them; a server
        // that needs its key private copies it (see `instances::Postgres`).
        for f in ["ca.pem", "server.pem", "server.key"] {
            let path = dir.path().join(f);
            let mut perms = std::fs::metadata(&path).expect("stat").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
            std::fs::set_permissions(&path, perms).expect("chmod");
        }
        Pki { dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// A TLS acceptor serving the server certificate (rustls with ring, as the product uses).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(self.cert())
            .expect("server.pem")
            .collect::<Result<_, _>>()
            .expect("certificates in server.pem");
        let key = PrivateKeyDer::from_pem_file(self.key()).expect("server.key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate and key");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

/// P-256 keys, unencrypted.
const EC_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";

/// Runs `openssl` in `dir` with the words of `args` and then `more` (arguments with spaces).
fn openssl(dir: &Path, args: &str, more: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args.split_whitespace())
        .args(more)
        .output()
        .expect("openssl on PATH");
    assert!(
        out.status.success(),
        "openssl {args} {more:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
