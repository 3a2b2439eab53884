//! Engine behaviour on the real runtime: provenance, device selection, pinned models, errors.

use crate::common::{engine, golden_dir, settings};
use iari::classify::{Engine, EngineError, ImageTensor};
use iari::domain::{Flag, ModelRef, Sha256Digest};

fn tensor(fill: f32) -> ImageTensor {
    let len = engine().preprocessor().tensor_len();
    ImageTensor {
        sha256: Sha256Digest::of(&fill.to_le_bytes()),
        data: vec![fill; len],
    }
}

#[test]
fn info_describes_the_ensemble_and_the_cpu_provider() {
    let info = engine().info();
    assert_eq!(info.models.len(), 5);
    assert_eq!(info.models[0].name, "alexnet-cbam");
    assert_eq!(info.preprocessing_version, "pp-area-1");
    assert_eq!(info.execution.provider, "CPUExecutionProvider");
    assert_eq!(info.execution.requested, "cpu");
    assert_eq!(info.execution.fallback_reason, None);
    assert!(
        info.execution.onnxruntime_version.starts_with("1."),
        "{:?}",
        info.execution
    );
}

#[test]
fn auto_falls_back_to_cpu_with_a_reason_when_cuda_is_missing() {
    let e = Engine::load(&settings(&[("IARI__INFERENCE__DEVICE", "auto")])).unwrap();
    let x = &e.info().execution;
    assert_eq!(x.requested, "auto");
    if x.provider == "CPUExecutionProvider" {
        let reason = x.fallback_reason.as_deref().unwrap_or_default();
        assert!(reason.contains("CUDA"), "{reason}");
    } else {
        assert_eq!(x.provider, "CUDAExecutionProvider");
        assert_eq!(x.fallback_reason, None);
    }
    let out = e.classify(&[tensor(0.0)]).unwrap();
    assert_eq!(out[0].models.len(), 5);
}

#[test]
fn cuda_without_a_gpu_fails_clearly() {
    match Engine::load(&settings(&[("IARI__INFERENCE__DEVICE", "cuda")])) {
        Err(e @ EngineError::CudaUnavailable(_)) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("inference.device = cuda, but CUDA unavailable"),
                "{msg}"
            );
            assert!(!msg.contains('\n'));
            assert!(!e.is_transient());
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(e) => assert_eq!(e.info().execution.provider, "CUDAExecutionProvider"),
    }
}

/// The shipped release rule (interface.md, "Release"): a decision with any flag, or with
/// agreement under unanimous, goes out preliminary and needs review. Each row is written from
/// the spec's words and the votes the Python reference recorded for the golden image
/// (`golden.json`), never computed by the rule under test: g2 is the reference's 4-1 split
/// between neighbours (`disagree_adjacent`), the rest are unanimous and confident.
const RELEASE: [(&str, &str, &[Flag], f32, bool); 8] = [
    ("g0-neg.png", "neg", &[], 1.0, false),
    ("g1-1p.png", "1+", &[], 1.0, false),
    ("g2-2p.png", "1+", &[Flag::DisagreeAdjacent], 0.8, true),
    ("g3-3p.png", "3+", &[], 1.0, false),
    ("g4-4p.png", "4+", &[], 1.0, false),
    ("g5-neg-bubble.png", "neg", &[], 1.0, false),
    ("g6-1p-fibrin.png", "1+", &[], 1.0, false),
    ("g7-3p-300x280.png", "3+", &[], 1.0, false),
];

#[test]
fn a_batch_gives_one_classification_per_image_in_order_released_by_the_spec_rule() {
    let limits = iari::classify::ImageLimits {
        max_bytes: 20 << 20,
        max_width: 4096,
        max_height: 4096,
        decode_budget: std::time::Duration::from_secs(60),
    };
    let batch: Vec<ImageTensor> = RELEASE
        .iter()
        .map(|(image, ..)| {
            let bytes = std::fs::read(golden_dir().join(image)).unwrap();
            let rgb = iari::classify::decode(&bytes, &limits).unwrap().rgb;
            ImageTensor {
                sha256: Sha256Digest::of(&bytes),
                data: engine().preprocessor().run(&rgb),
            }
        })
        .collect();
    let out = engine().classify(&batch).unwrap();
    assert_eq!(out.len(), RELEASE.len());
    for ((t, c), (image, grade, flags, agreement, review)) in batch.iter().zip(&out).zip(RELEASE) {
        assert_eq!(c.image_sha256, t.sha256, "{image}: in order");
        let got_flags: Vec<Flag> = c.outcome.flags.iter().copied().collect();
        assert_eq!(
            (
                c.outcome.grade.label(),
                got_flags.as_slice(),
                c.outcome.agreement,
                c.outcome.needs_review
            ),
            (grade, flags, agreement, review),
            "{image}"
        );
    }
    // Batched and single runs agree.
    let single = engine().classify(&batch[2..3]).unwrap();
    let key = |o: &iari::domain::Outcome| (o.grade, o.flags.clone(), o.needs_review);
    assert_eq!(key(&single[0].outcome), key(&out[2].outcome));
    assert!(engine().classify(&[]).unwrap().is_empty());
}

/// The same rule where no golden image reaches it: five models that all vote neg with a
/// probability of 0.5 (under the shipped `low_confidence_threshold`, 0.6) agree unanimously,
/// yet the decision carries a flag, so it needs review; with 0.9 it is released. A model that
/// failed (four answered, the quorum) flags `model_failed`: review.
#[test]
fn a_flag_alone_needs_review_even_when_unanimous() {
    use iari::classify::vote::decide;
    use iari::domain::{Grade, ModelAnswer};
    let rules = settings(&[]).decision;
    let neg = |p: f32| ModelAnswer::Voted {
        probabilities: [p, 1.0 - p, 0.0, 0.0, 0.0],
        vote: Grade::Neg,
    };
    let unsure = decide(&vec![neg(0.5); 5], &rules).unwrap();
    assert_eq!(
        (
            unsure.agreement,
            unsure.flags.iter().copied().collect::<Vec<_>>(),
            unsure.needs_review
        ),
        (1.0, vec![Flag::LowConfidence], true)
    );
    let sure = decide(&vec![neg(0.9); 5], &rules).unwrap();
    assert_eq!((sure.flags.len(), sure.needs_review), (0, false));
    let mut four = vec![neg(0.9); 4];
    four.push(ModelAnswer::Failed {
        error: "session died".into(),
    });
    let failed = decide(&four, &rules).unwrap();
    assert_eq!(
        (
            failed.flags.iter().copied().collect::<Vec<_>>(),
            failed.needs_review
        ),
        (vec![Flag::ModelFailed], true)
    );
}

#[test]
fn wrong_tensor_length_is_a_permanent_input_error() {
    let bad = ImageTensor {
        sha256: Sha256Digest::of(b"x"),
        data: vec![0.0; 10],
    };
    let e = engine().classify(&[bad]).unwrap_err();
    assert!(matches!(e, EngineError::Input(_)), "{e}");
    assert!(!e.is_transient());
}

#[test]
fn pinned_models_load_by_hash_and_missing_ones_are_refused() {
    let all = engine().info().models.clone();
    let two: Vec<ModelRef> = vec![all[4].clone(), all[1].clone()];
    let s = settings(&[("IARI__DECISION__QUORUM", "1")]);
    let pinned = Engine::load_pinned(&s, &two).unwrap();
    assert_eq!(pinned.info().models, two);
    assert!(pinned.check_pinned(&two).is_ok());
    assert!(engine().check_pinned(&two).is_err());
    let e = Engine::load_pinned(&settings(&[]), &two).err().unwrap();
    assert!(e.to_string().contains("quorum"), "{e}");
    let mut gone = all[0].clone();
    gone.sha256 = Sha256Digest::of(b"an older model");
    let e = Engine::load_pinned(&s, &[gone]).err().unwrap();
    assert!(matches!(e, EngineError::PinnedMissing { .. }), "{e}");
    assert!(e.to_string().contains("alexnet-cbam"));
}

#[test]
fn missing_manifest_is_a_clear_permanent_error() {
    let s = settings(&[("IARI__MODELS__MANIFEST", "/nonexistent/manifest.json")]);
    let e = Engine::load(&s).err().unwrap();
    assert!(e.to_string().contains("/nonexistent/manifest.json"), "{e}");
    assert!(!e.is_transient());
}

#[test]
fn engine_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>(_: &T) {}
    shareable(engine());
    let grades: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| engine().classify(&[tensor(1.0)]).unwrap()[0].outcome.grade))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(grades.windows(2).all(|w| w[0] == w[1]));
}
