//! Shared drill harness: a database and queue names of the drill's own, synthetic capture images,
//! and the real processes (`iari worker`, `iari publish`, `iari lis-sim`) configured by
//! `IARI__` variables. Every process is killed when its handle drops, so a failing drill leaves
//! nothing running; every wait is bounded.

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use sqlx::PgPool;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `iari` binary the drills run: this build's, or `IARI_DRILL_BIN` (a copy that another
/// build into a shared target directory cannot replace mid-run).
fn iari() -> String {
    std::env::var("IARI_DRILL_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_iari").to_string())
}
const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/onnx/samples");
const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/onnx/models/manifest.json");

/// Captures per drill (`IARI_DRILL_CAPTURES`, default 2,000) and their publish rate per second
/// (`IARI_DRILL_RATE`, default 50).
pub fn captures() -> usize {
    env_or("IARI_DRILL_CAPTURES", 2000)
}

pub fn rate() -> usize {
    env_or("IARI_DRILL_RATE", 50)
}

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child process killed (SIGKILL) and reaped on drop unless stopped before.
pub struct Proc {
    child: Child,
}

impl Proc {
    /// SIGTERM, then waits up to `secs` for a clean exit (SIGKILL after that).
    pub fn stop(mut self, secs: u64) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Whether the process has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A drill's world: its database, queue names, image folder and the environment every process
/// it starts gets.
pub struct Drill {
    pub pool: PgPool,
    pub db_name: String,
    pub dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
    pub http: String,
}

impl Drill {
    /// A migrated database, queue names `drill.<uuid>.*`, and `n` synthetic images (the bundled
    /// samples, each with a unique trailer after the PNG end so every capture has new bytes).
    pub async fn new(n: usize) -> Drill {
        let (pool, url, db_name) = crate::test_db::create("iari_drill", 4).await;
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir_all(&images).unwrap();
        let mut samples: Vec<PathBuf> = walk(Path::new(SAMPLES));
        samples.sort();
        for i in 0..n {
            let mut bytes = std::fs::read(&samples[i % samples.len()]).unwrap();
            bytes.extend_from_slice(format!("iari-drill-{i:08}").as_bytes());
            std::fs::write(images.join(format!("{i:06}.png")), bytes).unwrap();
        }
        let prefix = format!("drill.{}", uuid::Uuid::new_v4().simple());
        let http = format!("127.0.0.1:{}", free_port());
        let mut env: HashMap<String, String> = [
            ("IARI__DATABASE__URL", url.as_str()),
            ("IARI__IMAGES__ROOT", images.to_str().unwrap()),
            ("IARI__MODELS__MANIFEST", MANIFEST),
            ("IARI__INFERENCE__DEVICE", "cpu"),
            ("IARI__HTTP__ADDR", http.as_str()),
            ("IARI__LOG__LEVEL", "warn"),
            ("IARI__WORKER__RECONNECT_INITIAL_S", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in [
            ("EXCHANGE", "x"),
            ("QUEUE", "q"),
            ("DEAD_LETTER_EXCHANGE", "dlx"),
            ("DEAD_LETTER_QUEUE", "dead"),
        ] {
            env.insert(format!("IARI__AMQP__{k}"), format!("{prefix}.{v}"));
        }
        Drill {
            pool,
            db_name,
            dir,
            env,
            http,
        }
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.insert(key.into(), value.into());
    }

    fn command(&self, args: &[&str], log: &str) -> Command {
        let mut c = Command::new(iari());
        c.args(args)
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join(log)).unwrap());
        c
    }

    /// Starts `iari worker` and waits (bounded) until `/readyz` answers 200.
    pub async fn worker(&self) -> Proc {
        let child = self.command(&["worker"], "worker.log").spawn().unwrap();
        let mut p = Proc { child };
        let deadline = Instant::now() + Duration::from_secs(120);
        while http_status(&self.http, "/readyz").await != Some(200) {
            assert!(
                p.exited().is_none(),
                "worker exited: {}",
                self.log("worker.log")
            );
            assert!(
                Instant::now() < deadline,
                "worker not ready: {}",
                self.log("worker.log")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        p
    }

    /// Starts `iari publish` of every drill image at `rate` per second, ids prefixed `prefix`.
    pub fn publish(&self, prefix: &str, rate: usize) -> Proc {
        let images = self.dir.path().join("images");
        let args = [
            "publish",
            images.to_str().unwrap(),
            "--prefix",
            prefix,
            "--rate",
            &rate.to_string(),
        ];
        let child = self.command(&args, "publish.log").spawn().unwrap();
        Proc { child }
    }

    /// Starts `iari lis-sim` on `listen` (port 0: a free one) recording to `lis.tsv`; returns the
    /// process and the address it listens on.
    pub fn lis_sim(&self, listen: &str, faults: &[&str]) -> (Proc, String) {
        let record = self.record_path();
        let mut args = vec!["lis-sim", "--listen", listen, "--record"];
        args.push(record.to_str().unwrap());
        args.extend_from_slice(faults);
        let mut child = self
            .command(&args, "lis.log")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("lis-sim listening on ")
            .unwrap_or_else(|| panic!("lis-sim did not start: {line:?} {}", self.log("lis.log")))
            .to_string();
        (Proc { child }, addr)
    }

    pub fn record_path(&self) -> PathBuf {
        self.dir.path().join("lis.tsv")
    }

    /// The last lines of one of the drill's process logs, for failure messages.
    pub fn log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }

    /// Polls until `n` decisions exist and no outbox message is pending, or panics after `secs`.
    pub async fn wait_settled(&self, n: i64, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let decided = self.count("SELECT count(*) FROM decisions").await;
            let pending = self
                .count("SELECT count(*) FROM hl7_messages WHERE state = 'pending'")
                .await;
            if decided >= n && pending == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not settled after {secs} s: {decided} of {n} decided, {pending} pending\n{}",
                self.log("worker.log")
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Messages in the drill's dead-letter queue (passive declare).
    pub async fn dead_letters(&self) -> u32 {
        let conn = self.broker().await;
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                self.env["IARI__AMQP__DEAD_LETTER_QUEUE"].as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = conn.close(200, "done".into()).await;
        q.message_count()
    }

    async fn broker(&self) -> Connection {
        let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
        Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap()
    }

    /// Deletes the drill's queues and database (call after the checks passed).
    pub async fn finish(self) {
        let conn = self.broker().await;
        let ch = conn.create_channel().await.unwrap();
        for key in ["IARI__AMQP__QUEUE", "IARI__AMQP__DEAD_LETTER_QUEUE"] {
            let _ = ch
                .queue_delete(self.env[key].as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = conn.close(200, "done".into()).await;
        self.pool.close().await;
        crate::test_db::drop_database(&self.db_name).await;
    }
}

/// One line of `iari lis-sim --record`: receive time, MSH-10, PID-3.1, OBR-2.1, OBR-3.1, answer.
#[derive(Debug, Clone)]
pub struct Received {
    pub at_ms: i64,
    pub filler: String,
    pub answer: String,
}

/// The LIS record, grouped by MSH-10 in arrival order.
pub fn lis_record(path: &Path) -> HashMap<String, Vec<Received>> {
    let mut out: HashMap<String, Vec<Received>> = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 6, "record line {line:?}");
        out.entry(f[1].to_string()).or_default().push(Received {
            at_ms: f[0].parse().unwrap(),
            filler: f[4].to_string(),
            answer: f[5].to_string(),
        });
    }
    out
}

/// One outbox message with its decision's capture and every attempt's outcome, in order.
#[derive(Debug, sqlx::FromRow)]
pub struct Outbox {
    pub capture_id: String,
    pub control_id: String,
    pub filler_number: String,
    pub state: String,
    pub attempts: i32,
    pub ack_code: Option<String>,
    pub outcomes: Vec<String>,
}

pub async fn outbox(pool: &PgPool) -> Vec<Outbox> {
    sqlx::query_as(
        "SELECT d.capture_id, m.control_id, m.filler_number, m.state, m.attempts, m.ack_code, \
           coalesce(array_agg(a.outcome ORDER BY a.attempt) FILTER (WHERE a.id IS NOT NULL), '{}') AS outcomes \
         FROM hl7_messages m JOIN decisions d ON d.id = m.decision_id \
         LEFT JOIN hl7_attempts a ON a.message_id = m.id \
         GROUP BY d.capture_id, m.id ORDER BY m.id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|e| e == "png") {
            out.push(p);
        }
    }
    out
}

/// A port nothing listens on right now (the worker's HTTP server binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Status code of a GET, or None when nothing answers.
pub async fn http_status(addr: &str, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}
