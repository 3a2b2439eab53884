//! Engine behaviour on the real runtime: provenance, device selection, pinned models, errors.

use crate::common::{engine, settings};
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

#[test]
fn a_batch_gives_one_classification_per_image_in_order() {
    let batch = [tensor(-2.0), tensor(0.0), tensor(2.0)];
    let out = engine().classify(&batch).unwrap();
    assert_eq!(out.len(), 3);
    for (t, c) in batch.iter().zip(&out) {
        assert_eq!(c.image_sha256, t.sha256);
        assert!((0.0..=1.0).contains(&c.outcome.agreement));
        assert_eq!(
            c.outcome.needs_review,
            !c.outcome.flags.is_empty() || c.outcome.agreement < 1.0
        );
    }
    // Batched and single runs agree.
    let single = engine().classify(&batch[1..2]).unwrap();
    assert_eq!(single[0].outcome.grade, out[1].outcome.grade);
    assert!(!out[1].outcome.flags.contains(&Flag::ModelFailed));
    assert!(engine().classify(&[]).unwrap().is_empty());
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
