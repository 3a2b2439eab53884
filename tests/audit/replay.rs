//! `iari replay`: the committed (synthetic) ensemble re-run on a stored image; identical when
//! nothing changed, differences named when the stored decision disagrees, and a clear refusal
//! when a pinned model (or the pinned shift reference) is no longer in the manifest.

use crate::common::TestDb;
use iari::audit::replay::{ReplayError, load_stored, rerun};
use iari::classify::{Engine, ImageLimits, ImageTensor, decode};
use iari::config::Settings;
use iari::domain::{ModelAnswer, Sha256Digest};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;

fn settings() -> Settings {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = HashMap::from([
        (
            "IARI__MODELS__MANIFEST".to_string(),
            root.join("onnx/models/manifest.json").display().to_string(),
        ),
        ("IARI__INFERENCE__DEVICE".to_string(), "cpu".to_string()),
    ]);
    Settings::load_from(None, Some(env)).unwrap()
}

/// Classifies `image` (under the repository) and stores it as the worker would, with its shift
/// score and reference when `scored` (as a decision made before the score existed when not);
/// `edit` may change the stored models, grade and runtime. Returns the decision id.
async fn seed_image(
    db: &TestDb,
    settings: &Settings,
    image: &str,
    scored: bool,
    edit: impl FnOnce(&mut Value, &mut String, &mut Value),
) -> i64 {
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(image)).unwrap();
    let sha = Sha256Digest::of(&bytes);
    let s = settings.clone();
    let b = bytes.clone();
    let (c, reference) = tokio::task::spawn_blocking(move || {
        let engine = Engine::load(&s).unwrap();
        let engine = if scored {
            engine
        } else {
            engine.without_shift()
        };
        let img = decode(&b, &ImageLimits::from(&s.images)).unwrap();
        let data = engine.preprocessor().run(&img.rgb);
        let c = engine
            .classify(&[ImageTensor { sha256: sha, data }])
            .unwrap()
            .pop()
            .unwrap();
        (c, engine.info().shift.clone())
    })
    .await
    .unwrap();
    let mut runtime = match &reference {
        Some(r) => json!({ "shift": r }),
        None => json!({}),
    };
    let mut models = json!(c.models.iter().map(|(r, a)| match a {
        ModelAnswer::Voted { probabilities, vote } => json!({"name": r.name, "version": r.version, "sha256": r.sha256,
            "status": "voted", "probabilities": probabilities, "vote": vote.label(), "error": null}),
        ModelAnswer::Failed { error } => json!({"name": r.name, "version": r.version, "sha256": r.sha256,
            "status": "failed", "probabilities": null, "vote": null, "error": error}),
    }).collect::<Vec<_>>());
    let mut grade = c.outcome.grade.label().to_string();
    edit(&mut models, &mut grade, &mut runtime);
    let flags: Vec<String> = c
        .outcome
        .flags
        .iter()
        .map(|f| f.as_str().to_string())
        .collect();
    sqlx::query("INSERT INTO images (sha256, media_type, width, height, bytes) VALUES ($1, 'image/png', 229, 230, $2) ON CONFLICT DO NOTHING")
        .bind(sha.as_bytes().as_slice()).bind(&bytes).execute(&db.pool).await.unwrap();
    let capture = format!("CAP-{}", uuid::Uuid::new_v4().simple());
    sqlx::query("INSERT INTO captures (capture_id, image_sha256, event, captured_at, analyzer_id, plate_id, well, accession) \
                 VALUES ($1, $2, '{}', now(), 'HCM-01', 'P1', 'A1', 'ACC')")
        .bind(&capture).bind(sha.as_bytes().as_slice()).execute(&db.pool).await.unwrap();
    sqlx::query_scalar(
        "INSERT INTO decisions (capture_id, image_sha256, grade, agreement, confidence, flags, needs_review, \
         ensemble_name, ensemble_version, models, runtime, timings, worker, shift_score, shift_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'iari-cbam-ensemble', '1.0.0-synthetic', $8, $9, '{}', '{}', $10, $11) \
         RETURNING id",
    )
    .bind(&capture).bind(sha.as_bytes().as_slice()).bind(&grade).bind(c.outcome.agreement)
    .bind(c.outcome.confidence).bind(&flags).bind(c.outcome.needs_review).bind(&models)
    .bind(&runtime).bind(c.shift.as_ref().map(|s| s.score)).bind(c.shift.as_ref().map(|s| s.version.clone()))
    .fetch_one(&db.pool).await.unwrap()
}

/// A committed sample, as a decision made before the shift score existed.
async fn seed_classified(
    db: &TestDb,
    settings: &Settings,
    edit: impl FnOnce(&mut Value, &mut String),
) -> i64 {
    seed_image(
        db,
        settings,
        "onnx/samples/2+/2p-000.png",
        false,
        |m, g, _| edit(m, g),
    )
    .await
}

async fn replay(
    db: &TestDb,
    settings: &Settings,
    id: i64,
) -> Result<iari::audit::replay::ReplayReport, ReplayError> {
    let stored = load_stored(&db.pool, id).await?;
    let s = settings.clone();
    tokio::task::spawn_blocking(move || rerun(&s, &stored))
        .await
        .unwrap()
}

#[tokio::test]
async fn replay_is_identical_then_names_differences_then_refuses_unknown_models() {
    let db = TestDb::new().await;
    let settings = settings();

    let same = seed_classified(&db, &settings, |_, _| {}).await;
    let r = replay(&db, &settings, same).await.unwrap();
    assert!(r.identical, "{:?}", r.differences);
    assert_eq!(r.models.len(), 5);
    assert!(
        r.max_abs_probability_difference < 1e-5,
        "{}",
        r.max_abs_probability_difference
    );
    assert_eq!(r.execution.provider, "CPUExecutionProvider");

    // A stored decision whose first vote and grade were different from what the models say.
    let changed = seed_classified(&db, &settings, |models, grade| {
        let other = if models[0]["vote"] == "4+" {
            "neg"
        } else {
            "4+"
        };
        models[0]["vote"] = json!(other);
        models[0]["probabilities"][0] = json!(0.9);
        *grade = other.to_string();
    })
    .await;
    let r = replay(&db, &settings, changed).await.unwrap();
    assert!(!r.identical);
    assert!(
        r.differences.iter().any(|d| d.starts_with("grade:")),
        "{:?}",
        r.differences
    );
    assert!(
        r.differences.iter().any(|d| d.contains(" vote: stored")),
        "{:?}",
        r.differences
    );
    assert!(r.max_abs_probability_difference > 0.05);

    let unpinned = seed_classified(&db, &settings, |models, _| {
        models[2]["sha256"] = json!(Sha256Digest::of(b"a retired model").to_hex());
    })
    .await;
    let err = replay(&db, &settings, unpinned).await.unwrap_err();
    assert!(matches!(err, ReplayError::Engine(_)), "{err:?}");
    assert!(
        err.to_string().contains("not in the current manifest"),
        "{err}"
    );

    // Scored decisions replay with the same reference: an out-of-distribution site-b well
    // (SYNTHETIC) keeps its flag and its score exactly.
    let site_b = "onnx/models/golden/s1-siteb-1p.png";
    let ood = seed_image(&db, &settings, site_b, true, |_, _, _| {}).await;
    let r = replay(&db, &settings, ood).await.unwrap();
    assert!(r.identical, "{:?}", r.differences);
    assert!(r.stored_flags.contains(&"out_of_distribution".to_string()));
    assert!(r.stored_shift_score.unwrap() > 11.97);
    assert_eq!(r.replayed_shift_score, r.stored_shift_score);
    // Decisions made before the score existed replay without one (no flag appears).
    let old = seed_image(&db, &settings, site_b, false, |_, _, _| {}).await;
    let r = replay(&db, &settings, old).await.unwrap();
    assert!(r.identical, "{:?}", r.differences);
    assert_eq!((r.stored_shift_score, r.replayed_shift_score), (None, None));
    assert!(
        !r.replayed_flags
            .contains(&"out_of_distribution".to_string())
    );
    // A decision scored by a reference since refitted is refused, like a retired model.
    let refitted = seed_image(&db, &settings, site_b, true, |_, _, runtime| {
        runtime["shift"]["reference_sha256"] = json!(Sha256Digest::of(b"older fit").to_hex());
    })
    .await;
    let err = replay(&db, &settings, refitted).await.unwrap_err();
    assert!(
        err.to_string().contains("pinned shift reference shift-1"),
        "{err}"
    );

    match replay(&db, &settings, 987_654).await {
        Err(ReplayError::Audit(iari::audit::AuditError::UnknownDecision(987_654))) => {}
        other => panic!("{other:?}"),
    }
    db.drop().await;
}
