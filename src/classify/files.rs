//! Classifying image files fast: a pool of decode threads reads, decodes and preprocesses
//! while one thread runs batched inference, joined by a bounded channel so memory stays flat.
//! Used by `iari classify`, `iari eval` and the benchmark.

use super::decode::{ImageLimits, decode};
use super::engine::{Engine, ImageTensor};
use crate::domain::{Classification, Grade, Sha256Digest};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

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

type Loaded = (usize, Result<ImageTensor, String>);

/// Classifies `files`; results come back in the order of `files`. `progress` is called with
/// the number of files finished after each batch.
pub fn classify_files(
    engine: &Engine,
    files: &[PathBuf],
    opts: &RunOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<FileResult> {
    let mut outcomes: Vec<Option<Result<Classification, String>>> = vec![None; files.len()];
    let next = AtomicUsize::new(0);
    // Two batches in flight keep inference fed without holding the whole folder in memory.
    let (tx, rx) = mpsc::sync_channel::<Loaded>(opts.batch_size.max(1) * 2);
    std::thread::scope(|s| {
        for _ in 0..opts.decode_threads.max(1) {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    if tx
                        .send((i, load_tensor(engine, path, &opts.limits)))
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
        drop(tx);
        infer_loop(engine, &rx, opts.batch_size.max(1), &mut outcomes, progress);
    });
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
    rx: &mpsc::Receiver<Loaded>,
    batch_size: usize,
    outcomes: &mut [Option<Result<Classification, String>>],
    progress: &(dyn Fn(usize) + Sync),
) {
    let mut done = 0;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < batch_size {
            match rx.recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let mut ready: Vec<(usize, ImageTensor)> = Vec::with_capacity(batch.len());
        for (i, loaded) in batch {
            match loaded {
                Ok(t) => ready.push((i, t)),
                Err(e) => {
                    outcomes[i] = Some(Err(e));
                    done += 1;
                }
            }
        }
        let (idx, tensors): (Vec<usize>, Vec<ImageTensor>) = ready.into_iter().unzip();
        match engine.classify(&tensors) {
            Ok(results) => {
                for (i, c) in idx.iter().zip(results) {
                    outcomes[*i] = Some(Ok(c));
                }
            }
            Err(e) => {
                for i in &idx {
                    outcomes[*i] = Some(Err(format!("classification failed: {e}")));
                }
            }
        }
        done += idx.len();
        progress(done);
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
