//! TLS to the broker and the database (issue #5) on private instances that speak TLS with a
//! test CA: a worker over `amqps://` and `sslmode=verify-full` decides a capture, and both servers
//! confirm that the worker's own connections are encrypted. The shared services are not used.

use crate::common::{event, settings};
use crate::harness::golden;
use iari::app::{App, Task};
use iari::config::Settings;
use iari::ingest::amqp::{declare_topology, publish_capture};
use iari_kit::instances::{Postgres, Rabbit};
use iari_kit::pki::Pki;
use lapin::ConnectionProperties;
use lapin::options::ConfirmSelectOptions;
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A CA with a PostgreSQL cluster and a RabbitMQ node that both serve its certificate.
pub struct TlsServices {
    pub pki: Pki,
    pub pg: Postgres,
    pub rmq: Rabbit,
}

impl TlsServices {
    /// Starts both (blocking work, off the async threads).
    pub async fn start() -> TlsServices {
        tokio::task::spawn_blocking(|| {
            let pki = Pki::new();
            let pg = Postgres::start(Some(&pki));
            let rmq = Rabbit::start(Some(&pki));
            TlsServices { pki, pg, rmq }
        })
        .await
        .unwrap()
    }

    /// `postgres://USERINFO@127.0.0.1:PORT/DB?sslmode=verify-full&sslrootcert=CA`.
    pub fn pg_url(&self, userinfo: &str, db: &str, ca: &std::path::Path) -> String {
        format!(
            "postgres://{userinfo}@127.0.0.1:{}/{db}?sslmode=verify-full&sslrootcert={}",
            self.pg.port,
            ca.display()
        )
    }

    /// `amqps://USERINFO@localhost:PORT/%2f` (the certificate names `localhost`).
    pub fn amqps_url(&self, userinfo: &str) -> String {
        let port = self.rmq.tls_port.expect("started with TLS");
        format!("amqps://{userinfo}@localhost:{port}/%2f")
    }

    /// Stops and removes both instances (blocking, off the async threads).
    pub async fn stop(self) {
        tokio::task::spawn_blocking(move || drop(self))
            .await
            .unwrap();
    }
}

fn tls_settings(s: &TlsServices, root: &str) -> Settings {
    let prefix = format!("tls.{}", uuid::Uuid::new_v4().simple());
    let db = s.pg_url("postgres", "iari_tls", &s.pki.ca());
    let amqp = s.amqps_url("guest:guest");
    let ca = s.pki.ca().display().to_string();
    settings(
        &db,
        &prefix,
        &[
            ("IARI__AMQP__URL", &amqp),
            ("IARI__AMQP__TLS_CA_FILE", &ca),
            ("IARI__IMAGES__ROOT", root),
            ("IARI__HTTP__ADDR", "127.0.0.1:0"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_over_amqps_and_verify_full_decides_a_capture_on_encrypted_links() {
    let services = TlsServices::start().await;
    let root = tempfile::tempdir().unwrap();
    let (bytes, want) = golden("g3-3p.png");
    std::fs::write(root.path().join("a.png"), &bytes).unwrap();
    let s = Arc::new(tls_settings(&services, root.path().to_str().unwrap()));

    // The owner creates the database and migrates over verify-full TLS (`iari migrate`), then
    // the worker starts over it.
    iari::cli::migrate_database(&s)
        .await
        .expect("migrate over TLS");
    let cancel = CancellationToken::new();
    let handle = App::start(s.clone(), &[Task::Consumer], cancel.clone())
        .await
        .expect("worker starts over TLS");

    // The test's own client goes through the same connection function as the worker.
    let conn = iari::ingest::connect::open(&s.amqp, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    declare_topology(&ch, &s.amqp).await.unwrap();
    let body = serde_json::to_vec(&event("TLS-1", json!({"path": "a.png"}))).unwrap();
    let confirm = publish_capture(&ch, &s.amqp, "TLS-1", &body)
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());

    let pool = PgPool::connect(s.database.url.expose()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let grade: String = loop {
        let g = sqlx::query_scalar("SELECT grade FROM decisions WHERE capture_id = 'TLS-1'")
            .fetch_optional(&pool)
            .await
            .unwrap();
        if let Some(g) = g {
            break g;
        }
        assert!(Instant::now() < deadline, "no decision for TLS-1 in 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(grade, want, "the golden image's recorded grade");

    // PostgreSQL's view: every backend of the worker's pool (application_name `iari`) is TLS.
    let (ssl, total, version): (i64, i64, Option<String>) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*), max(s.version) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'iari'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(total >= 1, "no worker backend found");
    assert_eq!(ssl, total, "worker backends without TLS");
    assert!(version.is_some_and(|v| v.starts_with("TLS")));

    // RabbitMQ's view: the worker's consuming connection (named after its queue) is TLS.
    let rmq_out = {
        let services = &services;
        tokio::task::block_in_place(|| {
            services.rmq.ctl(&[
                "list_connections",
                "client_properties",
                "ssl",
                "ssl_protocol",
                "--formatter",
                "json",
            ])
        })
    };
    let rows: serde_json::Value = serde_json::from_str(&rmq_out).unwrap();
    let name = format!("iari-worker:{}:{}", s.amqp.queue, std::process::id());
    let worker_rows: Vec<&serde_json::Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.to_string().contains(&name))
        .collect();
    assert_eq!(worker_rows.len(), 1, "{rmq_out}");
    assert_eq!(worker_rows[0]["ssl"], json!(true), "{rmq_out}");
    let all_tls = rows
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["ssl"] == json!(true));
    assert!(all_tls, "a plain connection reached the node: {rmq_out}");

    let _ = conn.close(200, "done".into()).await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(60), handle.join())
        .await
        .expect("worker stops");
    pool.close().await;
    services.stop().await;
}
