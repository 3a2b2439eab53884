//! Shared helpers: a fresh database per test, decisions and reviews seeded through the kit (the
//! product's own write paths), and what the tests read back from the outbox. The fake LIS and
//! its settings are the kit's (`iari_kit::lis`).

pub use iari_kit::lis::{FakeLis, Reply, settings as lis_settings};
pub use iari_kit::seed::MODEL_NAMES;
use iari_kit::seed::{self, Seed};
use serde_json::json;
use sqlx::PgPool;

pub async fn fresh_db() -> PgPool {
    iari_kit::db::TestDb::new("iari_test_deliver", 8).await.pool
}

/// One capture of patient DOE^JANE (order PLC123) and its decision, written as the worker
/// writes them: final, or preliminary with `disagree_adjacent` when `needs_review`. Returns the
/// decision id.
pub async fn seed_decision(
    pool: &PgPool,
    capture: &str,
    grade: &'static str,
    votes: [&'static str; 5],
    needs_review: bool,
) -> i64 {
    let s = Seed {
        capture: capture.into(),
        accession: "S26-1".into(),
        plate: "PLT1".into(),
        captured_at: "2026-11-26T13:00:00Z".parse().unwrap(),
        patient: Some(json!({"mrn": "MRN12345", "family": "DOE", "given": "JANE",
                             "birth_date": "1980-01-01", "sex": "F"})),
        order: Some(json!({"placer_order_number": "PLC123"})),
        grade,
        votes,
        flags: if needs_review {
            vec!["disagree_adjacent"]
        } else {
            vec![]
        },
        needs_review,
        confidence: 0.9,
        ..Seed::default()
    };
    seed::decision(pool, &s).await
}

/// A review of decision `id` (non-ASCII reviewer, a comment with a line break), recorded by the
/// product with its outbox message, which must have OBX-11 `status`. Returns the review id.
pub async fn seed_review(pool: &PgPool, id: i64, grade: &str, status: &str) -> i64 {
    let o = seed::review(
        pool,
        id,
        grade,
        "Dr. Müller",
        Some("checked\nunder microscope"),
    )
    .await;
    assert_eq!(o.result_status.map(|s| s.code()), Some(status), "{o:?}");
    o.review_id
}

/// One row of `hl7_messages` as the tests look at it.
#[derive(Debug, sqlx::FromRow)]
pub struct MsgRow {
    pub id: i64,
    pub control_id: String,
    pub state: String,
    pub attempts: i32,
    pub ack_code: Option<String>,
    pub last_error: Option<String>,
    pub payload: Option<Vec<u8>>,
    pub acked: bool,
}

pub async fn messages(pool: &PgPool) -> Vec<MsgRow> {
    sqlx::query_as("SELECT id, control_id, state, attempts, ack_code, last_error, payload, acked_at IS NOT NULL AS acked FROM hl7_messages ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// `(attempt, outcome, ack_code)` of every attempt of message `id`.
pub async fn attempts(pool: &PgPool, id: i64) -> Vec<(i32, String, Option<String>)> {
    sqlx::query_as("SELECT attempt, outcome, ack_code FROM hl7_attempts WHERE message_id = $1 ORDER BY attempt")
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap()
}
