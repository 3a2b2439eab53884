//! `iari replay`: the committed (synthetic) ensemble re-run on a stored image; identical when
//! nothing changed, differences named when the stored decision disagrees, and a clear refusal
//! when a pinned model (or the pinned shift reference) is no longer in the manifest.

use crate::common::{Seed, TestDb};
use iari::audit::replay::{ReplayError, load_stored, rerun};
use iari::classify::{Engine, ImageLimits, ImageTensor, decode};
use iari::config::Settings;
use iari::domain::{Classification, Grade, ModelAnswer, Sha256Digest};
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

/// Classifies `image` (under the repository) and stores it through the worker's batch write,
/// with the worker's provenance, with its shift score and reference when `scored` (as a decision
/// made before the score existed when not); `edit` may change the classification and the
/// runtime provenance before they are stored. Returns the decision id.
async fn seed_image(
    db: &TestDb,
    settings: &Settings,
    image: &str,
    scored: bool,
    edit: impl FnOnce(&mut Classification, &mut Value),
) -> i64 {
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(image)).unwrap();
    let sha = Sha256Digest::of(&bytes);
    let s = settings.clone();
    let b = bytes.clone();
    let (mut c, mut provenance) = tokio::task::spawn_blocking(move || {
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
        (c, iari::app::provenance(&engine))
    })
    .await
    .unwrap();
    edit(&mut c, &mut provenance.runtime);
    let seed = Seed {
        image: Some(bytes.clone()),
        ..Seed::default()
    };
    iari_kit::seed::written(&db.pool, &seed, &bytes, &c, &provenance).await
}

/// A committed sample, as a decision made before the shift score existed.
async fn seed_classified(
    db: &TestDb,
    settings: &Settings,
    edit: impl FnOnce(&mut Classification),
) -> i64 {
    seed_image(db, settings, "onnx/samples/2+/2p-000.png", false, |c, _| {
        edit(c)
    })
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
        let ModelAnswer::Voted {
            probabilities,
            vote,
        } = &mut c.models[0].1
        else {
            panic!("the first model voted");
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

    // Scored decisions replay with the same reference: an out-of-distribution site-b well
    // (SYNTHETIC) keeps its flag and its score exactly.
    let site_b = "onnx/models/golden/s1-siteb-1p.png";
    let ood = seed_image(&db, &settings, site_b, true, |_, _| {}).await;
    let r = replay(&db, &settings, ood).await.unwrap();
    assert!(r.identical, "{:?}", r.differences);
    assert!(r.stored_flags.contains(&"out_of_distribution".to_string()));
    assert!(r.stored_shift_score.unwrap() > 11.97);
    assert_eq!(r.replayed_shift_score, r.stored_shift_score);
    // Decisions made before the score existed replay without one (no flag appears).
    let old = seed_image(&db, &settings, site_b, false, |_, _| {}).await;
    let r = replay(&db, &settings, old).await.unwrap();
    assert!(r.identical, "{:?}", r.differences);
    assert_eq!((r.stored_shift_score, r.replayed_shift_score), (None, None));
    assert!(
        !r.replayed_flags
            .contains(&"out_of_distribution".to_string())
    );
    // A decision scored by a reference since refitted is refused, like a retired model.
    let refitted = seed_image(&db, &settings, site_b, true, |_, runtime| {
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

fn manifest(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The next ensemble version in a temporary folder: the committed files archived under `v1/`
/// (as `iari_train adapt` keeps them), and a new manifest, version `3.0.0-test`, listing `v1`
/// under `previous`, whose inception model is another file (a copy of the ResNet one: any
/// model with the same input and output will do). Returns the new manifest's path.
fn next_version(dir: &Path) -> std::path::PathBuf {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx/models");
    let text = std::fs::read_to_string(models.join("manifest.json")).unwrap();
    let mut man: Value = serde_json::from_str(&text).unwrap();
    let v1 = dir.join("v1");
    std::fs::create_dir(&v1).unwrap();
    for m in man["models"].as_array().unwrap() {
        let file = m["file"].as_str().unwrap();
        std::fs::copy(models.join(file), v1.join(file)).unwrap();
        std::fs::copy(models.join(file), dir.join(file)).unwrap();
    }
    // The kept copy lists no earlier versions of its own: the newest manifest lists the chain.
    let mut kept = man.clone();
    kept["previous"] = json!([]);
    std::fs::write(v1.join("manifest.json"), kept.to_string()).unwrap();
    let resnet = std::fs::read(models.join("resnet-cbam.onnx")).unwrap();
    std::fs::write(dir.join("inception-v2.onnx"), &resnet).unwrap();
    man["ensemble"]["version"] = json!("3.0.0-test");
    man["previous"] = json!(["v1/manifest.json"]);
    for m in man["models"].as_array_mut().unwrap() {
        if m["name"] == "inception-cbam" {
            m["file"] = json!("inception-v2.onnx");
            m["version"] = json!("3.0.0");
            m["sha256"] = json!(Sha256Digest::of(&resnet).to_hex());
        }
    }
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_string_pretty(&man).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn decisions_pinned_to_an_earlier_version_replay_with_its_kept_files() {
    let db = TestDb::new().await;
    let committed = settings();
    let first = seed_image(
        &db,
        &committed,
        "onnx/samples/2+/2p-000.png",
        true,
        |_, _| {},
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let mut next = committed.clone();
    next.models.manifest = next_version(dir.path());
    let second = seed_image(&db, &next, "onnx/samples/2+/2p-000.png", true, |_, _| {}).await;

    // Replayed under the new manifest, each decision runs on the files it was made with.
    let r = replay(&db, &next, first).await.unwrap();
    assert!(r.identical, "{:?}", r.differences);
    let shipped = manifest(&committed.models.manifest);
    assert_eq!(r.ensemble_version, shipped["ensemble"]["version"]);
    assert_eq!(r.models[3].version, shipped["models"][3]["version"]);
    let r = replay(&db, &next, second).await.unwrap();
    assert!(r.identical, "{:?}", r.differences);
    assert_eq!(r.ensemble_version, "3.0.0-test");
    assert_eq!(r.models[3].version, "3.0.0");

    // Decisions made by the shipped ensemble's predecessors (their files kept in the repository
    // under onnx/models/v<version>/, listed under `previous`) replay under the shipped manifest,
    // each on its own files.
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx/models");
    let previous = shipped["previous"].as_array().unwrap();
    assert!(
        !previous.is_empty(),
        "the shipped manifest lists no earlier version"
    );
    for kept in previous {
        let mut archived = committed.clone();
        archived.models.manifest = models.join(kept.as_str().unwrap());
        let old = manifest(&archived.models.manifest);
        let pinned = seed_image(
            &db,
            &archived,
            "onnx/samples/2+/2p-000.png",
            true,
            |_, _| {},
        )
        .await;
        let r = replay(&db, &committed, pinned).await.unwrap();
        assert!(r.identical, "{kept}: {:?}", r.differences);
        assert_eq!(r.ensemble_version, old["ensemble"]["version"]);
        assert_ne!(r.ensemble_version, shipped["ensemble"]["version"]);
        assert_eq!(r.models[3].version, old["models"][3]["version"]);
    }

    // The kept version's files are checked like the current ones: a changed file is refused.
    std::fs::write(dir.path().join("v1/inception-cbam.onnx"), b"not the model").unwrap();
    let err = replay(&db, &next, first).await.unwrap_err();
    assert!(err.to_string().contains("inception-cbam"), "{err}");
    assert!(err.to_string().contains("SHA-256"), "{err}");
    // A version no longer listed cannot be found: the refusal names the current manifest.
    let text = std::fs::read_to_string(&next.models.manifest).unwrap();
    let mut man: Value = serde_json::from_str(&text).unwrap();
    man["previous"] = json!([]);
    std::fs::write(&next.models.manifest, man.to_string()).unwrap();
    let err = replay(&db, &next, first).await.unwrap_err();
    assert!(
        err.to_string().contains("not in the current manifest"),
        "{err}"
    );
    db.drop().await;
}
