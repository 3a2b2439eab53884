//! The ensemble manifest: which model files make the ensemble, their hashes, classes, the
//! preprocessing they were trained with and (from `shift-1` on) the shift score's reference.

use super::shift::{ShiftModel, ShiftSpec};
use crate::domain::{Grade, ModelRef, Sha256Digest};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("manifest {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("manifest {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("model {name}: cannot read {path}: {source}")]
    ModelRead {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model {name}: {path} has SHA-256 {actual}, manifest says {expected}")]
    HashMismatch {
        name: String,
        path: PathBuf,
        expected: Sha256Digest,
        actual: Sha256Digest,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnsembleInfo {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<Option<i64>>,
    #[serde(default)]
    pub dtype: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResizeSpec {
    pub method: String,
    pub width: u32,
    pub height: u32,
    pub crop: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreprocessingSpec {
    pub version: String,
    pub color: String,
    pub resize: ResizeSpec,
    pub mean: [f64; 3],
    pub std: [f64; 3],
    pub layout: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    pub version: String,
    pub file: PathBuf,
    pub sha256: Sha256Digest,
}

/// A parsed manifest, with model paths resolved against the manifest's folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub ensemble: EnsembleInfo,
    #[serde(default)]
    pub synthetic: bool,
    pub classes: Vec<String>,
    pub input: TensorSpec,
    pub output: TensorSpec,
    pub preprocessing: PreprocessingSpec,
    pub models: Vec<ModelEntry>,
    /// The shift score's reference and threshold. Manifests written before it existed have
    /// none: they still load (decisions pinned to them replay), and their decisions carry no
    /// score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<ShiftSpec>,
    /// Earlier ensemble versions kept for the decisions pinned to them: their manifests,
    /// relative to this one's folder, newest first (see `classify::versions`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<PathBuf>,
    #[serde(skip)]
    pub dir: PathBuf,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.into(),
            source,
        })?;
        let mut m: Manifest =
            serde_json::from_str(&text).map_err(|source| ManifestError::Parse {
                path: path.into(),
                source,
            })?;
        m.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        m.check(path)?;
        Ok(m)
    }

    fn check(&self, path: &Path) -> Result<(), ManifestError> {
        let invalid = |reason: String| ManifestError::Invalid {
            path: path.into(),
            reason,
        };
        let expected: Vec<&str> = Grade::ALL.iter().map(|g| g.label()).collect();
        if self.classes != expected {
            return Err(invalid(format!(
                "classes must be {expected:?}, found {:?}",
                self.classes
            )));
        }
        if self.models.is_empty() {
            return Err(invalid("lists no models".into()));
        }
        let r = &self.preprocessing.resize;
        if r.width == 0 || r.height == 0 || r.width > 1024 || r.height > 1024 {
            return Err(invalid(format!("bad input size {}x{}", r.width, r.height)));
        }
        if self.preprocessing.std.iter().any(|s| *s <= 0.0) {
            return Err(invalid("preprocessing.std must be positive".into()));
        }
        if let Some(shift) = &self.shift {
            ShiftModel::new(shift, r.width as usize, r.height as usize).map_err(invalid)?;
        }
        for m in &self.models {
            if !inside(&m.file) {
                return Err(invalid(format!(
                    "model {} file must stay in the manifest's folder",
                    m.name
                )));
            }
        }
        if let Some(p) = self.previous.iter().find(|p| !inside(p)) {
            return Err(invalid(format!(
                "previous version {} must stay in the manifest's folder",
                p.display()
            )));
        }
        Ok(())
    }

    /// The manifests of the earlier versions this one lists, newest first.
    pub fn previous_paths(&self) -> Vec<PathBuf> {
        self.previous.iter().map(|p| self.dir.join(p)).collect()
    }

    pub fn model_path(&self, entry: &ModelEntry) -> PathBuf {
        self.dir.join(&entry.file)
    }

    pub fn model_ref(entry: &ModelEntry) -> ModelRef {
        ModelRef {
            name: entry.name.clone(),
            version: entry.version.clone(),
            sha256: entry.sha256,
        }
    }

    /// Reads each model file and checks its SHA-256; returns the bytes in manifest order,
    /// so that what was verified is exactly what gets loaded.
    pub fn read_verified(&self) -> Result<Vec<(ModelEntry, Vec<u8>)>, ManifestError> {
        self.models
            .iter()
            .map(|entry| {
                let path = self.model_path(entry);
                let bytes = std::fs::read(&path).map_err(|source| ManifestError::ModelRead {
                    name: entry.name.clone(),
                    path: path.clone(),
                    source,
                })?;
                let actual = Sha256Digest::of(&bytes);
                if actual != entry.sha256 {
                    return Err(ManifestError::HashMismatch {
                        name: entry.name.clone(),
                        path,
                        expected: entry.sha256,
                        actual,
                    });
                }
                Ok((entry.clone(), bytes))
            })
            .collect()
    }
}

/// A relative path with no `..`: it cannot leave the manifest's folder.
fn inside(p: &Path) -> bool {
    !p.is_absolute() && !p.components().any(|c| c.as_os_str() == "..")
}
