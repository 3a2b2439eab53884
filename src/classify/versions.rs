//! The ensemble versions a deployment keeps: the current manifest and the archived manifests it
//! lists under `previous`, whose files stay on disk so that decisions pinned to an earlier
//! version can still be verified and replayed after the ensemble is adapted or retrained.

use super::manifest::{Manifest, ManifestError};
use crate::domain::{ModelRef, Sha256Digest};
use std::path::{Path, PathBuf};

/// The current manifest, then each previous one it lists (each loaded and checked).
pub fn all(current: &Path) -> Result<Vec<(PathBuf, Manifest)>, ManifestError> {
    let head = Manifest::load(current)?;
    let mut out = Vec::with_capacity(1 + head.previous.len());
    for p in head.previous_paths() {
        let m = Manifest::load(&p)?;
        out.push((p, m));
    }
    out.insert(0, (current.to_path_buf(), head));
    Ok(out)
}

/// The manifest that holds every `pinned` model (by name and SHA-256) and, when `shift` names
/// a reference digest, that reference: the current one when it does, else the newest earlier
/// version that does. `None` when no kept version does (the caller reports what is missing
/// against the current manifest).
pub fn holding(
    current: &Path,
    pinned: &[ModelRef],
    shift: Option<Sha256Digest>,
) -> Result<Option<PathBuf>, ManifestError> {
    Ok(all(current)?
        .into_iter()
        .find(|(_, m)| holds(m, pinned, shift))
        .map(|(p, _)| p))
}

fn holds(m: &Manifest, pinned: &[ModelRef], shift: Option<Sha256Digest>) -> bool {
    let models = pinned.iter().all(|p| {
        m.models
            .iter()
            .any(|e| e.name == p.name && e.sha256 == p.sha256)
    });
    let reference = match shift {
        None => true,
        Some(d) => m.shift.as_ref().is_some_and(|s| s.digest() == d),
    };
    models && reference
}
