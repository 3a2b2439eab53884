//! Running the ensemble's sessions on one packed batch: on the calling thread, or one
//! persistent thread per model (`ParallelModels`) sharing the caller's input without a copy
//! (an `Arc` of the caller's buffer, handed back afterwards).
//! On a GPU the batch can be staged on the device once and shared by every session.

use crate::domain::{Grade, ModelRef};
use ort::memory::AllocationDevice;
use ort::session::Session;
use ort::value::{Tensor, TensorRef};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Logits of one model for a batch, or why its run failed.
pub type ModelLogits = Result<Vec<[f32; Grade::COUNT]>, String>;

pub(super) struct LoadedModel {
    pub(super) reference: ModelRef,
    pub(super) session: Mutex<Session>,
}

/// What a model run needs besides the session: the input's name, (width, height), and where
/// to stage each batch once for all sessions (`None`: each session takes the host batch).
#[derive(Clone)]
pub(super) struct RunSpec {
    pub(super) input_name: String,
    pub(super) size: (usize, usize),
    pub(super) stage_on: Option<(AllocationDevice<'static>, i32)>,
}

/// One batch as the sessions read it: packed NCHW in host memory, or one copy already on the
/// device the sessions run on (so ONNX Runtime copies nothing per session).
#[derive(Clone, Copy)]
pub(super) enum Input<'a> {
    Host(&'a [f32]),
    Staged(&'a Tensor<f32>),
}

/// A packed batch that the model threads share without a copy: the caller's buffer moves in
/// (`len` values of it are the batch) and comes back with [`SharedInput::into_inner`] once
/// every thread has let go of it.
#[derive(Debug, Clone)]
pub struct SharedInput {
    data: Arc<Vec<f32>>,
    len: usize,
}

impl SharedInput {
    /// The first `len` values of `buf` (clamped to its length).
    pub fn new(buf: Vec<f32>, len: usize) -> SharedInput {
        let len = len.min(buf.len());
        SharedInput {
            data: Arc::new(buf),
            len,
        }
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data[..self.len]
    }

    /// The buffer back, for reuse; `None` while another holder remains.
    pub fn into_inner(self) -> Option<Vec<f32>> {
        Arc::try_unwrap(self.data).ok()
    }
}

impl From<Vec<f32>> for SharedInput {
    fn from(buf: Vec<f32>) -> SharedInput {
        let len = buf.len();
        SharedInput::new(buf, len)
    }
}

/// The batch as a model thread holds it: the host buffer, or the copy staged on the device.
#[derive(Clone)]
enum Shared {
    Host(SharedInput),
    Staged(Arc<Tensor<f32>>),
}

impl Shared {
    fn view(&self) -> Input<'_> {
        match self {
            Shared::Host(s) => Input::Host(s.as_slice()),
            Shared::Staged(t) => Input::Staged(t),
        }
    }
}

/// One batch for a [`ModelWorker`]; the worker drops its share of the input before it replies,
/// so the caller gets its buffer back whole.
struct Job {
    input: Shared,
    n: usize,
    /// The model's index, sent back with its logits.
    index: usize,
    reply: Sender<(usize, ModelLogits)>,
}

/// A thread, created once at load, that runs one model's session for `ParallelModels`:
/// persistent so a batch costs two channel hand-offs instead of a thread spawn per model.
pub(super) struct ModelWorker {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl ModelWorker {
    pub(super) fn start(model: Arc<LoadedModel>, spec: RunSpec) -> std::io::Result<ModelWorker> {
        let (tx, rx) = channel::<Job>();
        let thread = std::thread::Builder::new()
            .name(format!("iari-model-{}", model.reference.name))
            .spawn(move || worker_loop(&model, &spec, &rx))?;
        Ok(ModelWorker {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }
}

fn worker_loop(model: &LoadedModel, spec: &RunSpec, jobs: &Receiver<Job>) {
    while let Ok(Job {
        input,
        n,
        index,
        reply,
    }) = jobs.recv()
    {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_one(model, spec, input.view(), n)
        }))
        .unwrap_or_else(|_| Err("inference thread panicked".into()));
        drop(input);
        // The caller may be gone only if it panicked itself; nothing to tell then.
        let _ = reply.send((index, result));
    }
}

impl Drop for ModelWorker {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Raw logits of every model for `n` images packed as NCHW in `input`, in model order: on the
/// calling thread alone when there are no workers, else the first model here and the others on
/// their workers at the same time. The batch is staged first when `spec.stage_on` says so.
pub(super) fn run_all(
    models: &[Arc<LoadedModel>],
    workers: &[ModelWorker],
    spec: &RunSpec,
    input: &SharedInput,
    n: usize,
) -> Vec<ModelLogits> {
    let input = match stage(spec, input.as_slice(), n) {
        Ok(Some(t)) => Shared::Staged(Arc::new(t)),
        Ok(None) => Shared::Host(input.clone()),
        Err(e) => return models.iter().map(|_| Err(e.clone())).collect(),
    };
    run_on(models, workers, spec, &input, n)
}

/// [`run_all`] on a batch as the sessions will read it.
fn run_on(
    models: &[Arc<LoadedModel>],
    workers: &[ModelWorker],
    spec: &RunSpec,
    input: &Shared,
    n: usize,
) -> Vec<ModelLogits> {
    if workers.is_empty() {
        return models
            .iter()
            .map(|m| run_one(m, spec, input.view(), n))
            .collect();
    }
    let (tx, rx) = channel();
    let mut out: Vec<Option<ModelLogits>> = vec![None; models.len()];
    let mut pending = 0;
    for (k, w) in workers.iter().enumerate() {
        let job = Job {
            input: input.clone(),
            n,
            index: k + 1,
            reply: tx.clone(),
        };
        match w.jobs.as_ref().map(|j| j.send(job)) {
            Some(Ok(())) => pending += 1,
            _ => out[k + 1] = Some(Err("inference thread is gone".into())),
        }
    }
    drop(tx);
    // Caught, so a panicking model is one failed answer, as on the worker threads.
    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_one(&models[0], spec, input.view(), n)
    }));
    out[0] = Some(first.unwrap_or_else(|_| Err("inference thread panicked".into())));
    // Every job sent is answered (or its thread is gone): each worker has let go of the input.
    for _ in 0..pending {
        match rx.recv() {
            Ok((k, r)) => out[k] = Some(r),
            Err(_) => break,
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err("inference thread panicked".into())))
        .collect()
}

/// One copy of the batch on `spec.stage_on`'s device (`None` when it names none), made before
/// any session runs and read by all of them. The copy is synchronous: it is complete when this
/// returns. Only to a device other than the host: `ort` 2.0.0-rc.15 copies a borrowed host
/// batch to the host by cloning it under the lock it already holds, and hangs.
fn stage(spec: &RunSpec, input: &[f32], n: usize) -> Result<Option<Tensor<f32>>, String> {
    let Some((device, id)) = &spec.stage_on else {
        return Ok(None);
    };
    if *device == AllocationDevice::CPU {
        return Err("a batch is staged only on a device other than the host".into());
    }
    let (w, h) = spec.size;
    let host = TensorRef::from_array_view(([n, 3, h, w], input)).map_err(|e| e.to_string())?;
    host.to(device.clone(), *id)
        .map(Some)
        .map_err(|e| format!("cannot stage the batch on {}: {e}", device.as_str()))
}

pub(super) fn run_one(
    model: &LoadedModel,
    spec: &RunSpec,
    input: Input<'_>,
    n: usize,
) -> ModelLogits {
    let (w, h) = spec.size;
    let started = Instant::now();
    // A poisoned mutex means a panic mid-run; the session itself holds no Rust invariant.
    let mut session = model.session.lock().unwrap_or_else(|p| p.into_inner());
    let name = spec.input_name.as_str();
    let outputs = match input {
        Input::Host(data) => {
            let tensor =
                TensorRef::from_array_view(([n, 3, h, w], data)).map_err(|e| e.to_string())?;
            session.run(ort::inputs![name => tensor])
        }
        Input::Staged(tensor) => session.run(ort::inputs![name => tensor]),
    }
    .map_err(|e| format!("{}: {e}", model.reference.name))?;
    let (shape, data) = outputs[0]
        .try_extract_tensor::<f32>()
        .map_err(|e| e.to_string())?;
    if shape.len() != 2 || shape[0] as usize != n || shape[1] as usize != Grade::COUNT {
        return Err(format!(
            "{}: output shape {shape:?}, expected [{n}, 5]",
            model.reference.name
        ));
    }
    let rows = data
        .chunks_exact(Grade::COUNT)
        .map(|c| [c[0], c[1], c[2], c[3], c[4]])
        .collect();
    crate::metrics::metrics()
        .model_inference_seconds
        .with_label_values(&[model.reference.name.as_str()])
        .observe(started.elapsed().as_secs_f64());
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::manifest::Manifest;
    use crate::classify::preprocess::Preprocessor;
    use crate::classify::runtime::runtime;
    use crate::classify::session::{Threading, create_sessions};
    use crate::config::Settings;

    /// A batch already on the sessions' device (here the CPU, copied from an owned tensor:
    /// the one copy `stage` makes needs a GPU) gives the host batch's logits, on the calling
    /// thread and on a model thread.
    #[test]
    fn a_staged_batch_gives_the_logits_of_the_host_batch() {
        let settings = Settings::load_from(None, Some(Default::default())).unwrap();
        let rt = runtime(&settings.inference, None).unwrap();
        let manifest = Manifest::load(&settings.models.manifest).unwrap();
        let (entry, bytes) = manifest.read_verified().unwrap().remove(0);
        let cpu = crate::config::InferenceSettings {
            device: crate::config::Device::Cpu,
            ..settings.inference.clone()
        };
        let threading = Threading::Sequential { intra_threads: 1 };
        let named = [(entry.name.clone(), bytes.as_slice())];
        let model = || {
            let (mut sessions, _) = create_sessions(rt, &cpu, &named, threading).unwrap();
            Arc::new(LoadedModel {
                reference: Manifest::model_ref(&entry),
                session: Mutex::new(sessions.remove(0)),
            })
        };
        let (w, h) = Preprocessor::from_manifest(&manifest).unwrap().size();
        let spec = RunSpec {
            input_name: manifest.input.name.clone(),
            size: (w, h),
            stage_on: None,
        };
        let n = 3;
        let input: Vec<f32> = (0..n * 3 * w * h).map(|i| (i % 97) as f32 / 97.0).collect();
        let owned = Tensor::from_array(([n, 3, h, w], input.clone())).unwrap();
        let staged = owned.to(AllocationDevice::CPU, 0).unwrap();
        let models = [model(), model()];
        let workers = [ModelWorker::start(models[1].clone(), spec.clone()).unwrap()];
        let shared = SharedInput::from(input.clone());
        let host = run_on(&models, &workers, &spec, &Shared::Host(shared.clone()), n);
        assert!(host.iter().all(Result::is_ok), "{host:?}");
        assert_eq!(host[0], host[1]);
        let from_staged = run_on(
            &models,
            &workers,
            &spec,
            &Shared::Staged(Arc::new(staged)),
            n,
        );
        assert_eq!(host, from_staged);
        // Every worker let go of its share: the buffer comes back whole, for reuse.
        assert_eq!(shared.into_inner(), Some(input));
    }

    #[test]
    fn a_batch_is_never_staged_on_the_host() {
        let spec = RunSpec {
            input_name: "x".into(),
            size: (2, 2),
            stage_on: Some((AllocationDevice::CPU, 0)),
        };
        let e = stage(&spec, &[0.0; 12], 1).unwrap_err();
        assert!(e.contains("other than the host"), "{e}");
        assert_eq!(
            run_all(&[], &[], &spec, &SharedInput::from(vec![0.0; 12]), 1),
            Vec::<ModelLogits>::new()
        );
    }
}
