//! End to end through RabbitMQ, ONNX Runtime and PostgreSQL: the happy path, every bad-input
//! row of `capture-event.md`, and redelivery idempotency.

use crate::common::event;
use crate::harness::{TestWorker, golden, http_get, sample};
use base64::Engine as _;
use iari::domain::Sha256Digest;
use serde_json::json;
use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_path_and_inline_with_provenance_and_http() {
    let w = TestWorker::start(&[]).await;
    // Golden images: the Python reference recorded the grade each must get.
    let (bytes, path_grade) = golden("g0-neg.png");
    let (inline, inline_grade) = golden("g4-4p.png");
    assert_eq!((path_grade.as_str(), inline_grade.as_str()), ("neg", "4+"));
    w.put_file("2026/11/26/a.png", &bytes);
    let sha = Sha256Digest::of(&bytes).to_hex();
    w.publish_json(
        "OK-PATH",
        &event(
            "OK-PATH",
            json!({"path": "2026/11/26/a.png", "sha256": sha}),
        ),
    )
    .await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&inline);
    w.publish_json(
        "OK-INLINE",
        &event(
            "OK-INLINE",
            json!({"data_base64": b64, "media_type": "image/png"}),
        ),
    )
    .await;
    w.wait_decisions(2, 120).await;
    let (grade, models, runtime, worker, timings): (String, serde_json::Value, serde_json::Value, serde_json::Value, serde_json::Value) =
        sqlx::query_as("SELECT grade, models, runtime, worker, timings FROM decisions WHERE capture_id = 'OK-PATH'")
            .fetch_one(&w.pool)
            .await
            .unwrap();
    assert_eq!(grade, path_grade);
    let inline_got: String =
        sqlx::query_scalar("SELECT grade FROM decisions WHERE capture_id = 'OK-INLINE'")
            .fetch_one(&w.pool)
            .await
            .unwrap();
    assert_eq!(inline_got, inline_grade);
    assert_eq!(models.as_array().unwrap().len(), 5);
    assert!(models[0]["sha256"].as_str().unwrap().len() == 64);
    assert_eq!(runtime["provider"], "CPUExecutionProvider");
    assert!(runtime["preprocessing"].is_string());
    assert_eq!(worker["version"], env!("CARGO_PKG_VERSION"));
    assert!(timings["batch_size"].as_u64().unwrap() >= 1);
    let stored: Vec<u8> = sqlx::query_scalar("SELECT bytes FROM images i JOIN captures c ON c.image_sha256 = i.sha256 WHERE c.capture_id = 'OK-PATH'")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(stored, bytes);
    assert_eq!(
        w.count("SELECT count(*) FROM hl7_messages WHERE state = 'pending'")
            .await,
        2
    );
    let addr = w.handle.as_ref().unwrap().http_addr.unwrap();
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    let (code, body) = http_get(addr, "/readyz").await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("iari_captures_classified_total"), "{body}");
    w.finish().await;
}

/// A PNG whose header claims 5000 × 1 pixels: over the 4096 width limit, tiny on disk.
fn wide_png() -> Vec<u8> {
    let img = image::RgbImage::new(5000, 1);
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_outcome_and_the_worker_keeps_working() {
    // Alone in its own process, so that the process-wide retry counter counts only this test.
    if !iari_kit::alone::in_own_process(
        module_path!(),
        "every_bad_input_gets_its_outcome_and_the_worker_keeps_working",
    ) {
        return;
    }
    let retried = || {
        iari::metrics::metrics()
            .captures_retried
            .with_label_values(&["image_missing"])
            .get()
    };
    let retried0 = retried();
    let w = TestWorker::start(&[("IARI__IMAGES__MAX_BYTES", "100000")]).await;
    let good = sample("2+/2p-000.png");
    w.put_file("good.png", &good);
    w.put_file("big.png", &vec![0u8; 150_000]);
    w.put_file("wide.png", &wide_png());
    w.put_file("trunc.png", &good[..good.len() / 2]);
    w.put_file("noise.png", b"this is not an image at all");
    let outside = w
        .root
        .path()
        .parent()
        .unwrap()
        .join(format!("outside-{}.png", uuid::Uuid::new_v4()));
    std::fs::write(&outside, &good).unwrap();
    std::os::unix::fs::symlink(&outside, w.root.path().join("link.png")).unwrap();
    let p = |path: &str| json!({ "path": path });
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("B-NOTJSON", b"{ not json".to_vec(), "invalid_event"),
        (
            "B-NOTUTF8",
            b"{\"schema\": \"\xff\xfe\"}".to_vec(),
            "invalid_event",
        ),
        (
            "B-SCHEMA",
            serde_json::to_vec(&{
                let mut e = event("B-SCHEMA", p("good.png"));
                e["schema"] = json!("iari.capture.v9");
                e
            })
            .unwrap(),
            "invalid_event",
        ),
        (
            "B-MISSING",
            serde_json::to_vec(&{
                let mut e = event("B-MISSING", p("good.png"));
                e.as_object_mut().unwrap().remove("specimen");
                e
            })
            .unwrap(),
            "invalid_event",
        ),
        (
            "B-WELL",
            serde_json::to_vec(&{
                let mut e = event("B-WELL", p("good.png"));
                e["plate"]["well"] = json!("Z99");
                e
            })
            .unwrap(),
            "invalid_event",
        ),
        (
            "B-DOTDOT",
            serde_json::to_vec(&event("B-DOTDOT", p("../etc/passwd"))).unwrap(),
            "path_outside_root",
        ),
        (
            "B-ABS",
            serde_json::to_vec(&event("B-ABS", p(outside.to_str().unwrap()))).unwrap(),
            "path_outside_root",
        ),
        (
            "B-SYMLINK",
            serde_json::to_vec(&event("B-SYMLINK", p("link.png"))).unwrap(),
            "path_outside_root",
        ),
        (
            "B-MISSINGFILE",
            serde_json::to_vec(&event("B-MISSINGFILE", p("never.png"))).unwrap(),
            "image_missing",
        ),
        (
            "B-BYTES",
            serde_json::to_vec(&event("B-BYTES", p("big.png"))).unwrap(),
            "image_too_large",
        ),
        (
            "B-PIXELS",
            serde_json::to_vec(&event("B-PIXELS", p("wide.png"))).unwrap(),
            "image_too_large",
        ),
        (
            "B-TRUNC",
            serde_json::to_vec(&event("B-TRUNC", p("trunc.png"))).unwrap(),
            "image_undecodable",
        ),
        (
            "B-NOISE",
            serde_json::to_vec(&event("B-NOISE", p("noise.png"))).unwrap(),
            "image_undecodable",
        ),
        (
            "B-HASH",
            serde_json::to_vec(&event(
                "B-HASH",
                json!({"path": "good.png", "sha256": "00".repeat(32)}),
            ))
            .unwrap(),
            "image_hash_mismatch",
        ),
    ];
    for (id, body, _) in &cases {
        w.publish(id, body).await;
    }
    let got: HashMap<String, String> = w.dead_letters(cases.len(), 120).await.into_iter().collect();
    for (id, _, reason) in &cases {
        let header = got
            .get(*id)
            .unwrap_or_else(|| panic!("{id} not dead-lettered: {got:?}"));
        assert!(
            header == reason || header.starts_with(&format!("{reason}: ")),
            "{id}: {header}"
        );
    }
    // image_missing went through retries first: with a delivery limit of 3, two retries, then
    // the dead letter on the third delivery.
    assert_eq!(retried() - retried0, 2);
    assert_eq!(w.count("SELECT count(*) FROM decisions").await, 0);
    // Still working afterwards, and a redelivery of the same capture decides nothing new.
    let ev = event("C-GOOD", json!({"path": "good.png"}));
    w.publish_json("C-GOOD", &ev).await;
    w.wait_decisions(1, 120).await;
    w.publish_json("C-GOOD", &ev).await;
    let mut other = ev.clone();
    other["image"] = json!({"data_base64": base64::engine::general_purpose::STANDARD.encode(sample("neg/neg-001.png")), "media_type": "image/png"});
    w.publish_json("C-GOOD", &other).await;
    let dl = w.dead_letters(1, 120).await;
    assert_eq!(dl[0].0, "C-GOOD");
    assert!(dl[0].1.starts_with("conflicting_duplicate"), "{dl:?}");
    assert_eq!(w.decisions_for("C-GOOD").await, 1);
    assert_eq!(w.count("SELECT count(*) FROM hl7_messages").await, 1);
    assert_eq!(w.queue_depth().await, 0);
    std::fs::remove_file(&outside).unwrap();
    w.finish().await;
}

#[tokio::test]
async fn readyz_names_what_is_down() {
    use iari::http::{AppState, Readiness, router};
    let (pool, _) = crate::common::fresh_db().await;
    let readiness = std::sync::Arc::new(Readiness::default());
    let cancel = tokio_util::sync::CancellationToken::new();
    let app = router(AppState {
        pool,
        readiness: readiness.clone(),
    });
    let (task, addr) = iari::http::serve(app, "127.0.0.1:0".parse().unwrap(), cancel.clone())
        .await
        .unwrap();
    let (code, body) = http_get(addr, "/readyz").await;
    assert_eq!(code, 503);
    assert!(
        body.contains("broker") && body.contains("models") && !body.contains("database"),
        "{body}"
    );
    readiness.set_models(true);
    readiness.set_broker(true);
    assert_eq!(http_get(addr, "/readyz").await.0, 200);
    let (code, _) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_arrives_late_is_decided_after_a_retry() {
    let w = TestWorker::start(&[("IARI__WORKER__RETRY_DELAY_MS", "300")]).await;
    w.publish_json("LATE", &event("LATE", json!({"path": "late/x.png"})))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    w.put_file("late/x.png", &sample("3+/3p-000.png"));
    w.wait_decisions(1, 60).await;
    assert_eq!(w.decisions_for("LATE").await, 1);
    assert_eq!(w.dead_letter_depth().await, 0);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_workers_decide_each_capture_once() {
    let mut w = TestWorker::start(&[("IARI__INFERENCE__BATCH_SIZE", "4")]).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let second = iari::app::App::start(
        w.settings.clone(),
        &[iari::app::Task::Consumer],
        cancel.clone(),
    )
    .await
    .unwrap();
    w.put_file("c.png", &sample("neg/neg-002.png"));
    let n = 80;
    for i in 0..n {
        let id = format!("CC-{i:03}");
        let ev = event(&id, json!({"path": "c.png"}));
        // Every capture twice: the copies race between the two workers.
        w.publish_json(&id, &ev).await;
        w.publish_json(&id, &ev).await;
    }
    w.wait_decisions(n, 120).await;
    // Every copy taken from the queue, within a deadline rather than a loop that could hang.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let depth = w.queue_depth().await;
        if depth == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{depth} copies still queued after 120 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Then both workers stop: a stop finishes the batches they hold, so no copy taken can still
    // decide after the counts below (instead of a fixed sleep that guesses how long that takes).
    cancel.cancel();
    second.join().await;
    w.stop_worker().await;
    assert_eq!(w.count("SELECT count(*) FROM decisions").await, n);
    assert_eq!(w.count("SELECT count(*) FROM hl7_messages").await, n);
    assert_eq!(w.dead_letter_depth().await, 0);
    w.finish().await;
}
