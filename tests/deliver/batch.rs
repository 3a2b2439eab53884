//! The batching sender (`Sender::step_batch`): one claim, one payload commit and one outcome
//! commit per batch, still one message at a time on the wire, the ACK table applied per message,
//! and a batch that stops early leaving the rest queued in order.

use crate::common::*;
use iari::deliver::{Sender, Step};
use std::collections::HashMap;
use std::time::Duration;

/// Seeds `n` decisions with distinct filler numbers; returns their outbox rows' ids.
async fn seed(pool: &sqlx::PgPool, n: usize) -> Vec<i64> {
    for i in 0..n {
        seed_decision(pool, &format!("CAP-{i}"), "neg", ["neg"; 5], false).await;
    }
    messages(pool).await.iter().map(|m| m.id).collect()
}

/// Pending rows that some sender still claims (a stopped batch must release its unsent ones).
async fn claimed(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM hl7_messages WHERE claimed_by IS NOT NULL")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn one_batch_applies_the_ack_table_per_message_in_order() {
    let pool = fresh_db().await;
    let ids = seed(&pool, 5).await;
    let lis = FakeLis::start(vec![
        Reply::Ack("AA", None, ""),
        Reply::Ack("AE", Some(101), "PID-3 missing"),
        Reply::Ack("AR", Some(207), "busy"),
        Reply::Raw(vec![
            "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20261126133005||ACK^R01^ACK|C1|P|2.5.1\rMSA|CA|{id}\r",
            "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20261126133006||ACK^R01^ACK|C2|P|2.5.1\rMSA|AA|{id}\r",
        ]),
        Reply::Ack("AA", None, ""),
    ])
    .await;
    let settings = lis_settings(&lis.addr);
    assert!(settings.send_batch >= 5, "the default batch holds all five");
    let mut s = Sender::new(pool.clone(), &settings).unwrap();
    let steps = s.step_batch().await.unwrap();
    assert_eq!(
        steps,
        vec![
            Step::Delivered { id: ids[0] },
            Step::Parked { id: ids[1] },
            Step::Retrying {
                id: ids[2],
                reason: "ar",
                after: Duration::from_millis(10)
            },
            Step::Delivered { id: ids[3] },
            Step::Delivered { id: ids[4] },
        ],
        "AE and AR do not stop the batch"
    );
    let rows = messages(&pool).await;
    let sent = lis.control_ids();
    let want: Vec<String> = rows.iter().map(|m| m.control_id.clone()).collect();
    assert_eq!(sent, want, "one send per message, in claim order");
    for (m, frame) in rows.iter().zip(lis.received()) {
        assert_eq!(
            m.payload.as_deref().unwrap(),
            frame.as_ref(),
            "stored bytes sent"
        );
    }
    let states: Vec<&str> = rows.iter().map(|m| m.state.as_str()).collect();
    assert_eq!(states, vec!["acked", "failed", "pending", "acked", "acked"]);
    let outcomes = [
        ("acked", "AA"),
        ("error_ae", "AE"),
        ("rejected_ar", "AR"),
        // Enhanced mode: CA, then the application ACK, which is what is stored.
        ("acked", "AA"),
        ("acked", "AA"),
    ];
    for (id, (outcome, code)) in ids.iter().zip(outcomes) {
        assert_eq!(
            attempts(&pool, *id).await,
            vec![(1, outcome.to_string(), Some(code.to_string()))]
        );
    }
    assert_eq!(claimed(&pool).await, 0);
    // Each attempt carries its own send's times, not the batch's recording time.
    let times: Vec<(i64, bool)> = sqlx::query_as(
        "SELECT a.message_id, a.started_at <= a.finished_at \
           AND (m.acked_at IS NULL OR m.acked_at = a.finished_at) \
           AND a.finished_at <= coalesce(lead(a.started_at) OVER (ORDER BY a.message_id), 'infinity') \
         FROM hl7_attempts a JOIN hl7_messages m ON m.id = a.message_id ORDER BY a.message_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(times, ids.iter().map(|id| (*id, true)).collect::<Vec<_>>());
}

/// A timeout or a dropped connection stops the batch: that message retries after backoff, the
/// unsent rest is released unsent and goes next, in order.
#[tokio::test]
async fn a_transport_error_stops_the_batch_and_the_rest_go_next_in_order() {
    for (reply, reason) in [(Reply::Drop, "io"), (Reply::Silence, "timeout")] {
        let pool = fresh_db().await;
        let ids = seed(&pool, 4).await;
        let lis = FakeLis::start(vec![Reply::Ack("AA", None, ""), reply]).await;
        let mut settings = lis_settings(&lis.addr);
        // The failed message stays in backoff for as long as this test needs.
        settings.backoff_initial_ms = 3_600_000;
        settings.backoff_max_ms = 3_600_000;
        let mut s = Sender::new(pool.clone(), &settings).unwrap();
        let after = Duration::from_secs(3600);
        assert_eq!(
            s.step_batch().await.unwrap(),
            vec![
                Step::Delivered { id: ids[0] },
                Step::Retrying {
                    id: ids[1],
                    reason,
                    after
                },
            ],
            "{reason}"
        );
        let rows = messages(&pool).await;
        assert_eq!(
            rows.iter()
                .map(|m| (m.state.as_str(), m.attempts))
                .collect::<Vec<_>>(),
            vec![("acked", 1), ("pending", 1), ("pending", 0), ("pending", 0)],
            "{reason}"
        );
        assert!(attempts(&pool, ids[2]).await.is_empty(), "{reason}");
        assert_eq!(claimed(&pool).await, 0, "{reason}: unsent claims released");
        assert_eq!(
            s.step_batch().await.unwrap(),
            vec![
                Step::Delivered { id: ids[2] },
                Step::Delivered { id: ids[3] },
            ],
            "{reason}"
        );
        let want: Vec<String> = rows.iter().map(|m| m.control_id.clone()).collect();
        assert_eq!(lis.control_ids(), want, "{reason}");
    }
}

#[tokio::test]
async fn a_configuration_error_stops_the_batch_and_keeps_the_rest_queued() {
    let pool = fresh_db().await;
    let ids = seed(&pool, 3).await;
    let lis = FakeLis::start(vec![
        Reply::Ack("AA", None, ""),
        Reply::Ack("AR", Some(200), "unsupported"),
    ])
    .await;
    let mut s = Sender::new(pool.clone(), &lis_settings(&lis.addr)).unwrap();
    assert_eq!(
        s.step_batch().await.unwrap(),
        vec![Step::Delivered { id: ids[0] }, Step::Halted { id: ids[1] }]
    );
    assert!(s.is_halted());
    assert!(s.step_batch().await.unwrap().is_empty(), "no sends after");
    let rows = messages(&pool).await;
    let states: Vec<&str> = rows.iter().map(|m| m.state.as_str()).collect();
    assert_eq!(states, vec!["acked", "pending", "pending"]);
    assert_eq!(attempts(&pool, ids[1]).await[0].1, "config_error");
    assert!(attempts(&pool, ids[2]).await.is_empty());
    assert_eq!(claimed(&pool).await, 0, "unsent claims released");
    assert_eq!(lis.received().len(), 2);
}

/// Two senders with batches of one (the granularity of `Sender::step`) on one outbox.
#[tokio::test]
async fn two_senders_send_each_message_exactly_once() {
    two_senders_send_each_message_once_in_order(24, 1).await;
}

#[tokio::test]
async fn two_batching_senders_send_each_message_exactly_once_in_order() {
    two_senders_send_each_message_once_in_order(40, 4).await;
}

/// Two senders (batches of `send_batch`) on one outbox of `n` decisions, with a correction
/// queued behind every fourth original: every message is sent exactly once, acked on its first
/// attempt, and no correction overtakes its original.
async fn two_senders_send_each_message_once_in_order(n: usize, send_batch: u32) {
    let pool = fresh_db().await;
    for i in 0..n {
        let d = seed_decision(&pool, &format!("CAP-{i}"), "neg", ["neg"; 5], false).await;
        if i % 4 == 0 {
            seed_review(&pool, d, "1+", "C").await;
        }
    }
    let lis = FakeLis::start(vec![]).await;
    let mut settings = lis_settings(&lis.addr);
    settings.send_batch = send_batch;
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (pool, settings) = (pool.clone(), settings.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Sender::new(pool.clone(), &settings).unwrap();
            let mut delivered = 0;
            for _ in 0..2000 {
                let steps = s.step_batch().await.unwrap();
                for step in &steps {
                    assert!(matches!(step, Step::Delivered { .. }), "{step:?}");
                }
                delivered += steps.len();
                if steps.is_empty() {
                    if messages(&pool).await.iter().all(|m| m.state != "pending") {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            delivered
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let rows = messages(&pool).await;
    assert_eq!(total, rows.len());
    let sent = lis.control_ids();
    assert_eq!(sent.len(), rows.len(), "no message sent twice");
    let pos: HashMap<&str, usize> = sent
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    assert_eq!(pos.len(), rows.len());
    assert!(rows.iter().all(|m| m.state == "acked" && m.attempts == 1));
    // Per filler number, in id order: the original, then its correction.
    let by_filler: Vec<(String, String)> =
        sqlx::query_as("SELECT filler_number, control_id FROM hl7_messages ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut first: HashMap<&str, &str> = HashMap::new();
    let mut corrections = 0;
    for (filler, control_id) in &by_filler {
        match first.get(filler.as_str()) {
            None => {
                first.insert(filler, control_id);
            }
            Some(orig) => {
                corrections += 1;
                assert!(
                    pos[orig] < pos[control_id.as_str()],
                    "correction overtook its original"
                );
            }
        }
    }
    assert_eq!(corrections, n.div_ceil(4));
}

/// A lease taken over while its message was on the wire: that outcome is not recorded (the new
/// owner resends the same bytes), the rest of the batch is.
#[tokio::test]
async fn an_outcome_whose_lease_was_taken_over_is_not_recorded() {
    let pool = fresh_db().await;
    let ids = seed(&pool, 2).await;
    let lis = FakeLis::start(vec![
        Reply::DelayedAa(Duration::from_millis(800)),
        Reply::Ack("AA", None, ""),
    ])
    .await;
    let mut s = Sender::new(pool.clone(), &lis_settings(&lis.addr)).unwrap();
    let batch = tokio::spawn(async move { s.step_batch().await.unwrap() });
    // Once the first message is on the wire, another sender takes its lease over.
    let t0 = std::time::Instant::now();
    while lis.received().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10), "nothing sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sqlx::query("UPDATE hl7_messages SET claimed_by = 'other' WHERE id = $1")
        .bind(ids[0])
        .execute(&pool)
        .await
        .unwrap();
    let steps = batch.await.unwrap();
    assert_eq!(
        steps,
        vec![
            Step::LeaseLost { id: ids[0] },
            Step::Delivered { id: ids[1] }
        ]
    );
    let rows = messages(&pool).await;
    let states: Vec<&str> = rows.iter().map(|m| m.state.as_str()).collect();
    assert_eq!(states, vec!["pending", "acked"]);
    assert_eq!(attempts(&pool, ids[0]).await, vec![]);
    assert_eq!(
        attempts(&pool, ids[1]).await,
        vec![(1, "acked".to_string(), Some("AA".to_string()))]
    );
    let owner: Option<String> =
        sqlx::query_scalar("SELECT claimed_by FROM hl7_messages WHERE id = $1")
            .bind(ids[0])
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        owner.as_deref(),
        Some("other"),
        "the new owner's lease stands"
    );
}
