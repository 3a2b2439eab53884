//! Plate QC (release.md) on real services: the worker in this process, captures published to
//! RabbitMQ with `plate.role`, decisions and the outbox in PostgreSQL. The control images are
//! golden images whose grades the Python reference recorded (g0-neg: neg, g4-4p: 4+), so a
//! control's verdict does not depend on what this code decides.

use crate::common::event;
use crate::harness::{TestWorker, golden};
use iari::app::Task;
use serde_json::{Value, json};
use std::time::Duration;

const PLATE: &str = "PLT0042";

/// A worker with plate QC on (`wait_s` seconds), the golden images under its image root. It
/// logs in as a member of `iari_worker` only, so the grants QC needs are the ones tested.
async fn worker(wait_s: &str, tasks: &[Task], extra: &[(&str, &str)]) -> TestWorker {
    let mut all = vec![("IARI__QC__MODE", "plate"), ("IARI__QC__WAIT_S", wait_s)];
    all.extend_from_slice(extra);
    let w = TestWorker::start_as(Some("iari_worker"), &all, tasks).await;
    for g in ["g0-neg.png", "g4-4p.png", "g3-3p.png", "g1-1p.png"] {
        let (bytes, _) = golden(g);
        w.put_file(g, &bytes);
    }
    w
}

/// A capture of `image` in `well` of the plate with `role` (none: a patient, as v1 allows).
fn well(id: &str, well: &str, image: &str, role: Option<&str>) -> Value {
    let mut e = event(id, json!({ "path": image }));
    e["plate"] = json!({ "id": PLATE, "well": well });
    if let Some(r) = role {
        e["plate"]["role"] = json!(r);
    }
    e
}

async fn publish(w: &TestWorker, events: &[Value]) {
    for e in events {
        w.publish_json(e["capture_id"].as_str().unwrap(), e).await;
    }
}

fn patients(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| well(&format!("P{i}"), &format!("A{}", i + 1), "g3-3p.png", None))
        .collect()
}

fn negative_control(id: &str, image: &str) -> Value {
    well(id, "H11", image, Some("negative_control"))
}

fn positive_control(id: &str, image: &str) -> Value {
    well(id, "H12", image, Some("positive_control"))
}

/// (capture id, result status) of every outbox message, in message order.
async fn messages(w: &TestWorker) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT d.capture_id, m.result_status FROM hl7_messages m \
         JOIN decisions d ON d.id = m.decision_id ORDER BY m.id",
    )
    .fetch_all(&w.pool)
    .await
    .unwrap()
}

async fn plate_state(w: &TestWorker) -> (String, Option<String>) {
    sqlx::query_as("SELECT qc_state, detail FROM plates WHERE plate_id = $1")
        .bind(PLATE)
        .fetch_one(&w.pool)
        .await
        .unwrap()
}

async fn wait_plate(w: &TestWorker, state: &str, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if plate_state(w).await.0 == state {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "plate still {:?}, expected {state}",
            plate_state(w).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_controls_release_the_plate_and_controls_never_reach_the_lis() {
    let w = worker("120", &[Task::Consumer], &[]).await;
    publish(&w, &patients(3)).await;
    w.wait_decisions(3, 120).await;
    // Decided and committed, but held: the plate waits for its controls, and nothing of it is
    // on the worklist (no one could sign it yet).
    assert_eq!(messages(&w).await, vec![]);
    assert_eq!(plate_state(&w).await.0, "waiting");
    assert_eq!(w.count("SELECT count(*) FROM review_queue").await, 0);
    publish(
        &w,
        &[
            negative_control("NC", "g0-neg.png"),
            positive_control("PC", "g4-4p.png"),
        ],
    )
    .await;
    w.wait_decisions(5, 120).await;
    wait_plate(&w, "passed", 30).await;
    let sent = messages(&w).await;
    let ids: Vec<&str> = sent.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(ids, vec!["P0", "P1", "P2"], "the patients, and no control");
    assert!(sent.iter().all(|(_, s)| s == "F" || s == "P"));
    let preliminary = sent.iter().filter(|(_, s)| s == "P").count() as i64;
    assert_eq!(
        w.count("SELECT count(*) FROM review_queue").await,
        preliminary,
        "the released results that need review joined the worklist"
    );
    assert_eq!(
        w.count(
            "SELECT count(*) FROM review_queue q JOIN decisions d ON d.id = q.decision_id \
             WHERE d.capture_id IN ('NC', 'PC')"
        )
        .await,
        0,
        "controls are not on the worklist"
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_negative_control_withholds_the_plate() {
    let w = worker("120", &[Task::Consumer], &[]).await;
    publish(&w, &patients(2)).await;
    // The negative control reads 4+: the plate fails, whatever the positive one says.
    publish(
        &w,
        &[
            positive_control("PC", "g4-4p.png"),
            negative_control("NC", "g4-4p.png"),
        ],
    )
    .await;
    w.wait_decisions(4, 120).await;
    wait_plate(&w, "failed", 30).await;
    let (_, detail) = plate_state(&w).await;
    assert_eq!(
        detail.as_deref(),
        Some("negative_control H11 read 4+, expected neg")
    );
    assert_eq!(messages(&w).await, vec![], "nothing of the plate released");
    assert_eq!(w.count("SELECT count(*) FROM review_queue").await, 0);
    // A patient decided after the failure carries the flag and is withheld too.
    publish(&w, &[well("LATE", "B1", "g1-1p.png", None)]).await;
    w.wait_decisions(5, 120).await;
    let flags: Vec<String> =
        sqlx::query_scalar("SELECT flags FROM decisions WHERE capture_id = 'LATE'")
            .fetch_one(&w.pool)
            .await
            .unwrap();
    assert!(flags.contains(&"qc_failed".to_string()), "{flags:?}");
    assert_eq!(messages(&w).await, vec![]);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_failing_after_release_withdraws_what_went_out() {
    let dir = tempfile::tempdir().unwrap();
    let lis_dir = dir.path().to_str().unwrap().to_string();
    let w = worker(
        "120",
        &[Task::Consumer, Task::Sender],
        &[
            ("IARI__LIS__TRANSPORT", "file"),
            ("IARI__LIS__DIR", &lis_dir),
        ],
    )
    .await;
    publish(&w, &patients(2)).await;
    publish(
        &w,
        &[
            negative_control("NC", "g0-neg.png"),
            positive_control("PC", "g4-4p.png"),
        ],
    )
    .await;
    w.wait_decisions(4, 120).await;
    wait_plate(&w, "passed", 30).await;
    // A second negative control, read late and positive: the plate fails after its release.
    publish(
        &w,
        &[well("NC2", "H10", "g3-3p.png", Some("negative_control"))],
    )
    .await;
    w.wait_decisions(5, 120).await;
    wait_plate(&w, "failed", 30).await;
    let sent = messages(&w).await;
    let withdrawals: Vec<&str> = sent
        .iter()
        .filter(|(_, s)| s == "X")
        .map(|(c, _)| c.as_str())
        .collect();
    assert_eq!(withdrawals, vec!["P0", "P1"], "{sent:?}");
    // On the wire: OBX-11 is qc.withdraw_status (X), with the plate's reason in an NTE.
    w.wait_count(
        "SELECT count(*) FROM hl7_messages WHERE result_status = 'X' AND state = 'acked'",
        2,
        60,
    )
    .await;
    let payloads: Vec<String> = sqlx::query_scalar(
        "SELECT convert_from(payload, 'UTF8') FROM hl7_messages WHERE result_status = 'X'",
    )
    .fetch_all(&w.pool)
    .await
    .unwrap();
    for p in &payloads {
        let obx: Vec<&str> = p
            .split('\r')
            .map(|seg| seg.split('|').collect::<Vec<_>>())
            .find(|f| f[0] == "OBX" && f[3].starts_with("ABSCR^"))
            .unwrap_or_else(|| panic!("no graded OBX in {p:?}"));
        assert_eq!(obx[11], "X", "{obx:?}");
        assert!(
            p.contains("Plate PLT0042 failed quality control: negative_control H10 read 3+"),
            "{p}"
        );
    }
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_controls_by_the_deadline_sends_the_results_preliminary_for_review() {
    let w = worker("2", &[Task::Consumer], &[]).await;
    publish(&w, &patients(2)).await;
    w.wait_decisions(2, 120).await;
    wait_plate(&w, "missing", 30).await;
    let (_, detail) = plate_state(&w).await;
    assert_eq!(
        detail.as_deref(),
        Some("no negative_control or positive_control decided within qc.wait_s")
    );
    let sent = messages(&w).await;
    assert_eq!(
        sent,
        vec![("P0".into(), "P".into()), ("P1".into(), "P".into())],
        "preliminary, whatever the vote"
    );
    assert_eq!(
        w.count("SELECT count(*) FROM review_queue").await,
        2,
        "each needs a person"
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_reagent_is_flagged_and_never_final() {
    let w = worker("120", &[Task::Consumer], &[("IARI__QC__MODE", "off")]).await;
    let mut e = well("OLD", "A1", "g4-4p.png", None);
    e["reagent"] = json!({ "lot": "RS-24-118", "expires": "2026-11-25", "cell": "II" });
    let mut fresh = well("NEW", "A2", "g4-4p.png", None);
    fresh["reagent"] = json!({ "lot": "RS-25-001", "expires": "2027-03-31" });
    publish(&w, &[e, fresh]).await;
    w.wait_decisions(2, 120).await;
    let rows: Vec<(String, Vec<String>, bool)> =
        sqlx::query_as("SELECT capture_id, flags, needs_review FROM decisions ORDER BY capture_id")
            .fetch_all(&w.pool)
            .await
            .unwrap();
    let old = rows.iter().find(|r| r.0 == "OLD").unwrap();
    assert!(
        old.1.contains(&"reagent_expired".to_string()) && old.2,
        "{old:?}"
    );
    let new = rows.iter().find(|r| r.0 == "NEW").unwrap();
    assert!(!new.1.contains(&"reagent_expired".to_string()), "{new:?}");
    let sent = messages(&w).await;
    assert!(sent.contains(&("OLD".into(), "P".into())), "{sent:?}");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_plate_survives_a_worker_restart() {
    let mut w = worker("4", &[Task::Consumer], &[]).await;
    publish(&w, &patients(2)).await;
    w.wait_decisions(2, 120).await;
    // Stopped while the plate waits, and down past its deadline.
    w.stop_worker().await;
    assert_eq!(plate_state(&w).await.0, "waiting");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        messages(&w).await,
        vec![],
        "nothing moves while no worker runs"
    );
    w.start_worker().await;
    wait_plate(&w, "missing", 30).await;
    assert_eq!(messages(&w).await.len(), 2);
    w.finish().await;
}
