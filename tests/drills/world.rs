//! A drill's world, the one harness of every drill: its own database (on the shared or a
//! private PostgreSQL), its own queue names (on the shared or a private RabbitMQ), synthetic
//! capture images, the `IARI__` settings every process it starts gets, an `iari lis-sim` that can
//! be started with faults, stopped and started again, any number of real `iari worker`
//! processes, and the `iari publish` CLI. Every wait is bounded.

use crate::proc::{Proc, http_status, iari};
use crate::publisher::{self, Stream};
use crate::scratch::{self, create_db, write_images};
use sqlx::PgPool;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Captures per drill (`IARI_DRILL_CAPTURES`, default 2,000).
pub fn captures() -> usize {
    std::env::var("IARI_DRILL_CAPTURES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
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
            pg_base: iari_kit::db::base_url(),
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
        }
    }
}

pub struct World {
    pub pool: PgPool,
    db_name: String,
    pg_base: String,
    pub dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
    /// Capture ids with their image path (relative to the image root), in file order.
    pub captures: Vec<(String, String)>,
    /// The running `iari lis-sim`, if any (it records to `lis.tsv` as long as it runs).
    lis: Option<Proc>,
}

impl World {
    /// A migrated database, queue names `drill.<uuid>.*` and `n` synthetic images (the bundled
    /// samples, each with a unique trailer after the image end so every capture has new bytes).
    /// No LIS yet: see [`World::start_lis`].
    pub async fn new(services: &Services, n: usize) -> World {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let db_name = format!("iari_drill_{tag}");
        let (pool, db_url) = create_db(&services.pg_base, &db_name).await;
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        let captures = write_images(&images, n, &tag[..8]);
        let manifest = format!("{ROOT}/onnx/models/manifest.json");
        let mut env: HashMap<String, String> = [
            ("IARI__DATABASE__URL", db_url.as_str()),
            ("IARI__AMQP__URL", services.amqp_url.as_str()),
            ("IARI__IMAGES__ROOT", images.to_str().unwrap()),
            ("IARI__MODELS__MANIFEST", manifest.as_str()),
            // The drills' plates carry no control wells (plate QC: tests/worker/plate_qc.rs).
            ("IARI__QC__MODE", "off"),
            ("IARI__INFERENCE__DEVICE", "cpu"),
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
            env.insert(format!("IARI__AMQP__{k}"), format!("drill.{tag}.{v}"));
        }
        World {
            pool,
            db_name,
            pg_base: services.pg_base.clone(),
            dir,
            env,
            captures,
            lis: None,
        }
    }

    /// The world of the broker, database, kill and scale drills: small pools, one inference
    /// thread, info logs (the drills count log lines), fast reconnects, and a lis-sim that answers
    /// AA throughout.
    pub async fn fleet(services: &Services, n: usize) -> World {
        let mut w = World::new(services, n).await;
        w.start_lis("127.0.0.1:0", &[]);
        w.set_all(&[
            ("IARI__DATABASE__MAX_CONNECTIONS", "4"),
            ("IARI__DATABASE__ACQUIRE_TIMEOUT_S", "3"),
            ("IARI__INFERENCE__INTRA_THREADS", "1"),
            ("IARI__LOG__LEVEL", "info,ort=warn"),
            ("IARI__WORKER__RECONNECT_MAX_S", "2"),
            ("IARI__LIS__TRANSPORT", "mllp"),
            ("IARI__LIS__CONNECT_TIMEOUT_MS", "1000"),
            ("IARI__LIS__ACK_TIMEOUT_MS", "3000"),
            ("IARI__LIS__BACKOFF_INITIAL_MS", "200"),
            ("IARI__LIS__BACKOFF_MAX_MS", "2000"),
        ]);
        w
    }

    pub fn set_all(&mut self, pairs: &[(&str, &str)]) {
        for (k, v) in pairs {
            self.env.insert(k.to_string(), v.to_string());
        }
    }

    /// The settings every process of the drill reads (the publisher uses its AMQP part).
    pub fn settings(&self) -> iari::config::Settings {
        iari::config::Settings::load_from(None, Some(self.env.clone())).unwrap()
    }

    /// `iari <args>` with the drill's settings and `extra`, stderr to `<log>.log`.
    fn spawn(&self, args: &[&str], extra: &[(&str, &str)], log: &str, stdout: Stdio) -> Child {
        Command::new(iari())
            .args(args)
            .current_dir(ROOT)
            .envs(&self.env)
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(std::fs::File::create(self.log_path(log)).unwrap())
            .spawn()
            .unwrap()
    }

    /// Starts `iari worker` as `name` (log `<name>.log`, its own HTTP port) and waits until
    /// `/readyz` says 200.
    pub async fn worker(&self, name: &str) -> Proc {
        let addr = format!("127.0.0.1:{}", iari_kit::ports::free_port());
        let http = [("IARI__HTTP__ADDR", addr.as_str())];
        let child = self.spawn(&["worker"], &http, name, Stdio::null());
        let mut p = Proc {
            child,
            name: name.into(),
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while http_status(&p.addr, "/readyz").await != Some(200) {
            self.assert_alive(&mut p, "");
            assert!(
                Instant::now() < deadline,
                "{name} not ready:\n{}",
                self.log(name)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        p
    }

    /// Panics with the process's log when it has exited (`when` says at which moment).
    pub fn assert_alive(&self, p: &mut Proc, when: &str) {
        assert!(p.alive(), "{} exited{when}:\n{}", p.name, self.log(&p.name));
    }

    /// Stops a process with SIGTERM; panics with its log unless it exits cleanly within `secs`.
    pub fn assert_stops(&self, p: Proc, secs: u64) {
        let name = p.name.clone();
        assert!(
            p.stop(secs),
            "{name} did not stop cleanly:\n{}",
            self.log(&name)
        );
    }

    /// Starts the in-process analyzer publishing every capture at `rate` per second (0: as fast
    /// as confirms allow), given 300 s to get them all confirmed.
    pub fn stream(&self, rate: usize) -> Stream {
        let amqp = self.settings().amqp;
        publisher::start(amqp, self.captures.clone(), rate, Duration::from_secs(300))
    }

    /// Starts `iari publish` of every image at `rate` per second, ids prefixed `prefix`
    /// (log `publish.log`).
    pub fn publish(&self, prefix: &str, rate: usize) -> Proc {
        let images = self.dir.path().join("images");
        let rate = rate.to_string();
        let args = ["publish", images.to_str().unwrap(), "--prefix", prefix];
        let args = [&args[..], &["--rate", &rate]].concat();
        let child = self.spawn(&args, &[], "publish", Stdio::null());
        Proc {
            child,
            name: "publish".into(),
            addr: String::new(),
        }
    }

    /// Runs `iari publish <args>` to its end (bounded: 120 s), log `<log>.log`; panics when it
    /// fails.
    pub fn publish_to_end(&self, args: &[&str], log: &str) {
        let args = [&["publish"][..], args].concat();
        let mut p = Proc {
            child: self.spawn(&args, &[], log, Stdio::null()),
            name: log.into(),
            addr: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(s) = p.exited() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "{log} still publishing after 120 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{log}: {}", self.log(log));
    }

    /// Starts `iari lis-sim` with `faults` on `listen` (port 0: a free one), recording to
    /// `lis.tsv` (log `lis.log`), and points the workers started after it at it.
    pub fn start_lis(&mut self, listen: &str, faults: &[&str]) {
        assert!(self.lis.is_none(), "lis-sim already running");
        let record = self.record_path();
        let mut args = vec!["lis-sim", "--listen", listen, "--record"];
        args.push(record.to_str().unwrap());
        args.extend_from_slice(faults);
        let mut child = self.spawn(&args, &[], "lis", Stdio::piped());
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("lis-sim listening on ")
            .unwrap_or_else(|| panic!("lis-sim did not start: {line:?} {}", self.log("lis")))
            .to_string();
        self.env.insert("IARI__LIS__ADDR".into(), addr.clone());
        let name = "lis".into();
        self.lis = Some(Proc { child, name, addr });
    }

    /// Stops the LIS with SIGTERM; true when it exited cleanly within 10 s.
    pub fn stop_lis(&mut self) -> bool {
        self.lis.take().expect("lis-sim running").stop(10)
    }

    /// The address the LIS listens (or listened) on.
    pub fn lis_addr(&self) -> String {
        self.env["IARI__LIS__ADDR"].clone()
    }

    pub fn record_path(&self) -> PathBuf {
        self.dir.path().join("lis.tsv")
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

    /// Waits (bounded) until more than `than` lines of a process log contain `needle`; panics
    /// after `secs` naming `what`. Returns the count seen.
    pub async fn wait_log_count(
        &self,
        name: &str,
        needle: &str,
        than: usize,
        secs: u64,
        what: &str,
    ) -> usize {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let n = self.log_count(name, needle);
            if n > than {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not log {needle:?} {what} within {secs} s:\n{}",
                self.log(name)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Lines of a process log containing `needle`.
    pub fn log_count(&self, name: &str, needle: &str) -> usize {
        let text = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        text.lines().filter(|l| l.contains(needle)).count()
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }

    /// Waits (bounded) until at least `k` decisions exist, polling through database outages;
    /// returns the count seen.
    pub async fn wait_decided(&self, k: usize, secs: u64) -> i64 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let d: i64 = sqlx::query_scalar("SELECT count(*) FROM decisions")
                .fetch_one(&self.pool)
                .await
                .unwrap_or(0);
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

    /// Messages in the drill's capture queue and its dead-letter queue.
    pub async fn queue_depths(&self) -> (u32, u32) {
        scratch::queue_depths(&self.settings().amqp).await
    }

    /// Deletes the drill's queues and exchanges and drops its database (after the checks).
    pub async fn finish(self) {
        scratch::delete_queues(&self.settings().amqp).await;
        self.pool.close().await;
        scratch::drop_db(&self.pg_base, &self.db_name).await;
    }
}
