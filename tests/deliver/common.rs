//! Shared helpers: a fresh database per test, decisions and reviews seeded through the
//! product's write paths (the kit's `seed`), and the kit's fake LIS with short test timeouts.

use iari::config::LisSettings;
use iari::domain::ResultStatus;
use iari_kit::seed::{self, Seed};
use sqlx::PgPool;

pub use iari_kit::lis::{FakeLis, Reply, msh10};

pub async fn fresh_db() -> PgPool {
    crate::test_db::create("iari_test_deliver", 8).await.0
}

/// Default settings with an MLLP transport (ORU^R01) to `addr` and short test timeouts.
pub fn lis_settings(addr: &str) -> LisSettings {
    iari_kit::lis::settings(addr)
}

/// One capture of a known patient and order, decided by the worker's batch write (with its
/// outbox row: `P` when `needs_review`, else `F`). Returns the decision id.
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
        well: "A1".into(),
        patient: Some(
            serde_json::json!({"mrn": "MRN12345", "family": "DOE", "given": "JANE",
            "birth_date": "1980-01-01", "sex": "F"}),
        ),
        order: Some(serde_json::json!({"placer_order_number": "PLC123"})),
        grade,
        votes,
        flags: if needs_review {
            vec!["disagree_adjacent"]
        } else {
            vec![]
        },
        needs_review,
        ..Seed::default()
    };
    seed::decision(pool, &s).await
}

/// A signed review of decision `id` by the product's review path, which enqueues its result;
/// `status` is the OBX-11 the test expects that result to have (`F` or `C`). Returns the review id.
pub async fn seed_review(pool: &PgPool, id: i64, grade: &str, status: &str) -> i64 {
    let r = seed::review(
        pool,
        id,
        grade,
        "Dr. Müller",
        Some("checked\nunder microscope"),
    )
    .await;
    let want = ResultStatus::parse(status).expect("a result status");
    assert_eq!(r.result_status, Some(want), "review of {id} as {grade}");
    r.review_id
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
