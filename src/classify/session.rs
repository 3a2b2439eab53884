//! Session creation for the ensemble: the execution provider (CUDA with a fallback to CPU that
//! is logged, counted and recorded) and the threading layout for many small sessions.

use super::runtime::Runtime;
use crate::config::{ConvSearch, Device, InferenceSettings};
use crate::domain::ExecutionInfo;
use ort::ep;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

pub const CPU_PROVIDER: &str = "CPUExecutionProvider";
pub const CUDA_PROVIDER: &str = "CUDAExecutionProvider";

/// How the sessions share the cores. Measured in BENCHMARKS.md (`make bench`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threading {
    /// Models run one after another; each session has its own pool of `intra_threads`
    /// threads, spinning off.
    Sequential { intra_threads: usize },
    /// Each session runs single-threaded; the models of a batch run in parallel, on one
    /// persistent thread per model (started at load) plus the calling thread.
    ParallelModels,
    /// Models run one after another on the environment's one shared pool (set up when the
    /// runtime is first loaded).
    GlobalPool { threads: usize },
    /// ONNX Runtime's defaults (a spinning pool per session sized to the machine); kept only
    /// as the baseline the others are measured against.
    OrtDefault,
}

impl Threading {
    /// The layout for `inference.intra_threads`: n > 0 asks for sequential models with n
    /// threads each; 0 lets the engine choose: the models in parallel, one thread each. On the
    /// 2-core reference machine that beat every other layout at every batch size (1–64) and on
    /// the full path, at less CPU per image (BENCHMARKS.md, `make bench`): the OS spreads five
    /// single-threaded runs over the cores with no intra-op synchronisation at all. Machines
    /// with many more cores than models may do better with `intra_threads = n`; not measured.
    pub fn from_settings(s: &InferenceSettings) -> Threading {
        match s.intra_threads {
            0 => Threading::ParallelModels,
            n => Threading::Sequential { intra_threads: n },
        }
    }

    pub fn global_pool_threads(self) -> Option<usize> {
        match self {
            Threading::GlobalPool { threads } => Some(threads),
            _ => None,
        }
    }
}

fn builder(rt: &Runtime, threading: Threading) -> ort::Result<SessionBuilder> {
    // No memory patterns: the worker's batches come in every size from 1 to `batch_size`, and
    // ONNX Runtime plans and keeps a pattern per input shape in each session's arena. Off, the
    // worker's peak RSS drops by ~25 MiB (142 → 117 MiB draining 5,000 captures) at the same
    // CPU per image (BENCHMARKS.md, `make bench-e2e`). The CPU arena itself stays on: without it
    // the peak grew to 251 MiB, the freed activations scattered over glibc's per-thread heaps.
    let b = Session::builder(rt.environment())?
        .with_optimization_level(GraphOptimizationLevel::All)?
        .with_memory_pattern(false)?;
    let intra = match threading {
        Threading::Sequential { intra_threads } => Some(intra_threads),
        Threading::ParallelModels => Some(1),
        // The environment's pool serves every session when it has one.
        Threading::GlobalPool { .. } if rt.has_global_pool() => None,
        Threading::GlobalPool { threads } => Some(threads),
        Threading::OrtDefault => return Ok(b),
    };
    let b = match intra {
        Some(n) => b.with_intra_threads(n)?.with_intra_op_spinning(false)?,
        None => b,
    };
    Ok(b.with_inter_threads(1)?)
}

/// The CUDA provider's options (`inference.cuda_*`).
#[derive(Debug, Clone, Copy)]
struct Cuda {
    device_id: i32,
    tf32: bool,
    conv_search: ConvSearch,
}

fn build_one(
    rt: &Runtime,
    bytes: &[u8],
    threading: Threading,
    cuda: Option<Cuda>,
) -> ort::Result<Session> {
    let mut b = builder(rt, threading)?;
    if let Some(c) = cuda {
        let cuda = ep::CUDA::default()
            .with_device_id(c.device_id)
            .with_tf32(c.tf32)
            .with_conv_algorithm_search(match c.conv_search {
                ConvSearch::Exhaustive => ep::cuda::ConvAlgorithmSearch::Exhaustive,
                ConvSearch::Heuristic => ep::cuda::ConvAlgorithmSearch::Heuristic,
                ConvSearch::Default => ep::cuda::ConvAlgorithmSearch::Default,
            })
            .build()
            .error_on_failure();
        b = b.with_execution_providers([cuda])?;
    }
    b.commit_from_memory(bytes)
}

fn build_all(
    rt: &Runtime,
    models: &[(String, &[u8])],
    threading: Threading,
    cuda: Option<Cuda>,
) -> Result<Vec<Session>, (String, ort::Error)> {
    models
        .iter()
        .map(|(name, bytes)| build_one(rt, bytes, threading, cuda).map_err(|e| (name.clone(), e)))
        .collect()
}

/// Why sessions could not be created.
#[derive(Debug)]
pub enum BuildError {
    /// `device = cuda` and CUDA does not work here.
    Cuda(String),
    /// A model cannot be loaded by ONNX Runtime at all.
    Model { model: String, reason: String },
}

/// Sessions for `models` (name, verified bytes) on the configured device, and what really ran.
pub fn create_sessions(
    rt: &Runtime,
    settings: &InferenceSettings,
    models: &[(String, &[u8])],
    threading: Threading,
) -> Result<(Vec<Session>, ExecutionInfo), BuildError> {
    let info = |provider: &str, fallback_reason: Option<String>| ExecutionInfo {
        provider: provider.into(),
        requested: settings.device.as_str().into(),
        fallback_reason,
        onnxruntime_version: rt.version().into(),
    };
    let on_cpu = || {
        build_all(rt, models, threading, None).map_err(|(model, e)| BuildError::Model {
            model,
            reason: e.to_string(),
        })
    };
    if settings.device == Device::Cpu {
        return Ok((on_cpu()?, info(CPU_PROVIDER, None)));
    }
    let cuda = Cuda {
        device_id: settings.cuda_device_id,
        tf32: settings.cuda_tf32,
        conv_search: settings.cuda_conv_search,
    };
    match build_all(rt, models, threading, Some(cuda)) {
        Ok(sessions) => Ok((sessions, info(CUDA_PROVIDER, None))),
        Err((model, e)) => {
            let reason = format!("CUDA unavailable ({model}): {}", one_line(&e.to_string()));
            if settings.device == Device::Cuda {
                return Err(BuildError::Cuda(reason));
            }
            tracing::warn!(reason = %reason, "inference.device = auto: falling back to the CPU");
            Ok((on_cpu()?, info(CPU_PROVIDER, Some(reason))))
        }
    }
}

/// ONNX Runtime messages can span lines; provenance and logs want one.
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.len() > 400 {
        let mut cut = 400;
        while !joined.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &joined[..cut])
    } else {
        joined
    }
}

/// Publishes which provider runs to `/metrics`.
pub fn record_provider(info: &ExecutionInfo) {
    let fallback = info.fallback_reason.as_deref().unwrap_or("");
    crate::metrics::metrics()
        .execution_provider
        .with_label_values(&[info.provider.as_str(), info.requested.as_str(), fallback])
        .set(1);
}
