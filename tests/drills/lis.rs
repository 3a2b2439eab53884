//! Fault drill 3, the LIS: while ~2,000 synthetic captures flow at a steady rate through a real
//! `iari worker` process to `iari lis-sim`, the LIS is down for 30 s, answers AE, answers AR, or
//! never answers. Afterwards every capture has exactly one decision and exactly one HL7 result
//! (one MSH-10) that the LIS acknowledged with AA (or, after AE, that is parked as failed and was
//! never resent), and nothing is left pending.

use crate::common::*;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Short timeouts and backoff so faults resolve within the drill; ACK timeout stays generous
/// enough that a loaded machine never mistakes a slow AA for silence.
fn lis_env(d: &mut Drill, addr: &str) {
    for (k, v) in [
        ("IARI__LIS__TRANSPORT", "mllp"),
        ("IARI__LIS__ADDR", addr),
        ("IARI__LIS__CONNECT_TIMEOUT_MS", "500"),
        ("IARI__LIS__ACK_TIMEOUT_MS", "2000"),
        ("IARI__LIS__BACKOFF_INITIAL_MS", "50"),
        ("IARI__LIS__BACKOFF_MAX_MS", "1000"),
    ] {
        d.set(k, v);
    }
}

/// Waits (bounded) for the publisher to finish, and checks it published everything.
fn publisher_done(mut p: Proc, d: &Drill) {
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(s) = p.exited() {
            break s;
        }
        assert!(Instant::now() < deadline, "publisher still running");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "publish failed: {}", d.log("publish.log"));
}

/// What every drill ends with. Returns the outbox and the LIS record for the drill's own checks.
async fn settled_checks(d: &Drill, n: usize) -> (Vec<Outbox>, HashMap<String, Vec<Received>>) {
    d.wait_settled(n as i64, 300).await;
    let n = n as i64;
    assert_eq!(d.count("SELECT count(*) FROM captures").await, n);
    assert_eq!(
        d.count("SELECT count(DISTINCT capture_id) FROM decisions")
            .await,
        n,
        "one decision per capture"
    );
    assert_eq!(d.count("SELECT count(*) FROM decisions").await, n);
    assert_eq!(d.dead_letters().await, 0, "nothing dead-lettered");
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
async fn with_faults(faults: &[&str]) -> (Drill, Vec<Outbox>, HashMap<String, Vec<Received>>) {
    let n = captures();
    let mut d = Drill::new(n).await;
    let (lis, addr) = d.lis_sim("127.0.0.1:0", faults);
    lis_env(&mut d, &addr);
    let worker = d.worker().await;
    publisher_done(d.publish("DRILL", rate()), &d);
    let (rows, record) = settled_checks(&d, n).await;
    attempts_match_answers(&rows, &record);
    assert!(
        worker.stop(60),
        "worker stops cleanly: {}",
        d.log("worker.log")
    );
    assert!(lis.stop(10));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lis_answering_ar_gets_the_same_message_again_until_aa() {
    let (d, rows, record) = with_faults(&["--ar", "every:7"]).await;
    let rejected = with_outcome(&rows, "rejected_ar");
    assert!(!rejected.is_empty());
    for m in rejected {
        assert_eq!(m.state, "acked", "{m:?}");
        let answers: Vec<_> = record[&m.control_id]
            .iter()
            .map(|l| l.answer.as_str())
            .collect();
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
    let timed_out = with_outcome(&rows, "timeout");
    assert!(!timed_out.is_empty());
    for m in timed_out {
        assert_eq!(m.state, "acked", "{m:?}");
        let answers: Vec<_> = record[&m.control_id]
            .iter()
            .map(|l| l.answer.as_str())
            .collect();
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
    let mut d = Drill::new(n).await;
    let (lis, addr) = d.lis_sim("127.0.0.1:0", &[]);
    lis_env(&mut d, &addr);
    let worker = d.worker().await;
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
            d.log("worker.log")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(lis.stop(10));
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
    let (lis, _) = d.lis_sim(&addr, &[]);
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
    assert!(
        worker.stop(60),
        "worker stops cleanly: {}",
        d.log("worker.log")
    );
    assert!(lis.stop(10));
    d.finish().await;
}
