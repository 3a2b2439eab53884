//! Parity of the shift score with the training code (`onnx/models/golden/shift.json`, written
//! by `iari_train shift`): the same score within 1e-4 and the same flag for every case, through
//! the engine as the worker runs it; and manifests without (or with a broken) reference.

use crate::common::{engine, golden_dir, repo, settings};
use iari::classify::{Engine, ImageLimits, ImageTensor, Manifest, decode};
use iari::domain::{Flag, Sha256Digest};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
struct ShiftGolden {
    version: String,
    threshold: f64,
    cases: Vec<ShiftCase>,
}

#[derive(Deserialize)]
struct ShiftCase {
    image: String,
    score: f64,
    out_of_distribution: bool,
}

fn golden() -> ShiftGolden {
    let text = std::fs::read_to_string(golden_dir().join("shift.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn limits() -> ImageLimits {
    ImageLimits {
        max_bytes: 20 << 20,
        max_width: 4096,
        max_height: 4096,
        decode_budget: std::time::Duration::from_secs(60),
    }
}

fn tensor_of(e: &Engine, image: &str) -> ImageTensor {
    let bytes = std::fs::read(golden_dir().join(image)).unwrap();
    ImageTensor {
        sha256: Sha256Digest::of(&bytes),
        data: e
            .preprocessor()
            .run(&decode(&bytes, &limits()).unwrap().rgb),
    }
}

#[test]
fn scores_and_flags_match_the_training_code_on_every_golden_case() {
    let g = golden();
    let e = engine();
    let info = e
        .info()
        .shift
        .as_ref()
        .expect("the shipped manifest has a reference");
    assert_eq!(info.version, g.version);
    assert_eq!(info.threshold, g.threshold);
    assert!(
        g.cases.iter().any(|c| c.out_of_distribution)
            && g.cases.iter().any(|c| !c.out_of_distribution),
        "the golden set covers both sides of the threshold"
    );
    let batch: Vec<ImageTensor> = g.cases.iter().map(|c| tensor_of(e, &c.image)).collect();
    let out = e.classify(&batch).unwrap();
    let mut worst = 0.0f64;
    for (case, c) in g.cases.iter().zip(&out) {
        let s = c.shift.as_ref().expect("every decision carries a score");
        let d = (s.score - case.score).abs();
        worst = worst.max(d);
        assert!(
            d <= 1e-4,
            "{}: score {} vs {} (diff {d})",
            case.image,
            s.score,
            case.score
        );
        assert_eq!(
            s.out_of_distribution(),
            case.out_of_distribution,
            "{}",
            case.image
        );
        let flagged = c.outcome.flags.contains(&Flag::OutOfDistribution);
        assert_eq!(flagged, case.out_of_distribution, "{} flag", case.image);
        if flagged {
            assert!(c.outcome.needs_review, "{}: never final", case.image);
        }
        // Scoring one tensor alone gives the very same number as in the batch.
        let alone = e.shift().unwrap().score(&tensor_of(e, &case.image).data);
        assert_eq!(alone.score, s.score, "{}", case.image);
    }
    eprintln!(
        "shift parity: {} cases, max |score diff| {worst:.2e}",
        g.cases.len()
    );
}

/// A copy of the shipped manifest with its `shift` section changed by `edit`, in a folder
/// whose model files link to the shipped ones.
fn manifest_with(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> std::path::PathBuf {
    let models = repo().join("onnx/models");
    let text = std::fs::read_to_string(models.join("manifest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    for entry in m["models"].as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        std::os::unix::fs::symlink(models.join(file), dir.join(file)).unwrap();
    }
    edit(&mut m);
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
    path
}

#[test]
fn a_manifest_without_a_reference_loads_and_scores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = manifest_with(dir.path(), |m| {
        m.as_object_mut().unwrap().remove("shift");
    });
    let p = path.display().to_string();
    let e = Engine::load(&settings(&[("IARI__MODELS__MANIFEST", p.as_str())])).unwrap();
    assert!(e.info().shift.is_none() && e.shift().is_none());
    let out = e.classify(&[tensor_of(&e, "s1-siteb-1p.png")]).unwrap();
    assert_eq!(out[0].shift, None);
    assert!(!out[0].outcome.flags.contains(&Flag::OutOfDistribution));
}

#[test]
fn a_broken_reference_is_refused_at_load() {
    for (edit, want) in [
        (
            (|m: &mut serde_json::Value| {
                m["shift"]["whiten"].as_array_mut().unwrap().pop();
            }) as fn(&mut serde_json::Value),
            "66 x 66",
        ),
        (
            |m| m["shift"]["threshold"] = serde_json::json!(-1.0),
            "threshold",
        ),
        (
            |m| {
                m["shift"]["mean"].as_array_mut().unwrap().push(0.0.into());
            },
            "need 66",
        ),
        (|m| m["shift"]["version"] = "shift-2".into(), "shift-1 only"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = manifest_with(dir.path(), edit);
        let e = Manifest::load(&path).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}
