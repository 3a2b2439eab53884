//! What every drill checks once the stream has settled: each published capture has exactly one
//! decision, each decision exactly one outbox row with one MSH-10 that the LIS acknowledged (AA),
//! the LIS never received a second distinct message for a capture, nothing is pending, the
//! dead-letter queue is empty and the audit chain verifies. Resends of one MSH-10 are counted and
//! reported, not failed: they are the at-least-once delivery the outbox promises.

use crate::records::lis_lines;
use crate::world::World;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Waits (bounded) until every capture is decided and every result acknowledged.
pub async fn settle(w: &World, secs: u64, logs: &[&str]) {
    let n = w.captures.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT (SELECT count(*) FROM decisions), \
               count(*) FILTER (WHERE state = 'acked'), \
               count(*) FILTER (WHERE state = 'pending'), \
               count(*) FILTER (WHERE state = 'failed') FROM hl7_messages",
        )
        .fetch_one(&w.pool)
        .await
        .ok();
        let (decided, acked, pending, failed) = row.unwrap_or((-1, -1, -1, -1));
        assert!(failed <= 0, "{failed} HL7 results parked as failed");
        if decided == n && acked == n && pending == 0 {
            return;
        }
        if Instant::now() > deadline {
            let tails: Vec<String> = logs
                .iter()
                .map(|l| format!("--- {l}:\n{}", w.log(l)))
                .collect();
            panic!(
                "not settled after {secs} s: {decided} of {n} decided, {acked} acked, \
                 {pending} pending\n{}",
                tails.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Numbers a drill reports.
#[derive(Debug, Default)]
pub struct Tally {
    pub decisions: usize,
    /// Messages the LIS received, all MSH-10s together.
    pub lis_received: usize,
    /// Receipts of an MSH-10 the LIS had received before.
    pub resends: usize,
    /// Of those, receipts after the LIS had already answered AA (the worker never learned it).
    pub resends_after_aa: usize,
    /// Outbox messages that needed more than one attempt.
    pub retried_messages: usize,
}

#[derive(sqlx::FromRow)]
struct Row {
    capture_id: String,
    filler_number: String,
    control_id: String,
    state: String,
    ack_code: Option<String>,
    acked_attempts: i64,
    attempts: i32,
}

/// Runs every check; panics on the first that fails.
pub async fn verify(w: &World) -> Tally {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT d.capture_id, m.filler_number, m.control_id, m.state, m.ack_code, m.attempts, \
           (SELECT count(*) FROM hl7_attempts a WHERE a.message_id = m.id AND a.outcome = 'acked') \
             AS acked_attempts \
         FROM decisions d LEFT JOIN hl7_messages m ON m.decision_id = d.id",
    )
    .fetch_all(&w.pool)
    .await
    .unwrap();
    let published: BTreeSet<&str> = w.captures.iter().map(|(id, _)| id.as_str()).collect();
    let decided: Vec<&str> = rows.iter().map(|r| r.capture_id.as_str()).collect();
    let distinct: BTreeSet<&str> = decided.iter().copied().collect();
    assert_eq!(
        decided.len(),
        distinct.len(),
        "a capture has two outbox rows"
    );
    assert_eq!(
        distinct, published,
        "decided captures differ from published"
    );
    let decisions: i64 = sqlx::query_scalar("SELECT count(*) FROM decisions")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(decisions as usize, published.len(), "duplicate decisions");
    let mut by_filler: HashMap<&str, &Row> = HashMap::new();
    let mut t = Tally {
        decisions: decisions as usize,
        ..Tally::default()
    };
    for r in &rows {
        assert_eq!(r.state, "acked", "{}: outbox state", r.capture_id);
        assert_eq!(r.ack_code.as_deref(), Some("AA"), "{}", r.capture_id);
        assert_eq!(r.acked_attempts, 1, "{}: acked attempts", r.capture_id);
        t.retried_messages += usize::from(r.attempts > 1);
        assert!(by_filler.insert(&r.filler_number, r).is_none());
    }
    // The LIS side: one distinct MSH-10 per filler number, the outbox's, acknowledged.
    let mut seen: HashMap<String, (String, bool)> = HashMap::new();
    for line in lis_lines(&w.record_path()) {
        let (control, filler, answer) = (
            line.control.as_str(),
            line.filler.as_str(),
            line.answer.as_str(),
        );
        let row = by_filler
            .get(filler)
            .unwrap_or_else(|| panic!("LIS received filler {filler} that no decision has"));
        assert_eq!(
            row.control_id, control,
            "LIS received a second distinct message for capture {}",
            row.capture_id
        );
        t.lis_received += 1;
        match seen.get_mut(control) {
            Some((_, acked)) => {
                t.resends += 1;
                t.resends_after_aa += usize::from(*acked);
                *acked |= answer == "AA";
            }
            None => {
                seen.insert(control.to_string(), (filler.to_string(), answer == "AA"));
            }
        }
    }
    assert_eq!(
        seen.len(),
        rows.len(),
        "the LIS did not receive every result"
    );
    assert!(
        seen.values().all(|(_, acked)| *acked),
        "a result the LIS never acknowledged"
    );
    let report = iari::audit::verify(&w.pool).await.unwrap();
    assert!(report.first_break.is_none(), "audit chain broken");
    assert_eq!(report.decisions as usize, published.len());
    t
}

/// Every check, the queues empty and removed, the database dropped; prints the drill's numbers.
pub async fn finish(w: World, drill: &str, extra: &str) -> Tally {
    let t = verify(&w).await;
    let (left, dead) = w.queue_depths().await;
    assert_eq!(left, 0, "captures left in the queue");
    assert_eq!(dead, 0, "captures dead-lettered");
    println!(
        "DRILL {drill}: {} captures, {} decisions, LIS received {} ({} resends of one MSH-10, \
         {} of them after the LIS had answered AA), {} outbox messages needed >1 attempt, \
         0 dead-lettered, audit chain intact; {extra}",
        w.captures.len(),
        t.decisions,
        t.lis_received,
        t.resends,
        t.resends_after_aa,
        t.retried_messages
    );
    w.finish().await;
    t
}
