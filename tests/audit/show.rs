//! `audit show`: the provenance a QA reviewer needs is all there.

use crate::common::{MODEL_NAMES, Seed, TestDb, add_review, deliver, seed, user};
use iari::audit::{AuditError, show};
use iari::domain::{DeliveryState, Flag, Grade, ResultStatus};

#[tokio::test]
async fn show_returns_full_provenance() {
    let db = TestDb::new().await;
    let id = seed(
        &db.pool,
        &Seed {
            needs_review: true,
            flags: vec!["disagree_adjacent"],
            votes: ["2+", "2+", "2+", "3+", "2+"],
            ..Seed::default()
        },
    )
    .await;
    deliver(&db.pool, id, "AA").await;
    let tech = user(&db.pool, "dr.y", iari::domain::Role::Technologist).await;
    let req = iari::audit::SignRequest {
        grade: Grade::P3,
        meaning: Some(iari::domain::Meaning::Corrected),
        reason_code: Some("visual_read".into()),
        reason_text: Some("rim visible".into()),
    };
    let o = iari::audit::sign_review(&db.pool, &tech, id, &req, &crate::common::reasons())
        .await
        .unwrap();

    let p = show(&db.pool, id).await.unwrap();
    let d = &p.decision;
    assert_eq!((d.id, d.grade, d.needs_review), (id, Grade::P2, true));
    assert_eq!(d.flags, vec![Flag::DisagreeAdjacent]);
    assert_eq!(
        (d.ensemble_name.as_str(), d.ensemble_version.as_str()),
        ("iari-cbam", "ENS-1.0.0")
    );
    let models = d.models.as_array().unwrap();
    assert_eq!(models.len(), 5);
    for (m, name) in models.iter().zip(MODEL_NAMES) {
        assert_eq!(m["name"], name);
        assert_eq!(m["version"], "1.0.0");
        assert_eq!(m["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(m["probabilities"].as_array().unwrap().len(), 5);
    }
    assert_eq!(models[3]["vote"], "3+");
    assert_eq!(d.runtime["provider"], "CPUExecutionProvider");
    assert_eq!(d.runtime["fallback_reason"], "CUDA not available");
    assert_eq!(d.runtime["onnxruntime_version"], "1.22.0");
    assert_eq!(d.timings["inference_ms"], 12.25);
    assert_eq!(
        (d.worker["host"].as_str(), d.worker["build"].as_str()),
        (Some("lab-host-1"), Some("abc123"))
    );
    // Its capture is chained first (1), the decision after it.
    let capture_hash: String =
        sqlx::query_scalar("SELECT encode(row_hash, 'hex') FROM captures WHERE chain_seq = 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(d.chain_seq, 2);
    assert_eq!(d.prev_hash, capture_hash);
    assert_eq!(d.row_hash.len(), 64);

    assert_eq!(p.capture.event["capture_id"], p.capture.capture_id);
    assert_eq!(p.capture.analyzer_id, "HCM-01");
    let bytes = format!("png bytes of {}", p.capture.capture_id);
    assert_eq!(
        p.image.sha256,
        iari::domain::Sha256Digest::of(bytes.as_bytes()).to_hex()
    );
    assert_eq!(
        (p.image.width, p.image.height, p.image.size_bytes as usize),
        (229, 230, bytes.len())
    );

    assert_eq!(p.reviews.len(), 1);
    assert_eq!(
        (p.reviews[0].grade, p.reviews[0].reviewer.as_str()),
        (Grade::P3, "dr.y")
    );
    assert_eq!(p.reviews[0].comment.as_deref(), Some("rim visible"));
    // capture 1, decision 2, the account's creation 3, review 4, its signature 5.
    assert_eq!(p.reviews[0].chain_seq, 4);
    let sg = &p.signatures[0];
    assert_eq!(
        (
            sg.id,
            sg.review_id,
            sg.username.as_str(),
            sg.full_name.as_str()
        ),
        (o.signature_id, Some(o.review_id), "dr.y", "DR.Y Tester")
    );
    assert_eq!(
        (
            sg.meaning,
            sg.grade,
            sg.reason_code.as_deref(),
            sg.chain_seq
        ),
        (
            iari::domain::Meaning::Corrected,
            Some(Grade::P3),
            Some("visual_read"),
            5
        )
    );
    assert_eq!(
        sg.decision_row_hash, p.decision.row_hash,
        "signs the decision row"
    );

    assert_eq!(p.hl7_messages.len(), 2);
    let original = &p.hl7_messages[0];
    assert_eq!(
        (original.result_status, original.state),
        (ResultStatus::Preliminary, DeliveryState::Acked)
    );
    assert_eq!(original.ack_code.as_deref(), Some("AA"));
    assert!(original.payload.as_deref().unwrap().starts_with("MSH|"));
    let outcomes: Vec<&str> = original
        .delivery_attempts
        .iter()
        .map(|a| a.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["rejected_ar", "acked"]);
    assert_eq!(
        original.delivery_attempts[1].ack_code.as_deref(),
        Some("AA")
    );
    let correction = &p.hl7_messages[1];
    assert_eq!(correction.review_id, Some(p.reviews[0].id));
    assert_eq!(
        (correction.result_status, correction.state),
        (ResultStatus::Final, DeliveryState::Pending)
    );
    assert_eq!(correction.filler_number, original.filler_number);

    // The JSON form carries the same sections.
    let json = serde_json::to_value(&p).unwrap();
    for key in [
        "decision",
        "capture",
        "image",
        "reviews",
        "signatures",
        "hl7_messages",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    let text = iari::audit::format::show_table(&p);
    for needle in [
        "lab-host-1",
        "CUDA not available",
        "dr.y",
        "corrected 3+ by DR.Y Tester (dr.y, technologist)",
        "reason visual_read: rim visible",
        "attempt 2",
        "alexnet-cbam",
        &p.image.sha256,
    ] {
        assert!(text.contains(needle), "table lacks {needle}");
    }
    add_review(&db.pool, id, "3+").await;
    assert_eq!(show(&db.pool, id).await.unwrap().reviews.len(), 2);
    db.drop().await;
}

#[tokio::test]
async fn show_of_unknown_decision_says_so() {
    let db = TestDb::new().await;
    match show(&db.pool, 999).await {
        Err(AuditError::UnknownDecision(999)) => {}
        other => panic!("expected UnknownDecision, got {other:?}"),
    }
    db.drop().await;
}
