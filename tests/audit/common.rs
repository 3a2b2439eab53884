//! Per-test databases and seed helpers that write rows as the worker and sender do.

use chrono::{DateTime, Utc};
use iari::domain::Sha256Digest;
use serde_json::json;
use sqlx::PgPool;

pub use crate::test_db::base_url;

/// A fresh, migrated database that is dropped by [`TestDb::drop`].
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let (pool, _, name) = crate::test_db::create("iari_test_audit", 12).await;
        TestDb { pool, name }
    }

    /// A database migrated up to `version` only (rows of an older schema).
    pub async fn at_version(version: i64) -> TestDb {
        let (pool, _, name) = crate::test_db::create_at("iari_test_audit", 12, Some(version)).await;
        TestDb { pool, name }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", base_url(), self.name)
    }

    pub async fn drop(self) {
        self.pool.close().await;
        crate::test_db::drop_database(&self.name).await;
    }
}

/// One decision to seed; `Default` gives an unflagged, final 2+ on plate P1 well A1.
#[derive(Clone)]
pub struct Seed {
    pub capture: String,
    pub accession: String,
    pub plate: String,
    pub well: String,
    pub grade: &'static str,
    pub votes: [&'static str; 5],
    pub flags: Vec<&'static str>,
    pub needs_review: bool,
    pub ensemble_version: String,
    pub model_version: String,
    pub decided_at: DateTime<Utc>,
    /// Shift score and version (migration 0008); none writes neither column, as before it.
    pub shift: Option<(f64, &'static str)>,
}

impl Default for Seed {
    fn default() -> Self {
        Seed {
            capture: format!("CAP-{}", uuid::Uuid::new_v4().simple()),
            accession: "ACC1".into(),
            plate: "P1".into(),
            well: "A1".into(),
            grade: "2+",
            votes: ["2+"; 5],
            flags: vec![],
            needs_review: false,
            ensemble_version: "ENS-1.0.0".into(),
            model_version: "1.0.0".into(),
            decided_at: "2026-11-26T10:00:00Z".parse().unwrap(),
            shift: None,
        }
    }
}

pub use crate::models::MODEL_NAMES;

fn models_json(s: &Seed) -> serde_json::Value {
    let models: Vec<_> = MODEL_NAMES
        .iter()
        .zip(s.votes)
        .enumerate()
        .map(|(i, (name, vote))| {
            json!({"name": name, "version": s.model_version,
                   "sha256": Sha256Digest::of(name.as_bytes()).to_hex(), "status": "voted",
                   "probabilities": [0.05, 0.1, 0.7, 0.1, 0.05 + i as f64 * 0.001],
                   "vote": vote, "error": null})
        })
        .collect();
    json!(models)
}

/// Inserts image, capture, decision and its original HL7 message (pending); returns the id.
pub async fn seed(pool: &PgPool, s: &Seed) -> i64 {
    let bytes = format!("png bytes of {}", s.capture).into_bytes();
    let sha = Sha256Digest::of(&bytes);
    sqlx::query(
        "INSERT INTO images (sha256, media_type, width, height, bytes) VALUES ($1, 'image/png', 229, 230, $2)",
    )
    .bind(sha.as_bytes().as_slice())
    .bind(&bytes)
    .execute(pool)
    .await
    .unwrap();
    let event = json!({"schema": "iari.capture.v1", "capture_id": s.capture, "accession": s.accession,
                       "plate_id": s.plate, "well": s.well, "analyzer_id": "HCM-01"});
    sqlx::query(
        "INSERT INTO captures (capture_id, image_sha256, event, captured_at, analyzer_id, plate_id, well, accession) \
         VALUES ($1, $2, $3, $4, 'HCM-01', $5, $6, $7)",
    )
    .bind(&s.capture)
    .bind(sha.as_bytes().as_slice())
    .bind(&event)
    .bind(s.decided_at)
    .bind(&s.plate)
    .bind(&s.well)
    .bind(&s.accession)
    .execute(pool)
    .await
    .unwrap();
    let flags: Vec<String> = s.flags.iter().map(|f| f.to_string()).collect();
    let (shift_cols, shift_vals) = match s.shift {
        Some((score, version)) => (
            ", shift_score, shift_version",
            format!(", {score:?}, '{version}'"),
        ),
        None => ("", String::new()),
    };
    let id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "INSERT INTO decisions (capture_id, image_sha256, grade, agreement, confidence, flags, \
         needs_review, ensemble_name, ensemble_version, models, runtime, timings, worker, decided_at\
         {shift_cols}) \
         VALUES ($1, $2, $3, 0.6, 0.71, $4, $5, 'iari-cbam', $6, $7, $8, $9, $10, $11{shift_vals}) \
         RETURNING id",
    )))
    .bind(&s.capture)
    .bind(sha.as_bytes().as_slice())
    .bind(s.grade)
    .bind(&flags)
    .bind(s.needs_review)
    .bind(&s.ensemble_version)
    .bind(models_json(s))
    .bind(json!({"onnxruntime_version": "1.22.0", "provider": "CPUExecutionProvider",
                 "requested": "auto", "fallback_reason": "CUDA not available", "preprocessing": "pp-area-1"}))
    .bind(json!({"decode_ms": 1.5, "preprocess_ms": 0.8, "inference_ms": 12.25, "batch_size": 4}))
    .bind(json!({"version": "0.1.0", "build": "abc123", "host": "lab-host-1", "pid": 4242}))
    .bind(s.decided_at)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO hl7_messages (decision_id, filler_number, result_status) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(format!("D{id:07}"))
    .bind(if s.needs_review { "P" } else { "F" })
    .execute(pool)
    .await
    .unwrap();
    id
}

/// Marks the decision's latest message as the sender would after its delivery attempts.
pub async fn deliver(pool: &PgPool, decision_id: i64, state: &str) {
    let msg: i64 = sqlx::query_scalar(
        "SELECT id FROM hl7_messages WHERE decision_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(decision_id)
    .fetch_one(pool)
    .await
    .unwrap();
    let (code, text) = if state == "acked" {
        ("AA", "accepted")
    } else {
        ("AE", "unknown patient")
    };
    sqlx::query(
        "INSERT INTO hl7_attempts (message_id, attempt, started_at, finished_at, outcome, error) \
         VALUES ($1, 1, now(), now(), 'timeout', 'no ACK within 10000 ms')",
    )
    .bind(msg)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO hl7_attempts (message_id, attempt, started_at, finished_at, outcome, ack_code, ack_text) \
         VALUES ($1, 2, now(), now(), $2, $3, $4)",
    )
    .bind(msg)
    .bind(if state == "acked" { "acked" } else { "error_ae" })
    .bind(code)
    .bind(text)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE hl7_messages SET state = $2, attempts = 2, ack_code = $3, ack_text = $4, \
         payload = convert_to('MSH|^~\\&|IARI' || chr(13) || 'OBX|1', 'UTF8'), \
         acked_at = CASE WHEN $2 = 'acked' THEN now() END WHERE id = $1",
    )
    .bind(msg)
    .bind(state)
    .bind(code)
    .bind(text)
    .execute(pool)
    .await
    .unwrap();
}

/// A review as a second writer would add it, straight into the chain.
pub async fn add_review(pool: &PgPool, decision_id: i64, grade: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO reviews (decision_id, grade, reviewer, comment) VALUES ($1, $2, 'dr.x', 'checked') RETURNING id",
    )
    .bind(decision_id)
    .bind(grade)
    .fetch_one(pool)
    .await
    .unwrap()
}

pub async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Runs `iari <args>` in-process against `db` (a config file names its URL) and returns the
/// exit code. In-process rather than the built binary: the shared target directory's `iari`
/// may be another branch's build at any moment.
pub fn run_cli(db: &TestDb, args: &[&str]) -> std::process::ExitCode {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("iari.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\n", db.url())).unwrap();
    let mut argv = vec![
        "iari".to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let cli = iari::cli::Cli::try_parse_from(argv).unwrap();
    // The command builds its own runtime, so it runs on a thread outside the test's runtime.
    std::thread::spawn(move || iari::cli::run(cli))
        .join()
        .unwrap()
}
