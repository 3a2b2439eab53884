//! `iari worker` as a process against private TLS instances, with passwords in both URLs: a CA
//! that did not sign the server's certificate stops start-up with a one-line error naming the
//! service (for the database and for the broker), wrong broker credentials too, and neither the
//! errors nor the logs of a good start ever show a password.

use crate::harness::SAMPLES;
use crate::tls::TlsServices;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PG_PASSWORD: &str = "pg-Secret-7f3a";
const MQ_PASSWORD: &str = "mq-Secret-91bd";

/// A worker process with the test's configuration in its environment; logs at debug level so
/// that third-party crates' connection chatter is checked too.
fn worker(env: &[(&str, String)], lis_dir: &std::path::Path) -> Child {
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/onnx/models/manifest.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iari"));
    cmd.arg("worker")
        .env("RUST_LOG", "debug")
        .env("IARI__MODELS__MANIFEST", models)
        .env("IARI__INFERENCE__DEVICE", "cpu")
        .env("IARI__IMAGES__ROOT", SAMPLES)
        .env("IARI__HTTP__ADDR", "127.0.0.1:0")
        .env("IARI__LIS__DIR", lis_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("iari worker")
}

/// Reads the process's stdout and stderr lines as they come.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .for_each(|l| drop(tx.send(l)))
    });
    std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .for_each(|l| drop(tx2.send(l)))
    });
    rx
}

/// Runs a worker that must refuse to start; returns its exit code and everything it printed.
fn failed_start(env: &[(&str, String)], lis_dir: &std::path::Path) -> (i32, String) {
    let mut child = worker(env, lis_dir);
    let rx = lines(&mut child);
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "worker still running after 180 s: {:?}",
                rx.try_iter().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // The reader threads end with the pipes; give them the last lines.
    std::thread::sleep(Duration::from_millis(200));
    (
        status.code().unwrap_or(-1),
        rx.try_iter().collect::<Vec<_>>().join("\n"),
    )
}

fn assert_no_secret(output: &str) {
    for secret in [PG_PASSWORD, MQ_PASSWORD] {
        assert!(!output.contains(secret), "password shown:\n{output}");
    }
    assert!(!output.contains("panicked"), "{output}");
}

#[test]
fn untrusted_ca_and_refused_login_stop_start_up_without_showing_passwords() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let services = rt.block_on(TlsServices::start());
    let other = iari_kit::pki::Pki::new();
    let lis_dir = tempfile::tempdir().unwrap();
    services.rmq.ctl(&["add_user", "iari_app", MQ_PASSWORD]);
    services
        .rmq
        .ctl(&["set_permissions", "-p", "/", "iari_app", ".*", ".*", ".*"]);
    // The private cluster trusts every login, so this password is never checked, but the URL
    // carries it and it must still be redacted everywhere.
    rt.block_on(async {
        let admin = services.pg_url("postgres", "postgres", &services.pki.ca());
        let pool = sqlx::PgPool::connect(&admin).await.unwrap();
        let sql =
            format!("CREATE ROLE iari_app LOGIN CREATEDB CREATEROLE PASSWORD '{PG_PASSWORD}'");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let ca = services.pki.ca();
    let pg_user = format!("iari_app:{PG_PASSWORD}");
    let mq_user = format!("iari_app:{MQ_PASSWORD}");
    let queue = format!("tls.cli.{}", uuid::Uuid::new_v4().simple());
    let env = |db_ca: &std::path::Path, mq_ca: &std::path::Path, mq_user: &str| {
        vec![
            (
                "IARI__DATABASE__URL",
                services.pg_url(&pg_user, "iari_tls_cli", db_ca),
            ),
            ("IARI__AMQP__URL", services.amqps_url(mq_user)),
            ("IARI__AMQP__TLS_CA_FILE", mq_ca.display().to_string()),
            ("IARI__AMQP__QUEUE", queue.clone()),
        ]
    };

    // The owner creates the database and its schema over verify-full TLS, as an operator would
    // before starting workers (which never migrate).
    let out = Command::new(env!("CARGO_BIN_EXE_iari"))
        .arg("migrate")
        .envs(env(&ca, &ca, &mq_user))
        .output()
        .expect("iari migrate");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("migrations applied"), "{text}");
    assert_no_secret(&text);

    // The database's certificate is not signed by the CA in `sslrootcert`.
    let (code, out) = failed_start(&env(&other.ca(), &ca, &mq_user), lis_dir.path());
    assert_refused(code, &out, &["database", "certificate"]);

    // The broker's certificate is not signed by `amqp.tls_ca_file` (nor by a system root).
    let (code, out) = failed_start(&env(&ca, &other.ca(), &mq_user), lis_dir.path());
    assert_refused(code, &out, &["broker", "certificate"]);

    // TLS is fine but the broker refuses the password.
    let wrong = format!("iari_app:{MQ_PASSWORD}-wrong");
    let (code, out) = failed_start(&env(&ca, &ca, &wrong), lis_dir.path());
    assert_refused(code, &out, &["broker", "ACCESS"]);

    // Everything right: the worker starts and consumes; its logs (debug level) show no password.
    let mut child = worker(&env(&ca, &ca, &mq_user), lis_dir.path());
    let rx = lines(&mut child);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !seen.iter().any(|l: &String| l.contains("consuming")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => {
                let _ = child.kill();
                panic!("worker not consuming after 180 s:\n{}", seen.join("\n"));
            }
        }
    }
    let pid = child.id().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    seen.extend(rx.try_iter());
    let out = seen.join("\n");
    assert!(status.success(), "{out}");
    assert_no_secret(&out);
    drop(other);
    drop(services);
}

/// A start-up that must fail: exit code 1 (an error, not a panic's 101), a last `iari: ` line
/// naming every one of `words` and showing the URL with its password redacted, and no secret
/// anywhere in the output.
fn assert_refused(code: i32, out: &str, words: &[&str]) {
    assert_eq!(code, 1, "an error exit, not a panic (101): {out}");
    let last = out
        .lines()
        .rfind(|l| l.starts_with("iari: "))
        .unwrap_or_default();
    eprintln!("{last}");
    assert!(words.iter().all(|w| last.contains(w)), "{words:?}: {out}");
    assert!(
        last.contains("iari_app:***@"),
        "URL not shown redacted: {out}"
    );
    assert_no_secret(out);
}
