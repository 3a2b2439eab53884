//! MLLP over TLS: the server certificate is verified against `lis.tls_ca_file` and the name in
//! `lis.tls_server_name`. The kit's PKI makes the certificates per test.

use crate::common::*;
use iari::deliver::{Sender, Step};
use iari_kit::pki::Pki;

#[tokio::test]
async fn delivers_over_tls_only_to_a_verified_server() {
    let pki = Pki::for_names(&["DNS:lis.test"]);
    let lis = FakeLis::start_tls(vec![], pki.acceptor()).await;
    let pool = fresh_db().await;
    seed_decision(&pool, "CAP-1", "neg", ["neg"; 5], false).await;
    let id = messages(&pool).await[0].id;

    // Wrong name: the certificate does not verify, nothing reaches the LIS, the message waits.
    let mut settings = lis_settings(&lis.addr);
    settings.tls = true;
    settings.tls_ca_file = pki.ca().display().to_string();
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
