//! Drill 12: plate QC is durable. Two workers share one queue and the plates' deadlines. One is
//! SIGKILLed while a plate's patient results are held for its controls; the controls then
//! arrive (`iari publish --role`) and the survivor releases the plate. A second plate whose
//! controls never come is settled `missing` exactly once, though two workers watch its deadline.

use crate::world::{Services, World};
use std::time::{Duration, Instant};

const PATIENTS: usize = 24;

async fn plate_state(w: &World, plate: &str) -> String {
    sqlx::query_scalar("SELECT qc_state FROM plates WHERE plate_id = $1")
        .bind(plate)
        .fetch_one(&w.pool)
        .await
        .unwrap()
}

async fn wait_plate(w: &World, plate: &str, state: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while plate_state(w, plate).await != state {
        assert!(
            Instant::now() < deadline,
            "plate {plate} not {state} after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Messages of `plate`'s decisions: (total, with status `status`, acked).
async fn messages(w: &World, plate: &str, status: &str) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE m.result_status = $2), \
           count(*) FILTER (WHERE m.state = 'acked') \
         FROM hl7_messages m JOIN decisions d ON d.id = m.decision_id \
         JOIN captures c ON c.capture_id = d.capture_id WHERE c.plate_id = $1",
    )
    .bind(plate)
    .bind(status)
    .fetch_one(&w.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_12_a_waiting_plate_outlives_a_killed_worker() {
    let mut w = World::fleet(&Services::shared(), PATIENTS).await;
    w.set_all(&[("IARI__QC__MODE", "plate"), ("IARI__QC__WAIT_S", "3600")]);
    let images = w.dir.path().join("images");
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx/models/golden");
    for (from, to) in [("g0-neg.png", "ctl-neg.png"), ("g4-4p.png", "ctl-pos.png")] {
        std::fs::copy(golden.join(from), w.dir.path().join(to)).unwrap();
    }
    let (neg, pos) = (
        w.dir.path().join("ctl-neg.png"),
        w.dir.path().join("ctl-pos.png"),
    );
    // The control images sit beside the image root: publish them inline.
    let a = w.worker("worker-a").await;
    let b = w.worker("worker-b").await;
    let img = images.to_str().unwrap();
    w.publish_to_end(&[img, "--plate", "PLT-A", "--prefix", "A"], "publish-a");
    w.wait_decided(PATIENTS, 300).await;
    assert_eq!(
        messages(&w, "PLT-A", "F").await.0,
        0,
        "held for the controls"
    );
    assert_eq!(plate_state(&w, "PLT-A").await, "waiting");
    a.kill();
    for (file, role) in [(&neg, "negative_control"), (&pos, "positive_control")] {
        let file = file.to_str().unwrap();
        w.publish_to_end(
            &[
                file, "--inline", "--plate", "PLT-A", "--role", role, "--prefix", role,
            ],
            role,
        );
    }
    w.wait_decided(PATIENTS + 2, 300).await;
    wait_plate(&w, "PLT-A", "passed", 60).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while messages(&w, "PLT-A", "F").await.2 < PATIENTS as i64 {
        assert!(Instant::now() < deadline, "PLT-A's results not all acked");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (total, _, _) = messages(&w, "PLT-A", "F").await;
    assert_eq!(
        total, PATIENTS as i64,
        "one result per patient, none for a control"
    );

    // Plate B's controls never come; a second worker joins the survivor, and the deadline is
    // brought forward (as the owner) instead of waiting an hour.
    let c = w.worker("worker-c").await;
    w.publish_to_end(&[img, "--plate", "PLT-B", "--prefix", "B"], "publish-b");
    w.wait_decided(2 * PATIENTS + 2, 300).await;
    assert_eq!(plate_state(&w, "PLT-B").await, "waiting");
    sqlx::query("UPDATE plates SET deadline = now() WHERE plate_id = 'PLT-B'")
        .execute(&w.pool)
        .await
        .unwrap();
    wait_plate(&w, "PLT-B", "missing", 30).await;
    let (total, preliminary, _) = messages(&w, "PLT-B", "P").await;
    assert_eq!((total, preliminary), (PATIENTS as i64, PATIENTS as i64));
    let settled = |name: &str| {
        w.log(name)
            .lines()
            .filter(|l| l.contains("plate QC settled") && l.contains("PLT-B"))
            .count()
    };
    assert_eq!(
        settled("worker-b") + settled("worker-c"),
        1,
        "settled once; worker-b's log:\n{}",
        w.log("worker-b")
    );
    w.assert_stops(b, 60);
    w.assert_stops(c, 60);
    println!(
        "DRILL 12: {PATIENTS} patient results held through a SIGKILL and released on valid \
         controls; a plate without controls settled missing once by two workers"
    );
    w.finish().await;
}
