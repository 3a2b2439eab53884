//! Classifying image files fast: a pool of decode threads reads, decodes and preprocesses
//! while one thread runs batched inference, joined by a bounded channel so memory stays flat.
//! Used by `iari classify`, `iari eval` and the benchmark.

use super::decode::{ImageLimits, decode};
use super::engine::{Engine, ImageTensor};
use super::parallel::SharedInput;
use crate::domain::{Classification, Grade, Sha256Digest};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

/// File extensions taken as images when walking folders.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "tif", "tiff", "bmp"];

/// What happened to one file.
#[derive(Debug)]
pub struct FileResult {
    pub path: PathBuf,
    pub outcome: Result<Classification, String>,
}

/// How the files are pushed through.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub batch_size: usize,
    pub decode_threads: usize,
    pub limits: ImageLimits,
}

/// Files named, and image files under folders named (recursive, sorted), in argument order.
pub fn collect_images(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_image(&p) {
            out.push(p);
        }
    }
    Ok(())
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Reads, decodes and preprocesses one file into a tensor.
pub fn load_tensor(
    engine: &Engine,
    path: &Path,
    limits: &ImageLimits,
) -> Result<ImageTensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let image = decode(&bytes, limits).map_err(|e| e.to_string())?;
    let data = engine.preprocessor().run(&image.rgb);
    Ok(ImageTensor {
        sha256: Sha256Digest::of(&bytes),
        data,
    })
}

/// A batch being built by a decode thread: images preprocessed straight into `input` (sized
/// for a full batch once, then reused), their indices and hashes, and the files that failed.
struct Batch {
    input: Vec<f32>,
    idx: Vec<usize>,
    shas: Vec<Sha256Digest>,
    failed: Vec<(usize, String)>,
}

impl Batch {
    /// The input comes from the engine's spare buffers (handed back when the run ends), so
    /// repeated runs do not fault in fresh pages for every batch.
    fn new(engine: &Engine, batch_size: usize) -> Batch {
        Batch {
            input: engine.input_buffer(batch_size),
            idx: Vec::with_capacity(batch_size),
            shas: Vec::with_capacity(batch_size),
            failed: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.idx.clear();
        self.shas.clear();
        self.failed.clear();
    }

    fn len(&self) -> usize {
        self.idx.len() + self.failed.len()
    }
}

/// Per decode thread buffers, reused from file to file.
#[derive(Default)]
struct Scratch {
    bytes: Vec<u8>,
    rows: Vec<f64>,
}

/// Reads, hashes, decodes and preprocesses one file into `out` (one image's tensor).
fn load_into(
    engine: &Engine,
    path: &Path,
    limits: &ImageLimits,
    out: &mut [f32],
    sc: &mut Scratch,
) -> Result<Sha256Digest, String> {
    sc.bytes.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut sc.bytes))
        .map_err(|e| format!("cannot read: {e}"))?;
    let image = decode(&sc.bytes, limits).map_err(|e| e.to_string())?;
    engine
        .preprocessor()
        .run_into_with(&image.rgb, out, &mut sc.rows);
    Ok(Sha256Digest::of(&sc.bytes))
}

/// The batch size that splits `n` files into as many batches as `max` would, but of equal size
/// (±1): 100 files at 32 run as 4 × 25, not 32 + 32 + 32 + 4, whose short last run costs more
/// per image. Folders of many batches are unaffected (5,000 at 32 stays 32).
pub fn balanced_batch(n: usize, max: usize) -> usize {
    let max = max.max(1);
    let batches = n.div_ceil(max).max(1);
    n.div_ceil(batches).clamp(1, max)
}

/// The batch size [`classify_files`] uses for `n` files, at most `max`, on `threads` decode
/// threads. Each thread fills whole batches of consecutive files, so every batch but the last
/// has this one size: a GPU provider tunes its kernels once per input shape, and batches of
/// ever-changing sizes (threads sharing out the last files one by one) made it re-tune every
/// batch, 138 images/s on an H100 (BENCHMARKS.md, `make bench-gpu`). The size is also small
/// enough that every thread gets a batch when the files allow, so none waits for want of work.
pub fn file_batch(n: usize, max: usize, threads: usize) -> usize {
    balanced_batch(n, max.min(n.div_ceil(threads.max(1))))
}

/// Classifies `files`; results come back in the order of `files`. `progress` is called with
/// the number of files finished after each batch.
pub fn classify_files(
    engine: &Engine,
    files: &[PathBuf],
    opts: &RunOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<FileResult> {
    let mut outcomes: Vec<Option<Result<Classification, String>>> = vec![None; files.len()];
    let batch_size = file_batch(files.len(), opts.batch_size, opts.decode_threads);
    let tensor_len = engine.preprocessor().tensor_len();
    // The next batch to fill: files [k × batch_size, (k + 1) × batch_size).
    let next = AtomicUsize::new(0);
    // Decode threads build whole batches; one queued while another is inferred keeps inference
    // fed without holding the whole folder in memory. Spent batches come back for reuse.
    let (tx, rx) = mpsc::sync_channel::<Batch>(1);
    let (recycle_tx, recycle_rx) = mpsc::channel::<Batch>();
    let recycle_rx = Mutex::new(recycle_rx);
    std::thread::scope(|s| {
        for _ in 0..opts.decode_threads.max(1) {
            let tx = tx.clone();
            let (next, recycle_rx) = (&next, &recycle_rx);
            s.spawn(move || {
                let mut sc = Scratch::default();
                loop {
                    let recycled = recycle_rx.lock().ok().and_then(|r| r.try_recv().ok());
                    let mut b = recycled.unwrap_or_else(|| Batch::new(engine, batch_size));
                    b.clear();
                    let first = next.fetch_add(1, Ordering::Relaxed) * batch_size;
                    let last = (first + batch_size).min(files.len());
                    for (i, path) in files.iter().enumerate().take(last).skip(first) {
                        let k = b.idx.len();
                        let out = &mut b.input[k * tensor_len..(k + 1) * tensor_len];
                        match load_into(engine, path, &opts.limits, out, &mut sc) {
                            Ok(sha) => {
                                b.idx.push(i);
                                b.shas.push(sha);
                            }
                            Err(e) => b.failed.push((i, e)),
                        }
                    }
                    if b.len() == 0 {
                        engine.recycle_input(b.input);
                        break;
                    }
                    if tx.send(b).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        infer_loop(
            engine,
            &rx,
            &recycle_tx,
            tensor_len,
            &mut outcomes,
            progress,
        );
    });
    drop(recycle_tx);
    if let Ok(spent) = recycle_rx.into_inner() {
        for b in spent.try_iter() {
            engine.recycle_input(b.input);
        }
    }
    files
        .iter()
        .zip(outcomes)
        .map(|(path, o)| FileResult {
            path: path.clone(),
            outcome: o.unwrap_or_else(|| Err("not processed".into())),
        })
        .collect()
}

fn infer_loop(
    engine: &Engine,
    rx: &mpsc::Receiver<Batch>,
    recycle: &mpsc::Sender<Batch>,
    tensor_len: usize,
    outcomes: &mut [Option<Result<Classification, String>>],
    progress: &(dyn Fn(usize) + Sync),
) {
    let mut done = 0;
    while let Ok(mut b) = rx.recv() {
        for (i, e) in b.failed.drain(..) {
            outcomes[i] = Some(Err(e));
            done += 1;
        }
        // The buffer moves to the model threads and back; the next batch overwrites it.
        let full = b.input.len();
        let input = SharedInput::new(std::mem::take(&mut b.input), b.idx.len() * tensor_len);
        let result = engine.classify_packed(&b.shas, &input);
        b.input = input.into_inner().unwrap_or_else(|| vec![0.0; full]);
        match result {
            Ok(results) => {
                for (i, c) in b.idx.iter().zip(results) {
                    outcomes[*i] = Some(Ok(c));
                }
            }
            Err(e) => {
                for i in &b.idx {
                    outcomes[*i] = Some(Err(format!("classification failed: {e}")));
                }
            }
        }
        done += b.idx.len();
        progress(done);
        // The decode threads may all have finished; the batch is simply dropped then.
        let _ = recycle.send(b);
    }
}

/// The labelled-folder grade of a file: the name of its parent folder (`neg`, `1+`/`1p` …).
pub fn label_of(path: &Path) -> Option<Grade> {
    let parent = path.parent()?.file_name()?.to_str()?;
    Grade::from_folder_name(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_balanced_without_adding_runs() {
        for (n, max, want) in [
            (100, 32, 25),
            (5000, 32, 32),
            (64, 32, 32),
            (65, 32, 22),
            (3, 32, 3),
            (0, 32, 1),
            (7, 0, 1),
        ] {
            let b = balanced_batch(n, max);
            assert_eq!(b, want, "n {n} max {max}");
            assert_eq!(
                n.div_ceil(b),
                n.div_ceil(max.max(1)),
                "same number of runs for n {n}"
            );
        }
    }

    #[test]
    fn file_batches_are_one_size_and_leave_no_decode_thread_idle() {
        for (n, max, threads, want) in [
            (100, 32, 1, 25),     // the 2-core machine: as balanced_batch
            (5000, 32, 1, 32),    // many batches: the configured size
            (2000, 256, 15, 134), // 15 batches, one per thread
            (2000, 1024, 15, 134),
            (100_000, 256, 15, 256),
            (10, 256, 15, 1),
            (0, 32, 4, 1),
        ] {
            assert_eq!(
                file_batch(n, max, threads),
                want,
                "{n} files, {max}, {threads}"
            );
        }
    }

    #[test]
    fn folders_are_walked_recursively_for_images_only() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("neg");
        std::fs::create_dir(&sub).unwrap();
        for name in ["b.PNG", "a.jpg", "notes.txt"] {
            std::fs::write(sub.join(name), b"x").unwrap();
        }
        std::fs::write(dir.path().join("c.tiff"), b"x").unwrap();
        let explicit = dir.path().join("notes.md");
        let found = collect_images(&[dir.path().to_path_buf(), explicit.clone()]).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["c.tiff", "a.jpg", "b.PNG", "notes.md"]);
        assert_eq!(label_of(&found[1]), Some(Grade::Neg));
        assert_eq!(label_of(&found[0]), None);
    }
}
