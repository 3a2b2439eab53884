//! Shared helpers: a fresh database per test, settings pointing at it, events and fixtures.

use iari::config::Settings;
use iari::domain::{Classification, Flag, Grade, ModelAnswer, ModelRef, Outcome, Sha256Digest};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::collections::HashMap;

/// The test server's maintenance database, for sessions outside the test's own database.
pub fn admin_url() -> String {
    format!("{}/postgres", iari_kit::db::base_url())
}

/// A new, migrated database (the kit's); returns its pool and URL.
pub async fn fresh_db() -> (PgPool, String) {
    let db = iari_kit::db::TestDb::new("iari_test_worker", 10).await;
    (db.pool, db.url)
}

/// Like [`fresh_db`]; the URL is for a login that is a member of `role` only.
pub async fn fresh_db_as(role: &str) -> (PgPool, String) {
    let db = iari_kit::db::TestDb::new("iari_test_worker", 10).await;
    let url = db.login_url(role).await;
    (db.pool, url)
}

/// Settings with test-specific database URL and queue names, plus any extra overrides.
pub fn settings(db_url: &str, prefix: &str, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("IARI__DATABASE__URL".into(), db_url.into());
    for (k, v) in [
        ("EXCHANGE", "x"),
        ("QUEUE", "q"),
        ("DEAD_LETTER_EXCHANGE", "dlx"),
        ("DEAD_LETTER_QUEUE", "dead"),
    ] {
        env.insert(format!("IARI__AMQP__{k}"), format!("{prefix}.{v}"));
    }
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/onnx/models/manifest.json");
    env.insert("IARI__MODELS__MANIFEST".into(), models.into());
    env.insert("IARI__INFERENCE__DEVICE".into(), "cpu".into());
    // These tests' plates carry no control wells; plate QC has its own (`plate_qc`), which
    // turn it on.
    env.insert("IARI__QC__MODE".into(), "off".into());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    Settings::load_from(None, Some(env)).unwrap()
}

/// A valid v1 event for `capture_id` with the given image object.
pub fn event(capture_id: &str, image: Value) -> Value {
    json!({
        "schema": "iari.capture.v1",
        "capture_id": capture_id,
        "captured_at": "2026-11-26T10:15:00Z",
        "analyzer": { "id": "HCM-01" },
        "plate": { "id": "PLT0042", "well": "A1" },
        "specimen": { "accession": "S26-001234" },
        "image": image
    })
}

/// A synthetic classification (for store tests that do not run the models).
pub fn classification(sha: Sha256Digest, grade: Grade, flags: &[Flag]) -> Classification {
    let models = (0..5)
        .map(|i| {
            let mut p = [0.0f32; 5];
            p[grade.index()] = 1.0;
            let m = ModelRef {
                name: format!("m{i}"),
                version: "1".into(),
                sha256: Sha256Digest::of(&[i]),
            };
            (
                m,
                ModelAnswer::Voted {
                    probabilities: p,
                    vote: grade,
                },
            )
        })
        .collect();
    Classification {
        image_sha256: sha,
        models,
        outcome: Outcome {
            grade,
            agreement: 1.0,
            confidence: 1.0,
            flags: flags.iter().copied().collect(),
            needs_review: !flags.is_empty(),
        },
        shift: None,
    }
}
