//! `make bench` (`cargo bench --bench classify`): a plain harness (no criterion; it reports
//! images per second, which criterion does not) for the classification path on the sample
//! images: decode + preprocess alone, the shift score alone, inference alone at batch
//! 1/8/32/64, the full `classify_files` path, and the ONNX Runtime threading layouts. Each layout runs in its own
//! process because ONNX Runtime allows one environment (and global pool) per process.
//!
//! Environment: `BENCH_IMAGES` (folder, default `onnx/samples`), `BENCH_SECONDS` (per
//! measurement, default 3), `BENCH_ROUNDS` (interleaved rounds of the full path against its
//! parts, default 5; see `rounds.rs`), `ORT_DYLIB_PATH`. `BENCH_ONLY=decode|shift|inference|full`
//! runs just that part over `BENCH_IMAGE_COUNT` images (default 400) with no timing, for
//! instruction counts under `valgrind --tool=callgrind` (repeatable on a noisy host);
//! `BENCH_ONLY=rounds` runs just the interleaved rounds.
//! `BENCH_DEVICE=cuda|auto|cpu` picks the provider (default cpu; on a GPU the answers are first
//! compared with the CPU provider's, `BENCH_PARITY=1` does so on the CPU too); `BENCH_FULL_BATCH`
//! may list several batch sizes; `BENCH_EXTRAS=0` skips the CPU overhead studies (the one-thread line,
//! the interleaved rounds, the threading layouts), which say nothing about a GPU.

mod parity;
mod rounds;

use rounds::Part;

use iari::classify::files::{RunOptions, classify_files, collect_images, file_batch, load_tensor};
use iari::classify::{Engine, ImageLimits, SharedInput, Threading, decode};
use iari::config::Settings;
use iari::domain::Sha256Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Process CPU time (user + system) from /proc/self/stat, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// Minor page faults of the process (/proc/self/stat field 10) and context switches of all
/// its live threads (/proc/self/task/*/status), to see where CPU time beyond the work goes.
fn faults_and_switches() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let minflt = rest
        .split_whitespace()
        .nth(7)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let mut switches = 0.0;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        switches += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .sum::<f64>();
    }
    (minflt, switches)
}

struct Measure {
    images: usize,
    wall: f64,
    cpu: f64,
    faults: f64,
    switches: f64,
}

impl Measure {
    fn per_second(&self) -> f64 {
        self.images as f64 / self.wall
    }
    fn cpu_ms_per_image(&self) -> f64 {
        self.cpu * 1000.0 / self.images as f64
    }
}

/// Repeats `f` (which handles `n` images per call) for at least `budget`.
fn measure(budget: Duration, n: usize, mut f: impl FnMut()) -> Measure {
    f(); // warm-up: caches, arenas, weight matrices
    let (start, cpu0, (f0, s0)) = (Instant::now(), cpu_seconds(), faults_and_switches());
    let mut images = 0;
    while start.elapsed() < budget {
        f();
        images += n;
    }
    let (f1, s1) = faults_and_switches();
    Measure {
        images,
        wall: start.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - cpu0,
        faults: f1 - f0,
        // Threads that ended during the run (the full path's decode threads) are not counted.
        switches: s1 - s0,
    }
}

/// The repository: cargo's `CARGO_MANIFEST_DIR` when run by cargo, else the working directory
/// (a prebuilt binary carried to another host, run from the repository's root).
fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

fn settings() -> Settings {
    settings_on(&std::env::var("BENCH_DEVICE").unwrap_or_else(|_| "cpu".into()))
}

fn settings_on(device: &str) -> Settings {
    let root = root();
    let env: HashMap<String, String> = [
        ("IARI__INFERENCE__DEVICE", device.to_string()),
        (
            "IARI__MODELS__MANIFEST",
            root.join("onnx/models/manifest.json").display().to_string(),
        ),
        ("IARI__LOG__LEVEL", "warn".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    // The process's own IARI__ variables (e.g. IARI__INFERENCE__CUDA_TF32) win.
    .chain(
        std::env::vars().filter(|(k, _)| k.starts_with("IARI__") && k != "IARI__INFERENCE__DEVICE"),
    )
    .collect();
    Settings::load_from(None, Some(env)).expect("bench settings")
}

fn images() -> Vec<PathBuf> {
    let root = root();
    let dir = std::env::var("BENCH_IMAGES").map_or(root.join("onnx/samples"), PathBuf::from);
    let files = collect_images(std::slice::from_ref(&dir)).expect("bench images");
    assert!(!files.is_empty(), "no images under {}", dir.display());
    files
}

fn budget() -> Duration {
    let s = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(s)
}

/// A comma-separated list of batch sizes from `var`, or `default` when unset or empty.
fn batch_list(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var)
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|b| b.trim().parse().ok())
                .collect::<Vec<_>>()
        })
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

/// Batch sizes for "inference alone" (`BENCH_BATCHES=1,8,32,64` by default; larger for a GPU).
fn batches() -> Vec<usize> {
    batch_list("BENCH_BATCHES", &[1, 8, 32, 64])
}

/// Batch sizes of the full path (`BENCH_FULL_BATCH=32` by default; a list measures each).
fn full_batches() -> Vec<usize> {
    batch_list("BENCH_FULL_BATCH", &[32])
}

/// The first of [`full_batches`]: the one the overhead studies use.
fn full_batch() -> usize {
    full_batches()[0]
}

/// Decode threads of the full path: every core but the one that runs inference.
fn decode_threads() -> usize {
    num_cpus::get().saturating_sub(1).max(1)
}

/// Whether to run the CPU overhead studies (`BENCH_EXTRAS`, default on).
fn extras() -> bool {
    std::env::var("BENCH_EXTRAS").map_or(true, |v| v != "0")
}

fn threading(name: &str) -> Threading {
    match name {
        "parallel-models" => Threading::ParallelModels,
        "sequential-1" => Threading::Sequential { intra_threads: 1 },
        "sequential-2" => Threading::Sequential { intra_threads: 2 },
        "global-pool-2" => Threading::GlobalPool { threads: 2 },
        "ort-default" => Threading::OrtDefault,
        other => panic!("unknown threading {other}"),
    }
}

/// Preprocessed tensors of the sample images from the `first`, packed NCHW, cycled to `n`.
fn packed(engine: &Engine, tensors: &[Vec<f32>], first: usize, n: usize) -> Vec<f32> {
    let len = engine.preprocessor().tensor_len();
    let mut out = Vec::with_capacity(n * len);
    for t in tensors.iter().cycle().skip(first).take(n) {
        out.extend_from_slice(t);
    }
    out
}

/// Read, hash, decode and preprocess: one file per call, cycling through `files`.
fn decode_part<'a>(engine: &'a Engine, files: &'a [PathBuf], limits: ImageLimits) -> Part<'a> {
    let mut i = 0;
    Part {
        images_per_call: 1,
        call: Box::new(move || {
            let t = load_tensor(engine, &files[i % files.len()], &limits).unwrap();
            i += 1;
            std::hint::black_box(t);
        }),
    }
}

/// The shift score of one preprocessed sample per call, cycling through them (the engine
/// computes it for every image of the full path; `IARI__MODELS__MANIFEST` naming a manifest
/// without `shift` runs the full path without it, for a before/after).
fn shift_part<'a>(engine: &'a Engine, tensors: &'a [Vec<f32>]) -> Part<'a> {
    let model = engine
        .shift()
        .expect("the manifest has no shift reference to time");
    let mut i = 0;
    Part {
        images_per_call: 1,
        call: Box::new(move || {
            std::hint::black_box(model.score(&tensors[i % tensors.len()]));
            i += 1;
        }),
    }
}

/// One inference run per call over `batch` of the preprocessed sample tensors: the calls go
/// through every sample batch by batch, as the full path does, rather than rerunning the first
/// batch (whose one input, reused, stays in cache: 1–2 % less CPU per image here).
fn inference_part<'a>(engine: &'a Engine, tensors: &[Vec<f32>], batch: usize) -> Part<'a> {
    let inputs: Vec<SharedInput> = (0..tensors.len().div_ceil(batch))
        .map(|k| packed(engine, tensors, k * batch, batch).into())
        .collect();
    let mut k = 0;
    Part {
        images_per_call: batch,
        call: Box::new(move || {
            let out = engine.run_models(&inputs[k % inputs.len()], batch);
            k += 1;
            assert!(out.iter().all(Result::is_ok));
        }),
    }
}

/// The whole `classify_files` path over the image files per call, at most `batch` per run.
fn full_part<'a>(
    engine: &'a Engine,
    files: &'a [PathBuf],
    limits: ImageLimits,
    batch: usize,
) -> Part<'a> {
    let opts = RunOptions {
        batch_size: batch,
        decode_threads: decode_threads(),
        limits,
    };
    Part {
        images_per_call: files.len(),
        call: Box::new(move || {
            let r = classify_files(engine, files, &opts, &|_| {});
            assert!(r.iter().all(|r| r.outcome.is_ok()));
        }),
    }
}

/// `BENCH_ROUNDS` (default 5) interleaved rounds of parts and whole, each window a third of
/// `BENCH_SECONDS`; inference at the batch size the full path really runs.
fn overhead_rounds(engine: &Engine, files: &[PathBuf], tensors: &[Vec<f32>], limits: ImageLimits) {
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let batch = file_batch(files.len(), full_batch(), decode_threads());
    println!(
        "\nfull path against its parts, {rounds} interleaved rounds (inference at batch {batch}, as the full path runs {} files):",
        files.len()
    );
    rounds::compare(
        rounds,
        budget() / 3,
        decode_part(engine, files, limits),
        inference_part(engine, tensors, batch),
        full_part(engine, files, limits, full_batch()),
    );
}

/// Child process: inference alone and the full path under one threading layout, one line.
fn run_layout(name: &str, tensors: &[Vec<f32>], files: &[PathBuf], limits: ImageLimits) {
    let engine = Engine::load_with(&settings(), threading(name), None).expect("engine");
    let cells: Vec<String> = [1, 8, 32, 64]
        .iter()
        .map(|&b| {
            let m = inference_part(&engine, tensors, b).measure(budget());
            format!("{:>8.0}", m.per_second())
        })
        .collect();
    let full = full_part(&engine, files, limits, full_batch()).measure(budget());
    println!(
        "{name:<16} {}   {:>8.0} ({:.3} ms CPU/image)",
        cells.join(" "),
        full.per_second(),
        full.cpu_ms_per_image()
    );
}

/// One part alone over about `BENCH_IMAGE_COUNT` images (after one warm-up call), untimed.
fn run_only(
    part: &str,
    engine: &Engine,
    files: &[PathBuf],
    bytes: &[Vec<u8>],
    limits: ImageLimits,
) {
    let count: usize = std::env::var("BENCH_IMAGE_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let tensors = preprocess_all(engine, bytes, &limits);
    if part == "rounds" {
        return overhead_rounds(engine, files, &tensors, limits);
    }
    let batch = file_batch(files.len(), full_batch(), decode_threads());
    let mut p = match part {
        "decode" => decode_part(engine, files, limits),
        "shift" => shift_part(engine, &tensors),
        "inference" => inference_part(engine, &tensors, batch),
        "full" => full_part(engine, files, limits, full_batch()),
        other => panic!("BENCH_ONLY: unknown part {other}"),
    };
    (p.call)();
    let calls = count.div_ceil(p.images_per_call);
    for _ in 0..calls {
        (p.call)();
    }
    println!(
        "{part}: {} images after one warm-up call",
        calls * p.images_per_call
    );
}

/// The bytes of the first 256 files (a large image set for a GPU is the samples copied), each
/// checked to decode: the source of the tensors that inference alone cycles through.
fn read_all(files: &[PathBuf], limits: &ImageLimits) -> Vec<Vec<u8>> {
    let out: Vec<Vec<u8>> = files
        .iter()
        .take(256)
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    for b in &out {
        decode(b, limits).expect("bench image decodes");
    }
    out
}

/// The model input of each of `bytes` (images already checked to decode by [`read_all`]).
fn preprocess_all(engine: &Engine, bytes: &[Vec<u8>], limits: &ImageLimits) -> Vec<Vec<f32>> {
    bytes
        .iter()
        .map(|b| engine.preprocessor().run(&decode(b, limits).unwrap().rgb))
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; arguments are ignored.
    let files = images();
    let s = settings();
    let limits = ImageLimits::from(&s.images);
    let bytes = read_all(&files, &limits);
    if let Ok(layout) = std::env::var("IARI_BENCH_LAYOUT") {
        let pre = Engine::load_with(&s, Threading::Sequential { intra_threads: 1 }, None);
        let pre = pre.expect("engine");
        let tensors = preprocess_all(&pre, &bytes, &limits);
        drop(pre);
        return run_layout(&layout, &tensors, &files, limits);
    }
    let engine = Engine::load(&s).expect("engine");
    if let Ok(part) = std::env::var("BENCH_ONLY") {
        return run_only(&part, &engine, &files, &bytes, limits);
    }
    let layout = Threading::from_settings(&s.inference);
    println!(
        "IARI classification bench: {} images, {} CPU(s), {} decode thread(s) in the full path, ONNX Runtime {}, layout {layout:?}",
        files.len(),
        num_cpus::get(),
        decode_threads(),
        engine.info().execution.onnxruntime_version
    );
    // The same per-file work as the full path: read, hash, decode, preprocess.
    let dp = decode_part(&engine, &files, limits).measure(budget());
    report("read+hash+decode+preprocess, 1 thread", &dp);
    let tensors = preprocess_all(&engine, &bytes, &limits);
    match engine.info().shift {
        Some(_) => report(
            "shift score alone, 1 thread",
            &shift_part(&engine, &tensors).measure(budget()),
        ),
        None => println!("shift score: none (the manifest has no shift reference)"),
    }
    let execution = &engine.info().execution;
    println!(
        "execution provider: {} (requested {}{})",
        execution.provider,
        execution.requested,
        execution
            .fallback_reason
            .as_deref()
            .map_or(String::new(), |r| format!("; fallback: {r}"))
    );
    // On a GPU, against the CPU path; `BENCH_PARITY=1` runs it on the CPU too (a self-check:
    // it must report no difference).
    if execution.provider != "CPUExecutionProvider" || std::env::var_os("BENCH_PARITY").is_some() {
        let cpu = Engine::load_with(&settings_on("cpu"), layout, None).expect("CPU engine");
        let shas: Vec<Sha256Digest> = bytes.iter().map(|b| Sha256Digest::of(b)).collect();
        parity::report(&engine, &cpu, &tensors, &shas);
    }
    let mut infer_cpu_32 = 0.0;
    for batch in batches() {
        let m = inference_part(&engine, &tensors, batch).measure(budget());
        if batch == 32 {
            infer_cpu_32 = m.cpu_ms_per_image();
        }
        report(&format!("inference alone, batch {batch}"), &m);
    }
    for batch in full_batches() {
        let full = full_part(&engine, &files, limits, batch).measure(budget());
        report(&format!("full classify path, batch {batch}"), &full);
    }
    if !extras() {
        return;
    }
    // Same work on one thread, no overlap: separates pipeline cost from two-thread contention.
    let serial = measure(budget(), files.len(), || {
        for chunk in files.chunks(32) {
            let batch: Vec<_> = chunk
                .iter()
                .map(|p| load_tensor(&engine, p, &limits).unwrap())
                .collect();
            std::hint::black_box(engine.classify(&batch).unwrap());
        }
    });
    report("same work, one thread, no overlap", &serial);
    let sum = dp.cpu_ms_per_image() + infer_cpu_32;
    println!("  (decode+preprocess + inference at batch 32 = {sum:.3} ms CPU/image)");
    overhead_rounds(&engine, &files, &tensors, limits);
    drop(engine);
    println!(
        "\nby threading layout: inference alone, images/s at batch 1 / 8 / 32 / 64; full path:"
    );
    let exe = std::env::current_exe().expect("own path");
    for layout in [
        "ort-default",
        "sequential-1",
        "sequential-2",
        "parallel-models",
        "global-pool-2",
    ] {
        let status = std::process::Command::new(&exe)
            .env("IARI_BENCH_LAYOUT", layout)
            .status()
            .expect("layout run");
        assert!(status.success(), "layout {layout} failed");
    }
}

fn report(what: &str, m: &Measure) {
    let per = |x: f64| x / m.images as f64;
    println!(
        "{what:<40} {:>7.0} images/s  {:.3} ms CPU/image  ({:.1} page faults, {:.2} context switches per image)",
        m.per_second(),
        m.cpu_ms_per_image(),
        per(m.faults),
        per(m.switches)
    );
}
