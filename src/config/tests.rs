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
        ("IARI__DRIFT__WINDOW", "3", "drift.window"),
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
