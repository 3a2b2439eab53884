//! A drill's world for the broker, database, kill and scale drills: its own database (on the
//! shared or a private PostgreSQL), its own queue names (on the shared or a private RabbitMQ),
//! synthetic capture images, one `iari lis-sim` recording what it received, and any number of
//! real `iari worker` processes. Processes are killed (SIGKILL) when their handles drop, so a
//! failing drill leaves nothing running; every wait is bounded.

pub use crate::common::captures;
use crate::common::http_status;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `iari` binary: this build's, or `IARI_DRILL_BIN` (a copy another build cannot replace).
fn iari() -> String {
    std::env::var("IARI_DRILL_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_iari").to_string())
}

/// Where the drill's database and queues live.
pub struct Services {
    /// PostgreSQL URL without a database name.
    pub pg_base: String,
    pub amqp_url: String,
}

impl Services {
    /// The shared development services (each drill still gets its own database and queues).
    pub fn shared() -> Services {
        Services {
            pg_base: crate::test_db::base_url(),
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
        }
    }
}

/// A child process, SIGKILLed and reaped on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub http: String,
}

impl Proc {
    /// SIGKILL now (no shutdown path runs: unacked deliveries and outbox leases are left behind).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then up to `secs` for a clean exit; true when it exited with success.
    pub fn stop(mut self, secs: u64) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct World {
    pub pool: PgPool,
    db_name: String,
    pg_base: String,
    pub dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
    /// Capture ids with their image path (relative to the image root), in publish order.
    pub captures: Vec<(String, String)>,
    /// Held so the LIS runs (and records) as long as the world.
    _lis: Proc,
}

impl World {
    /// A migrated database, queue names `drill.<uuid>.*`, `n` synthetic images (the bundled
    /// samples, each with a unique trailer after the image end so every capture has new bytes)
    /// and a running `iari lis-sim` that answers AA and records every message.
    pub async fn new(services: &Services, n: usize) -> World {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let db_name = format!("iari_drill_{tag}");
        let (pool, db_url) = create_db(&services.pg_base, &db_name).await;
        let dir = tempfile::tempdir().unwrap();
        let captures = write_images(&dir.path().join("images"), n, &tag[..8]);
        let images = dir.path().join("images");
        let mut env: HashMap<String, String> = [
            ("IARI__DATABASE__URL", db_url.as_str()),
            ("IARI__DATABASE__MAX_CONNECTIONS", "4"),
            ("IARI__DATABASE__ACQUIRE_TIMEOUT_S", "3"),
            ("IARI__AMQP__URL", services.amqp_url.as_str()),
            ("IARI__IMAGES__ROOT", images.to_str().unwrap()),
            (
                "IARI__MODELS__MANIFEST",
                &format!("{ROOT}/onnx/models/manifest.json"),
            ),
            ("IARI__INFERENCE__DEVICE", "cpu"),
            ("IARI__INFERENCE__INTRA_THREADS", "1"),
            ("IARI__LOG__LEVEL", "info,ort=warn"),
            ("IARI__WORKER__RECONNECT_INITIAL_S", "1"),
            ("IARI__WORKER__RECONNECT_MAX_S", "2"),
            ("IARI__LIS__TRANSPORT", "mllp"),
            ("IARI__LIS__CONNECT_TIMEOUT_MS", "1000"),
            ("IARI__LIS__ACK_TIMEOUT_MS", "3000"),
            ("IARI__LIS__BACKOFF_INITIAL_MS", "200"),
            ("IARI__LIS__BACKOFF_MAX_MS", "2000"),
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
            env.insert(format!("IARI__AMQP__{k}"), format!("drill.{tag}.{v}"));
        }
        let lis = start_lis(&dir.path().join("lis.tsv"), &dir.path().join("lis.log"));
        env.insert("IARI__LIS__ADDR".into(), lis.http.clone());
        World {
            pool,
            db_name,
            pg_base: services.pg_base.clone(),
            dir,
            env,
            captures,
            _lis: lis,
        }
    }

    /// The settings every process of the drill reads (the publisher uses its AMQP part).
    pub fn settings(&self) -> iari::config::Settings {
        iari::config::Settings::load_from(None, Some(self.env.clone())).unwrap()
    }

    /// Starts `iari worker` as `name` (log `<name>.log`) and waits until `/readyz` says 200.
    pub async fn worker(&self, name: &str) -> Proc {
        let http = format!("127.0.0.1:{}", crate::instances::free_port());
        let log = std::fs::File::create(self.log_path(name)).unwrap();
        let child = Command::new(iari())
            .arg("worker")
            .current_dir(ROOT)
            .envs(&self.env)
            .env("IARI__HTTP__ADDR", &http)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut p = Proc {
            child,
            name: name.into(),
            http,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while http_status(&p.http, "/readyz").await != Some(200) {
            assert!(p.alive(), "{name} exited:\n{}", self.log(name));
            assert!(
                Instant::now() < deadline,
                "{name} not ready:\n{}",
                self.log(name)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        p
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// The last lines of a process log, for failure messages.
    pub fn log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    /// Lines of a process log containing `needle`.
    pub fn log_count(&self, name: &str, needle: &str) -> usize {
        let text = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        text.lines().filter(|l| l.contains(needle)).count()
    }

    /// Decisions committed so far; None while the database cannot be reached.
    pub async fn decided(&self) -> Option<i64> {
        sqlx::query_scalar("SELECT count(*) FROM decisions")
            .fetch_one(&self.pool)
            .await
            .ok()
    }

    /// Waits (bounded) until at least `k` decisions exist; returns the count seen.
    pub async fn wait_decided(&self, k: usize, secs: u64) -> i64 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let d = self.decided().await.unwrap_or(0);
            if d >= k as i64 {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "only {d} of {k} decisions after {secs} s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Drops the database (the queues are deleted by [`crate::checks`]).
    pub async fn finish(self) {
        self.pool.close().await;
        if let Ok(mut admin) = PgConnection::connect(&format!("{}/postgres", self.pg_base)).await {
            let sql = format!("DROP DATABASE \"{}\" WITH (FORCE)", self.db_name);
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut admin)
                .await;
        }
    }
}

async fn create_db(base: &str, name: &str) -> (PgPool, String) {
    let mut admin = PgConnection::connect(&format!("{base}/postgres"))
        .await
        .expect("PostgreSQL for the drill");
    let sql = format!("CREATE DATABASE \"{name}\"");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = format!("{base}/{name}");
    // Short acquire timeout: the drill polls through database outages.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&url)
        .await
        .unwrap();
    iari::store::MIGRATOR.run(&pool).await.unwrap();
    (pool, url)
}

/// Writes `n` images (sample bytes + a unique trailer); returns (capture id, relative path).
fn write_images(dir: &Path, n: usize, tag: &str) -> Vec<(String, String)> {
    std::fs::create_dir_all(dir).unwrap();
    let mut samples = Vec::new();
    walk(&Path::new(ROOT).join("onnx/samples"), &mut samples);
    samples.sort();
    let bytes: Vec<Vec<u8>> = samples.iter().map(|p| std::fs::read(p).unwrap()).collect();
    (0..n)
        .map(|i| {
            let mut b = bytes[i % bytes.len()].clone();
            b.extend_from_slice(format!("iari-drill-{tag}-{i:06}").as_bytes());
            let rel = format!("{i:06}.png");
            std::fs::write(dir.join(&rel), b).unwrap();
            (format!("DRILL-{tag}-{i:06}"), rel)
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "png") {
            out.push(p);
        }
    }
}

/// `iari lis-sim` on a free port recording to `record`; the address is in the returned `http`
/// field (it is the MLLP address here).
fn start_lis(record: &Path, log: &Path) -> Proc {
    let mut child = Command::new(iari())
        .args(["lis-sim", "--listen", "127.0.0.1:0", "--record"])
        .arg(record)
        .current_dir(ROOT)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("lis-sim listening on ")
        .unwrap_or_else(|| panic!("lis-sim did not start: {line:?}"))
        .to_string();
    Proc {
        child,
        name: "lis-sim".into(),
        http: addr,
    }
}

/// The raw HTTP/1.0 response to a GET (bounded by a 5 s timeout).
pub async fn http_get(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let get = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(Duration::from_secs(5), get)
        .await
        .ok()
        .flatten()
}
