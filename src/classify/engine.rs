//! The ensemble engine: verified models loaded into ONNX Runtime sessions, batched inference
//! (N images → one run per model), the shift score of each image and the decision for each
//! image. Synchronous and CPU-bound: async callers run it on a blocking thread.

use super::manifest::{EnsembleInfo, Manifest, ManifestError, ModelEntry};
pub use super::parallel::ModelLogits;
use super::parallel::{LoadedModel, ModelWorker, RunSpec, SharedInput, run_all};
use super::preprocess::{PreprocessError, Preprocessor};
use super::runtime::{RuntimeError, runtime};
use super::session::{BuildError, CUDA_PROVIDER, Threading, create_sessions, record_provider};
use super::shift::{ShiftInfo, ShiftModel};
use super::vote::{QuorumError, answer_from_logits, decide, flag_shift};
use crate::config::{DecisionSettings, Settings};
use crate::domain::{
    Classification, ExecutionInfo, ModelAnswer, ModelRef, Sha256Digest, ShiftScore,
};
use ort::memory::AllocationDevice;
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// One preprocessed image: CHW f32 of the manifest's input size, and the image's hash.
#[derive(Debug, Clone)]
pub struct ImageTensor {
    pub sha256: Sha256Digest,
    pub data: Vec<f32>,
}

/// What the engine is, for provenance.
#[derive(Debug, Clone, Serialize)]
pub struct EngineInfo {
    pub ensemble: EnsembleInfo,
    pub synthetic: bool,
    /// In manifest order, the models this engine runs.
    pub models: Vec<ModelRef>,
    pub execution: ExecutionInfo,
    pub preprocessing_version: String,
    pub batch_size: usize,
    /// The shift reference that scores every image; none for a manifest without one.
    pub shift: Option<ShiftInfo>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error("inference.device = cuda, but {0}")]
    CudaUnavailable(String),
    #[error("model {model}: ONNX Runtime cannot load it: {reason}")]
    ModelLoad { model: String, reason: String },
    #[error("pinned model {name} {version} ({sha256}) is not in the current manifest")]
    PinnedMissing {
        name: String,
        version: String,
        sha256: Sha256Digest,
    },
    #[error("pinned shift reference {version} ({reference}) is not the current manifest's")]
    PinnedShiftMissing {
        version: String,
        reference: Sha256Digest,
    },
    #[error("bad input: {0}")]
    Input(String),
    #[error(transparent)]
    Quorum(#[from] QuorumError),
}

impl EngineError {
    /// Worth retrying later (the runtime failed on this batch); everything else needs a person
    /// (deployment, configuration) or is a bug in the caller.
    pub fn is_transient(&self) -> bool {
        matches!(self, EngineError::Quorum(_))
    }
}

/// The loaded ensemble. `Send + Sync`: each session is behind its own mutex.
pub struct Engine {
    info: EngineInfo,
    models: Vec<Arc<LoadedModel>>,
    preprocessor: Preprocessor,
    shift: Option<ShiftModel>,
    rules: DecisionSettings,
    spec: RunSpec,
    /// `ParallelModels` only: a worker for each model but the first, which the calling
    /// thread runs itself while the others work.
    workers: Vec<ModelWorker>,
    /// Spent batch inputs kept for the next batch: a fresh multi-MiB buffer costs a page
    /// fault per 4 KiB on first write, every batch.
    spare_inputs: Mutex<Vec<Vec<f32>>>,
}

/// Batch input buffers kept for reuse; more are simply freed.
const SPARE_INPUTS: usize = 4;

impl Engine {
    /// Loads the manifest's ensemble with the threading the settings ask for.
    pub fn load(settings: &Settings) -> Result<Engine, EngineError> {
        Self::load_with(
            settings,
            Threading::from_settings(&settings.inference),
            None,
        )
    }

    /// Loads only the `pinned` models (audit replay), by name and SHA-256, in that order;
    /// refuses when the manifest no longer lists one of them.
    pub fn load_pinned(settings: &Settings, pinned: &[ModelRef]) -> Result<Engine, EngineError> {
        let threading = Threading::from_settings(&settings.inference);
        Self::load_with(settings, threading, Some(pinned))
    }

    /// Like [`Engine::load`] with an explicit threading layout (benchmarks).
    pub fn load_with(
        settings: &Settings,
        threading: Threading,
        pinned: Option<&[ModelRef]>,
    ) -> Result<Engine, EngineError> {
        let rt = runtime(&settings.inference, threading.global_pool_threads())?;
        let manifest = Manifest::load(&settings.models.manifest)?;
        let preprocessor = Preprocessor::from_manifest(&manifest)?;
        // Validated with the manifest; an error here would be a bug, not a deployment problem.
        let (width, height) = preprocessor.size();
        let shift = (manifest.shift.as_ref())
            .map(|spec| ShiftModel::new(spec, width, height))
            .transpose()
            .map_err(EngineError::Input)?;
        let verified = select(manifest.read_verified()?, pinned)?;
        if verified.len() < settings.decision.quorum {
            // Every batch would fail the quorum: say so now, as the permanent problem it is.
            return Err(EngineError::Input(format!(
                "decision.quorum is {} but only {} model(s) are loaded",
                settings.decision.quorum,
                verified.len()
            )));
        }
        let named: Vec<(String, &[u8])> = verified
            .iter()
            .map(|(e, b)| (e.name.clone(), b.as_slice()))
            .collect();
        let (sessions, execution) = create_sessions(rt, &settings.inference, &named, threading)
            .map_err(|e| match e {
                BuildError::Cuda(reason) => EngineError::CudaUnavailable(reason),
                BuildError::Model { model, reason } => EngineError::ModelLoad { model, reason },
            })?;
        record_provider(&execution);
        let models: Vec<Arc<LoadedModel>> = verified
            .iter()
            .zip(sessions)
            .map(|((entry, _), session)| {
                Arc::new(LoadedModel {
                    reference: Manifest::model_ref(entry),
                    session: Mutex::new(session),
                })
            })
            .collect();
        let on_cuda = execution.provider == CUDA_PROVIDER;
        let spec = RunSpec {
            input_name: manifest.input.name.clone(),
            size: preprocessor.size(),
            stage_on: (on_cuda && settings.inference.cuda_shared_input)
                .then_some((AllocationDevice::CUDA, settings.inference.cuda_device_id)),
        };
        let workers = match threading {
            Threading::ParallelModels => models
                .iter()
                .skip(1)
                .map(|m| ModelWorker::start(m.clone(), spec.clone()))
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|e| EngineError::Input(format!("cannot start model threads: {e}")))?,
            _ => Vec::new(),
        };
        let info = EngineInfo {
            ensemble: manifest.ensemble.clone(),
            synthetic: manifest.synthetic,
            models: models.iter().map(|m| m.reference.clone()).collect(),
            execution,
            preprocessing_version: preprocessor.version().to_string(),
            batch_size: settings.inference.batch_size,
            shift: shift.as_ref().map(ShiftModel::info),
        };
        Ok(Engine {
            info,
            models,
            preprocessor,
            shift,
            rules: settings.decision.clone(),
            spec,
            workers,
            spare_inputs: Mutex::new(Vec::new()),
        })
    }

    /// A buffer for `n` packed images (NCHW, `n` × [`Preprocessor::tensor_len`] values),
    /// reused from an earlier batch when one was handed back with [`Engine::recycle_input`].
    /// Its contents are unspecified: the caller overwrites every image slot it uses.
    pub fn input_buffer(&self, n: usize) -> Vec<f32> {
        let len = n * self.preprocessor.tensor_len();
        let spare = self
            .spare_inputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let mut buf = spare.unwrap_or_default();
        buf.resize(len, 0.0);
        buf
    }

    /// Hands a batch input back for [`Engine::input_buffer`] to reuse.
    pub fn recycle_input(&self, buf: Vec<f32>) {
        let mut spare = self.spare_inputs.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < SPARE_INPUTS {
            spare.push(buf);
        }
    }

    pub fn info(&self) -> &EngineInfo {
        &self.info
    }

    /// The preprocessing the models were trained with.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// The shift reference, if the manifest has one.
    pub fn shift(&self) -> Option<&ShiftModel> {
        self.shift.as_ref()
    }

    /// The same engine without its shift score (replay of a decision made before the manifest
    /// had a reference: it carried no score, so the replay computes none).
    pub fn without_shift(mut self) -> Engine {
        self.shift = None;
        self.info.shift = None;
        self
    }

    /// Refuses unless this engine scores with the reference `pinned` names (by digest).
    pub fn check_pinned_shift(
        &self,
        version: &str,
        pinned: Sha256Digest,
    ) -> Result<(), EngineError> {
        match &self.info.shift {
            Some(s) if s.reference_sha256 == pinned => Ok(()),
            _ => Err(EngineError::PinnedShiftMissing {
                version: version.to_string(),
                reference: pinned,
            }),
        }
    }

    /// Refuses unless `pinned` are exactly the models this engine runs (same order and hashes).
    pub fn check_pinned(&self, pinned: &[ModelRef]) -> Result<(), EngineError> {
        for p in pinned {
            if !self
                .info
                .models
                .iter()
                .any(|m| m.name == p.name && m.sha256 == p.sha256)
            {
                return Err(missing(p));
            }
        }
        if pinned.len() != self.info.models.len() {
            return Err(EngineError::Input(format!(
                "{} models pinned, the engine runs {}",
                pinned.len(),
                self.info.models.len()
            )));
        }
        Ok(())
    }

    /// Classifies a batch: one run per model over all images, then the decision per image.
    pub fn classify(&self, batch: &[ImageTensor]) -> Result<Vec<Classification>, EngineError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let len = self.preprocessor.tensor_len();
        let mut input = Vec::with_capacity(batch.len() * len);
        for (i, t) in batch.iter().enumerate() {
            if t.data.len() != len {
                return Err(EngineError::Input(format!(
                    "image {i} has {} values, the models take {len}",
                    t.data.len()
                )));
            }
            input.extend_from_slice(&t.data);
        }
        let shas: Vec<Sha256Digest> = batch.iter().map(|t| t.sha256).collect();
        self.classify_packed(&shas, &SharedInput::from(input))
    }

    /// Like [`Engine::classify`] for images already packed as NCHW in `input`, one per hash
    /// in `shas` (the full path preprocesses straight into such a buffer).
    pub fn classify_packed(
        &self,
        shas: &[Sha256Digest],
        input: &SharedInput,
    ) -> Result<Vec<Classification>, EngineError> {
        let n = shas.len();
        let input_len = input.as_slice().len();
        if input_len != n * self.preprocessor.tensor_len() {
            return Err(EngineError::Input(format!(
                "{input_len} values for {n} images, the models take {} each",
                self.preprocessor.tensor_len()
            )));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let logits = self.run_models(input, n);
        let len = self.preprocessor.tensor_len();
        shas.iter()
            .zip(input.as_slice().chunks_exact(len))
            .enumerate()
            .map(|(i, (sha, tensor))| {
                let shift = self.shift.as_ref().map(|m| m.score(tensor));
                self.decide_one(*sha, &logits, i, shift)
            })
            .collect()
    }

    fn decide_one(
        &self,
        sha256: Sha256Digest,
        logits: &[ModelLogits],
        i: usize,
        shift: Option<ShiftScore>,
    ) -> Result<Classification, EngineError> {
        let answers: Vec<ModelAnswer> = logits
            .iter()
            .map(|r| match r {
                Ok(rows) => answer_from_logits(&rows[i]),
                Err(error) => ModelAnswer::Failed {
                    error: error.clone(),
                },
            })
            .collect();
        let mut outcome = decide(&answers, &self.rules)?;
        flag_shift(&mut outcome, shift.as_ref());
        let models = self.info.models.iter().cloned().zip(answers).collect();
        Ok(Classification {
            image_sha256: sha256,
            models,
            outcome,
            shift,
        })
    }

    /// Raw logits of every model for `n` images packed as NCHW in `input`, in model order.
    pub fn run_models(&self, input: &SharedInput, n: usize) -> Vec<ModelLogits> {
        run_all(&self.models, &self.workers, &self.spec, input, n)
    }
}

fn missing(p: &ModelRef) -> EngineError {
    EngineError::PinnedMissing {
        name: p.name.clone(),
        version: p.version.clone(),
        sha256: p.sha256,
    }
}

/// The verified models to load: all, or the pinned ones by name and hash in pinned order.
fn select(
    verified: Vec<(ModelEntry, Vec<u8>)>,
    pinned: Option<&[ModelRef]>,
) -> Result<Vec<(ModelEntry, Vec<u8>)>, EngineError> {
    let Some(pinned) = pinned else {
        return Ok(verified);
    };
    pinned
        .iter()
        .map(|p| {
            verified
                .iter()
                .find(|(e, _)| e.name == p.name && e.sha256 == p.sha256)
                .cloned()
                .ok_or_else(|| missing(p))
        })
        .collect()
}
