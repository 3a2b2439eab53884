//! Image bytes for a capture: a file confined to `images.root`, or the event's inline base64.
//! Enforces the byte limit before reading or decoding and checks the optional SHA-256.
//! Pixel limits and decoding belong to `classify::decode`.
//!
//! A file is opened beneath the root's directory descriptor (`openat2` with `RESOLVE_BENEATH`):
//! the kernel refuses any walk that leads out, so no check-then-open race can swap a link in
//! between. It is opened non-blocking (a FIFO
//! cannot stall the batch) and checked on the opened descriptor.

use crate::domain::Sha256Digest;
use crate::domain::{DeadLetterReason, Failure};
use crate::domain::{ImageRef, ImageSource};
use base64::Engine as _;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// The image root, canonicalized once, its directory descriptor, and the byte limit.
#[derive(Debug, Clone)]
pub struct ImageRoot {
    root: PathBuf,
    dir: Arc<OwnedFd>,
    max_bytes: u64,
}

impl ImageRoot {
    /// Canonicalizes `root` (so absolute event paths compare correctly) and opens it.
    pub fn new(root: &Path, max_bytes: u64) -> std::io::Result<Self> {
        let root = root.canonicalize()?;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = rustix::fs::open(&root, flags, Mode::empty())?;
        Ok(ImageRoot {
            root,
            dir: Arc::new(dir),
            max_bytes,
        })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}

/// The bytes to classify and what is known about them before decoding.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub bytes: Vec<u8>,
    pub sha256: Sha256Digest,
    /// Declared by an inline event; a file's type is sniffed from its bytes by the caller.
    pub media_type: Option<String>,
}

/// Fetches and checks the bytes an event points at. Blocking (file I/O): call off the async threads.
pub fn load_image(image: &ImageRef, root: &ImageRoot) -> Result<LoadedImage, Failure> {
    let (bytes, media_type) = match &image.source {
        ImageSource::Path(path) => (read_confined(path, root)?, None),
        ImageSource::Inline { base64, media_type } => (
            decode_inline(base64, root.max_bytes)?,
            Some(media_type.clone()),
        ),
    };
    let sha256 = Sha256Digest::of(&bytes);
    if let Some(expected) = image.sha256
        && expected != sha256
    {
        return Err(Failure::new(
            DeadLetterReason::ImageHashMismatch,
            format!("image.sha256 is {expected} but the bytes hash to {sha256}"),
        ));
    }
    Ok(LoadedImage {
        bytes,
        sha256,
        media_type,
    })
}

fn outside(path: &Path, why: &str) -> Failure {
    Failure::new(
        DeadLetterReason::PathOutsideRoot,
        format!("{}: {why}", path.display()),
    )
}

fn too_large(size: u64, max: u64) -> Failure {
    Failure::new(
        DeadLetterReason::ImageTooLarge,
        format!("image of {size} bytes exceeds the limit of {max} bytes"),
    )
}

/// Opens `rel` read-only beneath the root's descriptor: never out of it, never a magic link,
/// never blocking on a FIFO.
fn open_beneath(root: &ImageRoot, rel: &Path) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    rustix::fs::openat2(&*root.dir, rel, flags, Mode::empty(), resolve)
}

/// `path` relative to the root: no `..`, no absolute path elsewhere.
fn relative<'p>(path: &'p Path, root: &ImageRoot) -> Result<&'p Path, Failure> {
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(outside(path, "`..` is not allowed"));
    }
    if path.is_absolute() {
        return path
            .strip_prefix(&root.root)
            .map_err(|_| outside(path, "absolute path outside the image root"));
    }
    Ok(path)
}

fn read_confined(path: &Path, root: &ImageRoot) -> Result<Vec<u8>, Failure> {
    let rel = relative(path, root)?;
    let fd = match open_beneath(root, rel) {
        // The kernel refuses every absolute symlink under RESOLVE_BENEATH, even one that points
        // inside. Such a link is resolved here, and its target opened beneath the root again:
        // a component swapped for a link out in between is still refused by the kernel.
        Err(Errno::XDEV) => match root.root.join(rel).canonicalize() {
            Ok(target) if target.starts_with(&root.root) => {
                let inside = target.strip_prefix(&root.root).unwrap_or(&target);
                open_beneath(root, inside)
            }
            Ok(_) => Err(Errno::XDEV),
            // A link loop, or a target that does not exist (yet).
            Err(e) => Err(e
                .raw_os_error()
                .map_or(Errno::NOENT, Errno::from_raw_os_error)),
        },
        r => r,
    }
    .map_err(|e| match e {
        Errno::XDEV => outside(path, "resolves outside the image root"),
        Errno::NOENT => Failure::new(
            DeadLetterReason::ImageMissing,
            format!("{}: no such file (yet)", path.display()),
        ),
        // ELOOP (a symlink loop) and the rest: the file may yet appear or be fixed.
        e => Failure::new(
            DeadLetterReason::ImageMissing,
            format!("{}: {}", path.display(), std::io::Error::from(e)),
        ),
    })?;
    let missing = |e: std::io::Error| {
        Failure::new(
            DeadLetterReason::ImageMissing,
            format!("{}: {e}", path.display()),
        )
    };
    let file = std::fs::File::from(fd);
    // Checked on the descriptor we read from, not on the path.
    let meta = file.metadata().map_err(missing)?;
    if !meta.is_file() {
        return Err(Failure::new(
            DeadLetterReason::ImageUndecodable,
            format!("{}: not a regular file", path.display()),
        ));
    }
    if meta.len() > root.max_bytes {
        return Err(too_large(meta.len(), root.max_bytes));
    }
    // The file may grow between stat and read: never read more than the limit plus one byte.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(root.max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(missing)?;
    if bytes.len() as u64 > root.max_bytes {
        return Err(too_large(bytes.len() as u64, root.max_bytes));
    }
    Ok(bytes)
}

fn decode_inline(b64: &str, max_bytes: u64) -> Result<Vec<u8>, Failure> {
    // Surrounding whitespace is no part of the image: measured without it, an image within the
    // limit is never refused for the line break a publisher put after it.
    let b64 = b64.trim();
    // Checked on the encoded length so that an oversized image is never decoded.
    let decoded_len = (b64.len() as u64 / 4) * 3;
    if decoded_len > max_bytes + 2 {
        return Err(too_large(decoded_len, max_bytes));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| {
            Failure::new(
                DeadLetterReason::InvalidEvent,
                format!("image.data_base64: {e}"),
            )
        })?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64, max_bytes));
    }
    Ok(bytes)
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
