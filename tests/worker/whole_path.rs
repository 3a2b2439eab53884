//! The whole path in one test: captures published to RabbitMQ, the worker's consumer (ONNX
//! Runtime, PostgreSQL) and HL7 sender (outbox, MLLP) running in this process, the kit's fake
//! LIS answering with ACKs written by hand, and the delivery state acked. The grades are those
//! the Python reference recorded for the golden images, not whatever the models say today.

use crate::common::event;
use crate::harness::{TestWorker, golden};
use iari::app::Task;
use iari_kit::lis::{FakeLis, msh10};
use serde_json::json;
use std::collections::HashMap;

/// A decision and its result message, as stored.
#[derive(Debug, sqlx::FromRow)]
struct Delivered {
    capture_id: String,
    grade: String,
    needs_review: bool,
    control_id: String,
    result_status: String,
    state: String,
    ack_code: Option<String>,
    attempts: i32,
}

/// OBX-5 codes of `config/default.toml`'s `[lis.grades]`, written out here.
fn grade_code(grade: &str) -> &'static str {
    match grade {
        "neg" => "NEG",
        "1+" => "1+",
        "2+" => "2+",
        "3+" => "3+",
        "4+" => "4+",
        other => panic!("not a grade: {other}"),
    }
}

/// (OBX-5 code, OBX-11) of the graded OBX (OBX-3 `ABSCR`, the default test code), read by hand.
fn graded_obx(frame: &[u8]) -> (String, String) {
    let text = std::str::from_utf8(frame).unwrap();
    let obx: Vec<&str> = text
        .split('\r')
        .map(|seg| seg.split('|').collect::<Vec<_>>())
        .find(|f| f[0] == "OBX" && f[3].split('^').next() == Some("ABSCR"))
        .unwrap_or_else(|| panic!("no graded OBX in {text:?}"));
    let code = obx[5].split('^').next().unwrap().to_string();
    (code, obx[11].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_captures_reach_the_lis_with_their_golden_grades_and_are_acked() {
    // No script: the fake LIS answers every message with a hand-written AA.
    let lis = FakeLis::start(vec![]).await;
    let w = TestWorker::start_tasks(
        &[
            ("IARI__LIS__TRANSPORT", "mllp"),
            ("IARI__LIS__ADDR", &lis.addr),
            ("IARI__LIS__CONNECT_TIMEOUT_MS", "1000"),
            ("IARI__LIS__ACK_TIMEOUT_MS", "5000"),
            ("IARI__LIS__BACKOFF_INITIAL_MS", "50"),
            ("IARI__LIS__BACKOFF_MAX_MS", "500"),
        ],
        &[Task::Consumer, Task::Sender],
    )
    .await;
    // A unanimous image (final by the shipped release rule: unanimous and unflagged) and a
    // split one (3 of 5 votes in the reference: preliminary, needs review).
    let cases = [
        ("WP-UNANIMOUS", "g0-neg.png", "F"),
        ("WP-SPLIT", "g2-2p.png", "P"),
    ];
    let mut want = HashMap::new();
    for (capture, image, status) in cases {
        let (bytes, grade) = golden(image);
        w.put_file(image, &bytes);
        w.publish_json(capture, &event(capture, json!({ "path": image })))
            .await;
        want.insert(capture.to_string(), (grade, status));
    }
    assert_eq!(want["WP-UNANIMOUS"].0, "neg");
    assert_eq!(want["WP-SPLIT"].0, "1+", "the reference's split vote");

    w.wait_count(
        "SELECT count(*) FROM hl7_messages WHERE state = 'acked'",
        2,
        120,
    )
    .await;

    // The database: decision, delivery state and ACK per capture.
    let rows: Vec<Delivered> = sqlx::query_as(
        "SELECT d.capture_id, d.grade, d.needs_review, m.control_id, m.result_status, \
                m.state, m.ack_code, m.attempts \
         FROM decisions d JOIN hl7_messages m ON m.decision_id = d.id ORDER BY d.capture_id",
    )
    .fetch_all(&w.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let mut control_ids = HashMap::new();
    for r in rows {
        let capture = r.capture_id;
        let (want_grade, want_status) = &want[&capture];
        assert_eq!(&r.grade, want_grade, "{capture}");
        assert_eq!(r.needs_review, *want_status == "P", "{capture}");
        assert_eq!(&r.result_status, want_status, "{capture}");
        assert_eq!(
            (r.state.as_str(), r.ack_code.as_deref(), r.attempts),
            ("acked", Some("AA"), 1),
            "{capture}"
        );
        control_ids.insert(r.control_id, capture);
    }

    // The LIS's own record: each message once, carrying the grade and status above.
    let got = lis.received();
    assert_eq!(got.len(), 2);
    for frame in &got {
        let capture = control_ids
            .get(&msh10(frame))
            .unwrap_or_else(|| panic!("the LIS got a message IARI has no record of"));
        let (grade, status) = &want[capture];
        assert_eq!(
            graded_obx(frame),
            (grade_code(grade).to_string(), status.to_string()),
            "{capture}"
        );
    }
    assert_eq!(w.queue_depth().await, 0);
    assert_eq!(w.dead_letter_depth().await, 0);
    w.finish().await;
}
