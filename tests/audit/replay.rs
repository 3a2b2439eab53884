//! `iari replay`: the committed (synthetic) ensemble re-run on a stored image; identical when
//! nothing changed, differences named when the stored decision disagrees, and a clear refusal
//! when a pinned model is no longer in the manifest.

use crate::common::{Seed, TestDb};
use iari::audit::replay::{ReplayError, load_stored, rerun};
use iari::classify::{Engine, ImageLimits, ImageTensor, decode};
use iari::config::Settings;
use iari::domain::{Classification, Grade, ModelAnswer, Sha256Digest};
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

/// Classifies a committed sample, lets `edit` change the classification (what the stored
/// decision will disagree on), and stores it as the worker would; returns the decision id.
async fn seed_classified(
    db: &TestDb,
    settings: &Settings,
    edit: impl FnOnce(&mut Classification),
) -> i64 {
    let bytes =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx/samples/2+/2p-000.png"))
            .unwrap();
    let sha = Sha256Digest::of(&bytes);
    let s = settings.clone();
    let b = bytes.clone();
    let mut c = tokio::task::spawn_blocking(move || {
        let engine = Engine::load(&s).unwrap();
        let img = decode(&b, &ImageLimits::from(&s.images)).unwrap();
        let data = engine.preprocessor().run(&img.rgb);
        engine
            .classify(&[ImageTensor { sha256: sha, data }])
            .unwrap()
            .pop()
            .unwrap()
    })
    .await
    .unwrap();
    edit(&mut c);
    let seed = Seed {
        ensemble_version: "1.0.0-synthetic".into(),
        ..Seed::default()
    };
    iari_kit::seed::classified(&db.pool, &seed, &bytes, &c).await
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

    let same = seed_classified(&db, &settings, |_| {}).await;
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
    let changed = seed_classified(&db, &settings, |c| {
        let (_, first) = &mut c.models[0];
        let ModelAnswer::Voted {
            probabilities,
            vote,
        } = first
        else {
            panic!("the first model failed: {first:?}")
        };
        let other = if *vote == Grade::P4 {
            Grade::Neg
        } else {
            Grade::P4
        };
        *vote = other;
        probabilities[0] = 0.9;
        c.outcome.grade = other;
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

    let unpinned = seed_classified(&db, &settings, |c| {
        c.models[2].0.sha256 = Sha256Digest::of(b"a retired model");
    })
    .await;
    let err = replay(&db, &settings, unpinned).await.unwrap_err();
    assert!(matches!(err, ReplayError::Engine(_)), "{err:?}");
    assert!(
        err.to_string().contains("not in the current manifest"),
        "{err}"
    );

    match replay(&db, &settings, 987_654).await {
        Err(ReplayError::Audit(iari::audit::AuditError::UnknownDecision(987_654))) => {}
        other => panic!("{other:?}"),
    }
    db.drop().await;
}
