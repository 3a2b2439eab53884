//! A worker running in the test process on its own database, queues and image root, plus a
//! broker client to publish raw bodies and read the dead-letter queue.

use crate::common::{fresh_db, settings};
use iari::app::{App, Task};
use iari::config::Settings;
use iari::ingest::amqp::{declare_topology, publish_capture, reason_header};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use sqlx::PgPool;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/onnx/samples");

pub struct TestWorker {
    pub settings: Arc<Settings>,
    pub pool: PgPool,
    pub root: tempfile::TempDir,
    pub cancel: CancellationToken,
    pub handle: Option<App>,
    pub channel: Channel,
    /// What `start_worker` runs: the consumer and HTTP unless the test says otherwise.
    tasks: Vec<Task>,
    _conn: Connection,
}

/// A sample image's bytes (`neg/neg-000.png` etc.).
pub fn sample(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(SAMPLES).join(rel)).unwrap()
}

/// A golden image's bytes (`onnx/models/golden/`) and the grade the Python reference decided
/// for it (`golden.json`, written by the training pipeline, not by this code).
pub fn golden(image: &str) -> (Vec<u8>, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx/models/golden");
    let cases: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
    let case = cases
        .iter()
        .find(|c| c["image"] == image)
        .unwrap_or_else(|| panic!("{image} is not a golden case"));
    let decision = case["decision"].as_str().unwrap().to_string();
    (std::fs::read(dir.join(image)).unwrap(), decision)
}

impl TestWorker {
    pub async fn start(extra: &[(&str, &str)]) -> TestWorker {
        Self::start_tasks(extra, &[Task::Consumer, Task::Http]).await
    }

    /// Like [`TestWorker::start`], running `tasks` (the sender too, for the whole path).
    pub async fn start_tasks(extra: &[(&str, &str)], tasks: &[Task]) -> TestWorker {
        Self::start_as(None, extra, tasks).await
    }

    /// Like [`TestWorker::start_tasks`]; with `role`, the worker logs in as a member of that
    /// database role only (the test's own pool stays the owner's).
    pub async fn start_as(
        role: Option<&str>,
        extra: &[(&str, &str)],
        tasks: &[Task],
    ) -> TestWorker {
        let (pool, db_url) = match role {
            Some(role) => crate::common::fresh_db_as(role).await,
            None => fresh_db().await, // db_url feeds the settings
        };
        let root = tempfile::tempdir().unwrap();
        let prefix = format!("t.{}", uuid::Uuid::new_v4().simple());
        let root_s = root.path().to_str().unwrap().to_string();
        let mut all: Vec<(&str, &str)> = vec![
            ("IARI__IMAGES__ROOT", &root_s),
            ("IARI__AMQP__DELIVERY_LIMIT", "3"),
            ("IARI__WORKER__RECONNECT_INITIAL_S", "1"),
            ("IARI__WORKER__RETRY_DELAY_MS", "50"),
            ("IARI__HTTP__ADDR", "127.0.0.1:0"),
        ];
        all.extend_from_slice(extra);
        let settings = Arc::new(settings(&db_url, &prefix, &all));
        let conn = iari::ingest::connect::open(&settings.amqp, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        declare_topology(&channel, &settings.amqp).await.unwrap();
        let mut w = TestWorker {
            settings,
            pool,
            root,
            cancel: CancellationToken::new(),
            handle: None,
            channel,
            tasks: tasks.to_vec(),
            _conn: conn,
        };
        w.start_worker().await;
        w
    }

    pub async fn start_worker(&mut self) {
        self.cancel = CancellationToken::new();
        let h = App::start(self.settings.clone(), &self.tasks, self.cancel.clone())
            .await
            .unwrap();
        self.handle = Some(h);
    }

    /// Cancels and waits for the worker to finish its batch and close.
    pub async fn stop_worker(&mut self) {
        self.cancel.cancel();
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(60), h.join())
                .await
                .expect("worker stops in time");
        }
    }

    pub fn put_file(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.root.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    pub async fn publish(&self, message_id: &str, body: &[u8]) {
        let c = publish_capture(&self.channel, &self.settings.amqp, message_id, body)
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(c.is_ack());
    }

    pub async fn publish_json(&self, message_id: &str, v: &serde_json::Value) {
        self.publish(message_id, &serde_json::to_vec(v).unwrap())
            .await;
    }

    pub async fn decisions_for(&self, capture_id: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM decisions WHERE capture_id = $1")
            .bind(capture_id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }

    /// Polls until `n` decisions exist in total, or panics after `secs`.
    pub async fn wait_decisions(&self, n: i64, secs: u64) {
        self.wait_count("SELECT count(*) FROM decisions", n, secs)
            .await;
    }

    /// Polls the count `sql` until it reaches `n`, or panics after `secs`.
    pub async fn wait_count(&self, sql: &'static str, n: i64, secs: u64) {
        let have = poll_until(secs, || self.count(sql), |have| *have >= n).await;
        assert!(have >= n, "only {have} of {n} after {secs}s: {sql}");
    }

    /// Takes dead letters until `n` arrived (or panics after `secs`): (message_id, reason header).
    pub async fn dead_letters(&self, n: usize, secs: u64) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut out = Vec::new();
        while out.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} dead letters: {out:?}",
                out.len()
            );
            match self.take_dead_letter().await {
                Some(m) => out.push(m),
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        out
    }

    /// One dead letter if any is ready, acknowledged: (message_id, reason header).
    pub async fn take_dead_letter(&self) -> Option<(String, String)> {
        let m = self
            .channel
            .basic_get(
                self.settings.amqp.dead_letter_queue.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .unwrap()?;
        let id = m
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let reason = reason_header(&m.delivery.properties).unwrap_or_default();
        m.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        Some((id, reason))
    }

    /// Messages ready in the capture queue (passive declare).
    pub async fn queue_depth(&self) -> u32 {
        self.depth(&self.settings.amqp.queue).await
    }

    /// Polls the queue's depth until it is at least `n` or `secs` have passed; returns the last
    /// depth read. Deliveries a closed channel gives back reach a quorum queue's depth through
    /// its Raft log, a moment after the close.
    pub async fn wait_queue_depth(&self, n: u32, secs: u64) -> u32 {
        poll_until(secs, || self.queue_depth(), |depth| *depth >= n).await
    }

    pub async fn dead_letter_depth(&self) -> u32 {
        self.depth(&self.settings.amqp.dead_letter_queue).await
    }

    async fn depth(&self, queue: &str) -> u32 {
        let q = self
            .channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        q.message_count()
    }

    pub async fn finish(mut self) {
        self.stop_worker().await;
        let a = self.settings.amqp.clone();
        for q in [a.queue, a.dead_letter_queue] {
            let _ = self
                .channel
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        // The database goes too, so test runs do not pile up databases on the shared server.
        let db: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&self.pool)
            .await
            .unwrap();
        self.pool.close().await;
        iari_kit::db::drop_database(&iari_kit::db::base_url(), &db).await;
    }
}

/// GET on the worker's HTTP server; returns (status code, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let code = buf.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Reads `read` every 100 ms until `done` holds of the value or `secs` have passed; returns the
/// last value read.
async fn poll_until<T, F>(secs: u64, read: impl Fn() -> F, done: impl Fn(&T) -> bool) -> T
where
    F: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let value = read().await;
        if done(&value) || Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
