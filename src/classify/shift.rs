//! The shift score `shift-1`: how far an image's preprocessed tensor lies from the training
//! images, as a Mahalanobis distance over simple image statistics, computed exactly as the
//! training code does (`onnx/train/iari_train/shift.py`, parity by `golden/shift.json`).
//!
//! Features, in f64 on the 3 × H × W tensor (R, G, B planes): per-channel mean and population
//! standard deviation; per channel the mean over each ring around the image centre; per ring
//! the mean gradient magnitude (`dx`, `dy` backward differences, 0 on the first column/row,
//! averaged over the channels) and the mean |Laplacian| (interior pixels, 0 on the border,
//! averaged over the channels). Score: `‖W (f − mean)‖`, W and mean from the manifest.
//!
//! Cost matters (every capture pays it): the rings are precomputed once as runs of pixels per
//! row, and one pass over the tensor collects every statistic (`shift_features.rs`).

use crate::domain::{Sha256Digest, ShiftScore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The only score definition this build computes.
pub const VERSION: &str = "shift-1";
/// Rings beyond this are not a sensible reference (and would not fit the ring index type).
const MAX_RINGS: usize = 64;

/// The manifest's `shift` section, as the training code writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShiftSpec {
    pub version: String,
    pub rings: usize,
    pub ring_radius: f64,
    pub threshold: f64,
    pub mean: Vec<f64>,
    /// Row-major whitening matrix: `‖whiten · d‖²` is the Mahalanobis distance of `d`.
    pub whiten: Vec<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrinkage: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_reference: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted_on: Option<String>,
}

impl ShiftSpec {
    /// Number of features for `rings`: 6 moments, 3 intensity profiles, gradient, Laplacian.
    pub fn dims(rings: usize) -> usize {
        6 + 5 * rings
    }

    /// Refuses a reference this build cannot compute or that would give nonsense scores.
    pub fn check(&self) -> Result<(), String> {
        if self.version != VERSION {
            return Err(format!(
                "shift.version {:?}: this build computes {VERSION} only",
                self.version
            ));
        }
        if self.rings == 0 || self.rings > MAX_RINGS {
            return Err(format!("shift.rings {} out of 1..={MAX_RINGS}", self.rings));
        }
        if !(self.ring_radius.is_finite() && self.ring_radius > 0.0) {
            return Err(format!(
                "shift.ring_radius {} must be > 0",
                self.ring_radius
            ));
        }
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(format!(
                "shift.threshold {} must be finite and > 0",
                self.threshold
            ));
        }
        let dims = Self::dims(self.rings);
        if self.mean.len() != dims {
            return Err(format!(
                "shift.mean has {} values, {} rings need {dims}",
                self.mean.len(),
                self.rings
            ));
        }
        if self.whiten.len() != dims || self.whiten.iter().any(|r| r.len() != dims) {
            return Err(format!("shift.whiten must be {dims} x {dims}"));
        }
        let values = self.mean.iter().chain(self.whiten.iter().flatten());
        if values.into_iter().any(|v| !v.is_finite()) {
            return Err("shift.mean and shift.whiten must be finite".into());
        }
        Ok(())
    }

    /// SHA-256 of the reference's values (version, rings, radius, threshold, mean, whiten as
    /// little-endian f64): a refitted reference keeps its version but not its digest, so a
    /// decision can name exactly the reference that scored it.
    pub fn digest(&self) -> Sha256Digest {
        let mut h = Sha256::new();
        h.update(self.version.as_bytes());
        h.update([0]);
        h.update((self.rings as u64).to_le_bytes());
        for v in [self.ring_radius, self.threshold]
            .iter()
            .chain(&self.mean)
            .chain(self.whiten.iter().flatten())
        {
            h.update(v.to_le_bytes());
        }
        Sha256Digest(h.finalize().into())
    }
}

#[path = "shift_features.rs"]
mod features;
use features::Run;

/// A validated reference, ready to score tensors of one size.
#[derive(Debug)]
pub struct ShiftModel {
    version: String,
    threshold: f64,
    digest: Sha256Digest,
    width: usize,
    height: usize,
    mean: Vec<f64>,
    /// dims × dims, row-major.
    whiten: Vec<f64>,
    /// Runs of row `y` are `runs[row_start[y]..row_start[y + 1]]`.
    runs: Vec<Run>,
    row_start: Vec<usize>,
    /// 1 / pixels per ring.
    inv_count: Vec<f64>,
}

/// What [`ShiftModel::info`] tells provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShiftInfo {
    pub version: String,
    pub reference_sha256: Sha256Digest,
    pub threshold: f64,
}

impl ShiftModel {
    /// The reference for `width` × `height` tensors (the manifest's preprocessing size).
    pub fn new(spec: &ShiftSpec, width: usize, height: usize) -> Result<ShiftModel, String> {
        spec.check()?;
        if width < 3 || height < 3 || width > u16::MAX as usize {
            return Err(format!("shift: input size {width}x{height} not supported"));
        }
        let (runs, row_start, counts) = ring_runs(spec.rings, spec.ring_radius, width, height);
        if let Some(k) = counts.iter().position(|&c| c == 0) {
            return Err(format!(
                "shift: ring {k} holds no pixel of a {width}x{height} input"
            ));
        }
        Ok(ShiftModel {
            version: spec.version.clone(),
            threshold: spec.threshold,
            digest: spec.digest(),
            width,
            height,
            mean: spec.mean.clone(),
            whiten: spec.whiten.iter().flatten().copied().collect(),
            runs,
            row_start,
            inv_count: counts.iter().map(|&c| 1.0 / c as f64).collect(),
        })
    }

    pub fn info(&self) -> ShiftInfo {
        ShiftInfo {
            version: self.version.clone(),
            reference_sha256: self.digest,
            threshold: self.threshold,
        }
    }

    pub fn dims(&self) -> usize {
        self.mean.len()
    }

    /// The score of one CHW tensor (3 × height × width values).
    pub fn score(&self, x: &[f32]) -> ShiftScore {
        let mut f = vec![0.0; self.dims()];
        self.features_into(x, &mut f);
        let d: Vec<f64> = f.iter().zip(&self.mean).map(|(a, m)| a - m).collect();
        let sq: f64 = self
            .whiten
            .chunks_exact(d.len())
            .map(|row| {
                let z: f64 = row.iter().zip(&d).map(|(w, v)| w * v).sum();
                z * z
            })
            .sum();
        ShiftScore {
            version: self.version.clone(),
            score: sq.sqrt(),
            threshold: self.threshold,
        }
    }

    /// The features of one CHW tensor; `out` holds [`ShiftModel::dims`] values. A tensor of
    /// the wrong length is a caller's bug: the engine checks lengths before scoring.
    pub fn features_into(&self, x: &[f32], out: &mut [f64]) {
        let rings = features::Rings {
            runs: &self.runs,
            row_start: &self.row_start,
            inv_count: &self.inv_count,
        };
        features::compute(x, self.width, self.height, &rings, out);
    }
}

/// Ring of pixel (y, x): `min(floor(r / radius × rings), rings − 1)` with r the distance to the
/// image centre; as runs per row, the row offsets, and the pixel count per ring.
fn ring_runs(
    rings: usize,
    radius: f64,
    width: usize,
    height: usize,
) -> (Vec<Run>, Vec<usize>, Vec<u64>) {
    let (cy, cx) = ((height as f64 - 1.0) / 2.0, (width as f64 - 1.0) / 2.0);
    let mut runs = Vec::new();
    let mut row_start = vec![0];
    let mut counts = vec![0u64; rings];
    for y in 0..height {
        let mut current: Option<Run> = None;
        for x in 0..width {
            let (dy, dx) = (y as f64 - cy, x as f64 - cx);
            let r = (dy * dy + dx * dx).sqrt();
            let k = ((r / radius * rings as f64).floor() as usize).min(rings - 1);
            counts[k] += 1;
            match &mut current {
                Some(run) if run.ring as usize == k => run.x1 += 1,
                _ => {
                    runs.extend(current.take());
                    current = Some(Run {
                        x0: x as u16,
                        x1: x as u16 + 1,
                        ring: k as u8,
                    });
                }
            }
        }
        runs.extend(current);
        row_start.push(runs.len());
    }
    (runs, row_start, counts)
}

#[cfg(test)]
#[path = "shift_tests.rs"]
mod tests;
