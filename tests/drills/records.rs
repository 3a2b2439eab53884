//! What the drills read back after a run: the LIS's record (`iari lis-sim --record`) and the
//! outbox with every attempt's outcome.

use sqlx::PgPool;
use std::collections::HashMap;
use std::path::Path;

/// One line of `iari lis-sim --record`: receive time, MSH-10, PID-3.1, OBR-2.1, OBR-3.1, answer.
#[derive(Debug, Clone)]
pub struct Received {
    pub at_ms: i64,
    pub control: String,
    pub filler: String,
    pub answer: String,
}

/// The LIS record in arrival order (empty when the LIS never wrote one).
pub fn lis_lines(path: &Path) -> Vec<Received> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 6, "LIS record line {line:?}");
            Received {
                at_ms: f[0].parse().unwrap(),
                control: f[1].to_string(),
                filler: f[4].to_string(),
                answer: f[5].to_string(),
            }
        })
        .collect()
}

/// The LIS record, grouped by MSH-10 in arrival order.
pub fn lis_record(path: &Path) -> HashMap<String, Vec<Received>> {
    let mut out: HashMap<String, Vec<Received>> = HashMap::new();
    for r in lis_lines(path) {
        out.entry(r.control.clone()).or_default().push(r);
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
