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
    assert_eq!(
        (s.http.db_pool_size, s.http.statement_timeout_ms),
        (4, 5000),
        "the HTTP server's pool is small and its statements bounded"
    );
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
            ("IARI__WORKSTATION__IDLE_TIMEOUT_S", "60"),
            ("IARI__INFERENCE__DEVICE", "cpu"),
        ]),
    )
    .unwrap();
    assert_eq!(s.amqp.queue, "q.test");
    assert_eq!(s.lis.transport, LisTransport::Mllp);
    assert_eq!(s.http.addr.port(), 9000);
    assert_eq!(s.workstation.idle_timeout_s, 60);
    assert_eq!(s.inference.device, Device::Cpu);
}

#[test]
fn bad_values_name_the_key() {
    let cases = [
        ("IARI__INFERENCE__DEVICE", "tpu", "device"),
        ("IARI__DECISION__QUORUM", "9", "decision.quorum"),
        ("IARI__AMQP__PREFETCH", "4096", "amqp.prefetch"),
        ("IARI__DRIFT__WINDOW", "3", "drift.window"),
        ("IARI__LIS__PROFILE", "adt", "profile"),
        ("IARI__DATABASE__URL", "mysql://x", "database.url"),
        ("IARI__HTTP__ADDR", "nowhere", "http.addr"),
        ("IARI__HTTP__DB_POOL_SIZE", "0", "http.db_pool_size"),
        // 0 would turn PostgreSQL's statement timeout off.
        (
            "IARI__HTTP__STATEMENT_TIMEOUT_MS",
            "0",
            "http.statement_timeout_ms",
        ),
        (
            "IARI__HTTP__REQUEST_TIMEOUT_MS",
            "5",
            "http.request_timeout_ms",
        ),
        (
            "IARI__HTTP__MAX_CONCURRENT_REQUESTS",
            "0",
            "http.max_concurrent_requests",
        ),
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
        env(&[(
            "IARI__DATABASE__URL",
            "postgres://u:hunter2@db/iari?password=hunter3",
        )]),
    )
    .unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("hunter3"), "{shown}");
    assert!(!shown.contains("guest:guest"), "{shown}");
    assert_eq!(
        s.database.url.redacted(),
        "postgres://u:***@db/iari?password=***"
    );
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

#[test]
fn lis_site_vocabulary_loads_from_a_file_and_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.toml");
    std::fs::write(
        &site,
        r#"
[lis]
timezone = "America/New_York"
detail = "summary"
unreviewed_status = "R"
max_attempts = 4

[[lis.results]]
test_code = "ABSCR"
cell = "I"
code = "ABSCR1"
name = "Antibody screen, cell I"
loinc = "12345-6"
loinc_name = "Made-up LOINC name (synthetic)"

[[lis.results]]
test_code = "DAT"
code = "DAT"
name = "Direct antiglobulin test"

[lis.grades]
"2+" = { code = "2+", text = "2+ weak adherence" }
"#,
    )
    .unwrap();
    let s = Settings::load_from(Some(&site), env(&[])).unwrap();
    assert_eq!(s.lis.timezone, chrono_tz::Tz::America__New_York);
    assert_eq!(s.lis.detail, LisDetail::Summary);
    assert_eq!(s.lis.unreviewed_status, UnreviewedStatus::R);
    assert_eq!(s.lis.retract_status, WithdrawStatus::W);
    assert_eq!(s.lis.max_attempts, 4);
    let row = s.lis.result_code("ABSCR", Some("I")).unwrap();
    assert_eq!(
        (row.code.as_str(), row.loinc.as_str()),
        ("ABSCR1", "12345-6")
    );
    assert!(s.lis.result_code("ABSCR", Some("II")).is_none());
    assert_eq!(s.lis.result_code("DAT", None).unwrap().code, "DAT");
    use crate::domain::Grade;
    assert_eq!(s.lis.grades.get(Grade::P2).text, "2+ weak adherence");
    assert_eq!(
        s.lis.grades.get(Grade::P3).text,
        "3+ adherence",
        "defaults stay"
    );
    assert_eq!(s.lis.grades.get(Grade::Neg).code, "NEG");
}

#[test]
fn bad_lis_site_values_name_the_key() {
    let cases = [
        ("IARI__LIS__TIMEZONE", "Mars/Olympus", "timezone"),
        ("IARI__LIS__DETAIL", "verbose", "detail"),
        ("IARI__LIS__UNREVIEWED_STATUS", "F", "unreviewed_status"),
        ("IARI__LIS__MAX_ATTEMPTS", "0", "lis.max_attempts"),
        (
            "IARI__LIS__TLS_CLIENT_CERT_FILE",
            "/x/cert.pem",
            "lis.tls_client_cert_file",
        ),
        ("IARI__LIS__WRITE_TIMEOUT_MS", "0", "lis.write_timeout_ms"),
    ];
    for (k, v, needle) in cases {
        let e = Settings::load_from(None, env(&[(k, v)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{k}={v}: {e}");
    }
    let dir = tempfile::tempdir().unwrap();
    for (body, needle) in [
        (
            "[lis.grades]\n\"1+\" = { code = \"NEG\", text = \"x\" }\n",
            "used for two grades",
        ),
        (
            "[[lis.results]]\ntest_code = \"A\"\ncell = \"I\"\ncode = \"A1\"\nname = \"n\"\n\
             [[lis.results]]\ntest_code = \"A\"\ncell = \"I\"\ncode = \"A2\"\nname = \"n\"\n",
            "a second row",
        ),
        (
            "[[lis.results]]\ntest_code = \"A\"\ncode = \"A^1\"\nname = \"n\"\n",
            "lis.results",
        ),
    ] {
        let f = dir.path().join("bad.toml");
        std::fs::write(&f, body).unwrap();
        let e = Settings::load_from(Some(&f), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{body}: {e}");
    }
}
