//! Fault drill 3, the LIS: while ~2,000 synthetic captures flow at a steady rate through a real
//! `iari worker` process to `iari lis-sim`, the LIS is down for 30 s, answers AE, answers AR, or
//! never answers. Afterwards every capture has exactly one decision and exactly one HL7 result
//! (one MSH-10) that the LIS acknowledged with AA (or, after AE, that is parked as failed and was
//! never resent), and nothing is left pending.

use crate::proc::Proc;
use crate::records::{Outbox, Received, lis_record, outbox};
use crate::world::{Services, World, captures};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Publish rate of `iari publish` per second (`IARI_DRILL_RATE`, default 50).
fn rate() -> usize {
    std::env::var("IARI_DRILL_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// A world on the shared services whose LIS runs with `faults`. Short timeouts and backoff so
/// faults resolve within the drill; ACK timeout stays generous enough that a loaded machine
/// never mistakes a slow AA for silence.
async fn lis_world(n: usize, faults: &[&str]) -> World {
    let mut d = World::new(&Services::shared(), n).await;
    d.start_lis("127.0.0.1:0", faults);
    d.set_all(&[
        ("IARI__LIS__TRANSPORT", "mllp"),
        ("IARI__LIS__CONNECT_TIMEOUT_MS", "500"),
        ("IARI__LIS__ACK_TIMEOUT_MS", "2000"),
        ("IARI__LIS__BACKOFF_INITIAL_MS", "50"),
        ("IARI__LIS__BACKOFF_MAX_MS", "1000"),
    ]);
    d
}

/// Polls until `n` decisions exist and no outbox message is pending, or panics after `secs`.
async fn wait_settled(d: &World, n: i64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let decided = d.count("SELECT count(*) FROM decisions").await;
        let pending = d
            .count("SELECT count(*) FROM hl7_messages WHERE state = 'pending'")
            .await;
        if decided >= n && pending == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled after {secs} s: {decided} of {n} decided, {pending} pending\n{}",
            d.log("worker")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits (bounded) for the publisher to finish, and checks it published everything.
fn publisher_done(mut p: Proc, d: &World) {
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(s) = p.exited() {
            break s;
        }
        assert!(Instant::now() < deadline, "publisher still running");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "publish failed: {}", d.log("publish"));
}

/// What every drill ends with. Returns the outbox and the LIS record for the drill's own checks.
async fn settled_checks(d: &World, n: usize) -> (Vec<Outbox>, HashMap<String, Vec<Received>>) {
    wait_settled(d, n as i64, 300).await;
    let n = n as i64;
    assert_eq!(d.count("SELECT count(*) FROM captures").await, n);
    assert_eq!(
        d.count("SELECT count(DISTINCT capture_id) FROM decisions")
            .await,
        n,
        "one decision per capture"
    );
    assert_eq!(d.count("SELECT count(*) FROM decisions").await, n);
    assert_eq!(d.queue_depths().await.1, 0, "nothing dead-lettered");
    let rows = outbox(&d.pool).await;
    let record = lis_record(&d.record_path());
    assert_eq!(rows.len() as i64, n, "exactly one HL7 result per decision");
    let captures: HashSet<&str> = rows.iter().map(|m| m.capture_id.as_str()).collect();
    assert_eq!(captures.len() as i64, n, "every capture has its result");
    assert!(rows.iter().all(|m| m.state != "pending"), "nothing pending");
    let ours: HashMap<&str, &Outbox> = rows.iter().map(|m| (m.control_id.as_str(), m)).collect();
    for (id, lines) in &record {
        let m = ours
            .get(id.as_str())
            .unwrap_or_else(|| panic!("LIS got unknown MSH-10 {id}"));
        assert!(
            lines.iter().all(|l| l.filler == m.filler_number),
            "{id}: OBR-3 is not its filler number"
        );
    }
    let mut acked_by_lis = 0;
    for m in &rows {
        let lines = record
            .get(&m.control_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let answers: Vec<&str> = lines.iter().map(|l| l.answer.as_str()).collect();
        match m.state.as_str() {
            "acked" => {
                assert_eq!(m.ack_code.as_deref(), Some("AA"), "{m:?}");
                assert!(
                    answers.contains(&"AA"),
                    "{m:?} acked but the LIS never said AA: {answers:?}"
                );
                assert!(!answers.contains(&"AE"), "{m:?}: {answers:?}");
                assert_eq!(
                    m.outcomes.last().map(String::as_str),
                    Some("acked"),
                    "{m:?}"
                );
                acked_by_lis += 1;
            }
            "failed" => {
                // Parked after AE: sent once, answered AE once, never resent.
                assert_eq!(answers, ["AE"], "{m:?}");
                assert_eq!(
                    (m.ack_code.as_deref(), m.outcomes.as_slice()),
                    (Some("AE"), &["error_ae".to_string()][..])
                );
            }
            other => panic!("unexpected state {other}: {m:?}"),
        }
    }
    let distinct_aa = record
        .values()
        .filter(|l| l.iter().any(|r| r.answer == "AA"))
        .count();
    assert_eq!(
        distinct_aa, acked_by_lis,
        "one distinct MSH-10 acknowledged per acked result"
    );
    (rows, record)
}

/// With the LIS up throughout, every attempt reached it: the sender's attempt outcomes are the
/// LIS's answers, one for one, in order (same MSH-10 each time).
fn attempts_match_answers(rows: &[Outbox], record: &HashMap<String, Vec<Received>>) {
    for m in rows {
        let expected: Vec<&str> = record[&m.control_id]
            .iter()
            .map(|l| match l.answer.as_str() {
                "AA" => "acked",
                "AE" => "error_ae",
                "AR" => "rejected_ar",
                "-" => "timeout",
                other => panic!("answer {other}"),
            })
            .collect();
        assert_eq!(m.outcomes, expected, "{m:?}");
        assert_eq!(m.attempts as usize, expected.len(), "{m:?}");
    }
}

/// Runs one drill with the LIS faults given; returns after the checks common to all.
async fn with_faults(faults: &[&str]) -> (World, Vec<Outbox>, HashMap<String, Vec<Received>>) {
    let n = captures();
    let mut d = lis_world(n, faults).await;
    let worker = d.worker("worker").await;
    publisher_done(d.publish("DRILL", rate()), &d);
    let (rows, record) = settled_checks(&d, n).await;
    attempts_match_answers(&rows, &record);
    d.assert_stops(worker, 60);
    assert!(d.stop_lis());
    (d, rows, record)
}

fn with_outcome<'a>(rows: &'a [Outbox], outcome: &str) -> Vec<&'a Outbox> {
    rows.iter()
        .filter(|m| m.outcomes.iter().any(|o| o == outcome))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lis_answering_ae_parks_those_results_without_resending() {
    let (d, rows, _) = with_faults(&["--ae", "every:10"]).await;
    let parked = with_outcome(&rows, "error_ae");
    assert!(!parked.is_empty());
    assert!(parked.iter().all(|m| m.state == "failed"));
    let failed = d
        .count("SELECT count(*) FROM hl7_messages WHERE state = 'failed' AND ack_code = 'AE'")
        .await;
    assert_eq!(
        failed as usize,
        parked.len(),
        "parked state is visible in the outbox"
    );
    d.finish().await;
}

/// The LIS's answers to each message that had an attempt with `outcome` (there is at least one,
/// and each such message was acknowledged in the end).
fn answers_with<'a>(
    rows: &[Outbox],
    record: &'a HashMap<String, Vec<Received>>,
    outcome: &str,
) -> Vec<Vec<&'a str>> {
    let hit = with_outcome(rows, outcome);
    assert!(!hit.is_empty());
    hit.iter()
        .map(|m| {
            assert_eq!(m.state, "acked", "{m:?}");
            record[&m.control_id]
                .iter()
                .map(|l| l.answer.as_str())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lis_answering_ar_gets_the_same_message_again_until_aa() {
    let (d, rows, record) = with_faults(&["--ar", "every:7"]).await;
    for answers in answers_with(&rows, &record, "rejected_ar") {
        assert!(
            answers.len() >= 2 && answers.last() == Some(&"AA"),
            "{answers:?}"
        );
    }
    d.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lis_never_answering_gets_the_same_message_again_after_the_timeout() {
    let (d, rows, record) = with_faults(&["--silent", "every:150"]).await;
    for answers in answers_with(&rows, &record, "timeout") {
        assert_eq!(answers.first(), Some(&"-"), "{answers:?}");
        assert_eq!(
            answers.last(),
            Some(&"AA"),
            "resent with the same MSH-10: {answers:?}"
        );
    }
    d.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lis_down_for_30_s_while_captures_flow() {
    let n = captures();
    let mut d = lis_world(n, &[]).await;
    let worker = d.worker("worker").await;
    let publisher = d.publish("DRILL", rate());
    // Let a tenth of the results through, then take the LIS away.
    let deadline = Instant::now() + Duration::from_secs(300);
    while d
        .count("SELECT count(*) FROM hl7_messages WHERE state = 'acked'")
        .await
        < (n / 10) as i64
    {
        assert!(
            Instant::now() < deadline,
            "no results reached the LIS: {}",
            d.log("worker")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(d.stop_lis());
    let down_ms = chrono::Utc::now().timestamp_millis();
    let decided_before = d.count("SELECT count(*) FROM decisions").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let decided_during = d.count("SELECT count(*) FROM decisions").await;
    let pending = d
        .count("SELECT count(*) FROM hl7_messages WHERE state = 'pending'")
        .await;
    assert!(
        decided_during > decided_before,
        "captures keep being decided while the LIS is down"
    );
    assert!(pending > 0, "results wait in the outbox");
    let up_ms = chrono::Utc::now().timestamp_millis();
    d.start_lis(&d.lis_addr(), &[]);
    publisher_done(publisher, &d);
    let (rows, record) = settled_checks(&d, n).await;
    assert!(
        !with_outcome(&rows, "io_error").is_empty(),
        "the sender saw the outage"
    );
    assert!(rows.iter().all(|m| m.state == "acked"));
    let during: Vec<_> = record
        .values()
        .flatten()
        .filter(|l| l.at_ms > down_ms && l.at_ms < up_ms)
        .collect();
    assert!(during.is_empty(), "the LIS was really down: {during:?}");
    d.assert_stops(worker, 60);
    assert!(d.stop_lis());
    d.finish().await;
}
