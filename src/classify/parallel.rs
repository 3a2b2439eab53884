//! Running the ensemble's sessions on one packed batch: on the calling thread, or one
//! persistent thread per model (`ParallelModels`) sharing the caller's input without a copy.

use crate::domain::{Grade, ModelRef};
use ort::session::Session;
use ort::value::TensorRef;
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

/// What a model run needs besides the session: the input's name and (width, height).
#[derive(Clone)]
pub(super) struct RunSpec {
    pub(super) input_name: String,
    pub(super) size: (usize, usize),
}

/// One batch for a [`ModelWorker`]: the packed NCHW input by address, so no copy is made.
/// The sender of a job blocks until every worker has replied (or hung up), so the borrowed
/// input outlives every use of it (see [`Engine::run_models`]).
struct Job {
    input: *const f32,
    len: usize,
    n: usize,
    /// The model's index, sent back with its logits.
    index: usize,
    reply: Sender<(usize, ModelLogits)>,
}

// SAFETY: `input` points into a slice that the sending thread keeps borrowed, unchanged, until
// the worker's reply (or its dropped `reply` sender) has been received.
unsafe impl Send for Job {}

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
    while let Ok(job) = jobs.recv() {
        // SAFETY: see `Job`; the slice is alive and unchanged until we reply.
        let input = unsafe { std::slice::from_raw_parts(job.input, job.len) };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_one(model, spec, input, job.n)
        }))
        .unwrap_or_else(|_| Err("inference thread panicked".into()));
        // The caller may be gone only if it panicked itself; nothing to tell then.
        let _ = job.reply.send((job.index, result));
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
/// their workers at the same time.
pub(super) fn run_all(
    models: &[Arc<LoadedModel>],
    workers: &[ModelWorker],
    spec: &RunSpec,
    input: &[f32],
    n: usize,
) -> Vec<ModelLogits> {
    if workers.is_empty() {
        return models.iter().map(|m| run_one(m, spec, input, n)).collect();
    }
    let (tx, rx) = channel();
    let mut out: Vec<Option<ModelLogits>> = vec![None; models.len()];
    let mut pending = 0;
    for (k, w) in workers.iter().enumerate() {
        let job = Job {
            input: input.as_ptr(),
            len: input.len(),
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
    // Caught, not unwound: unwinding here would free `input` under the workers' feet.
    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_one(&models[0], spec, input, n)
    }));
    out[0] = Some(first.unwrap_or_else(|_| Err("inference thread panicked".into())));
    // Wait for every job sent: `input` must outlive the workers' use of it (see `Job`).
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

pub(super) fn run_one(model: &LoadedModel, spec: &RunSpec, input: &[f32], n: usize) -> ModelLogits {
    let (w, h) = spec.size;
    let started = Instant::now();
    // A poisoned mutex means a panic mid-run; the session itself holds no Rust invariant.
    let mut session = model.session.lock().unwrap_or_else(|p| p.into_inner());
    let tensor = TensorRef::from_array_view(([n, 3, h, w], input)).map_err(|e| e.to_string())?;
    let outputs = session
        .run(ort::inputs![spec.input_name.as_str() => tensor])
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
