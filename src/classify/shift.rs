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
//! row, and one pass over the tensor collects every statistic.

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

/// A run of pixels `x0..x1` of one row that lie in ring `ring`.
#[derive(Debug, Clone, Copy)]
struct Run {
    x0: u16,
    x1: u16,
    ring: u8,
}

/// A validated reference, ready to score tensors of one size.
#[derive(Debug)]
pub struct ShiftModel {
    version: String,
    threshold: f64,
    digest: Sha256Digest,
    rings: usize,
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
            rings: spec.rings,
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
        let (w, h, r) = (self.width, self.height, self.rings);
        let plane = w * h;
        debug_assert_eq!(x.len(), 3 * plane);
        debug_assert_eq!(out.len(), self.dims());
        let mut acc = Accumulators::new(r, w);
        for y in 0..h {
            let runs = &self.runs[self.row_start[y]..self.row_start[y + 1]];
            acc.grad_row.fill(0.0);
            acc.lap_row.fill(0.0);
            for c in 0..3 {
                let base = c * plane + y * w;
                let row = &x[base..base + w];
                let up = (y > 0).then(|| &x[base - w..base]);
                let down = (y + 1 < h).then(|| &x[base + w..base + 2 * w]);
                acc.channel_row(c, row, up, down);
                for run in runs {
                    let s: f64 = acc.v[run.x0 as usize..run.x1 as usize].iter().sum();
                    acc.ring_x[c * r + run.ring as usize] += s;
                }
            }
            for run in runs {
                let span = run.x0 as usize..run.x1 as usize;
                acc.ring_g[run.ring as usize] += acc.grad_row[span.clone()].iter().sum::<f64>();
                acc.ring_l[run.ring as usize] += acc.lap_row[span].iter().sum::<f64>();
            }
        }
        let n = plane as f64;
        for c in 0..3 {
            // Moments about the channel's first value: exact for a flat channel, and free of
            // the cancellation of E[x²] − E[x]² when the spread is small against the mean.
            let (m1, m2) = (acc.s1[c] / n, acc.s2[c] / n);
            out[c] = acc.shift[c] + m1;
            out[3 + c] = (m2 - m1 * m1).max(0.0).sqrt();
        }
        for k in 0..r {
            for c in 0..3 {
                out[6 + c * r + k] = acc.ring_x[c * r + k] * self.inv_count[k];
            }
            out[6 + 3 * r + k] = acc.ring_g[k] / 3.0 * self.inv_count[k];
            out[6 + 4 * r + k] = acc.ring_l[k] / 3.0 * self.inv_count[k];
        }
    }
}

/// Sums gathered in the one pass over a tensor.
struct Accumulators {
    /// The current row of the current channel in f64.
    v: Vec<f64>,
    /// Gradient magnitude and |Laplacian| of the current row, summed over the channels.
    grad_row: Vec<f64>,
    lap_row: Vec<f64>,
    /// Per channel: the first value, and the sums of (x − first) and its square.
    shift: [f64; 3],
    s1: [f64; 3],
    s2: [f64; 3],
    ring_x: Vec<f64>,
    ring_g: Vec<f64>,
    ring_l: Vec<f64>,
}

impl Accumulators {
    fn new(rings: usize, width: usize) -> Accumulators {
        Accumulators {
            v: vec![0.0; width],
            grad_row: vec![0.0; width],
            lap_row: vec![0.0; width],
            shift: [f64::NAN; 3],
            s1: [0.0; 3],
            s2: [0.0; 3],
            ring_x: vec![0.0; 3 * rings],
            ring_g: vec![0.0; rings],
            ring_l: vec![0.0; rings],
        }
    }

    /// One row of channel `c`: moments, gradient and Laplacian (added to the row sums), and
    /// the row in f64 in `v` for the ring profiles.
    fn channel_row(&mut self, c: usize, row: &[f32], up: Option<&[f32]>, down: Option<&[f32]>) {
        let w = row.len();
        for (v, &x) in self.v.iter_mut().zip(row) {
            *v = f64::from(x);
        }
        if self.shift[c].is_nan() {
            self.shift[c] = self.v[0];
        }
        let first = self.shift[c];
        // Four independent partial sums: f64 addition is not associative, so the compiler
        // vectorises a reduction only when the lanes are spelled out.
        let (mut a1, mut a2) = ([0.0f64; 4], [0.0f64; 4]);
        let chunks = self.v.chunks_exact(4);
        let tail = chunks.remainder();
        for ch in chunks {
            for j in 0..4 {
                let d = ch[j] - first;
                a1[j] += d;
                a2[j] += d * d;
            }
        }
        for &t in tail {
            let d = t - first;
            a1[0] += d;
            a2[0] += d * d;
        }
        self.s1[c] += a1.iter().sum::<f64>();
        self.s2[c] += a2.iter().sum::<f64>();

        // Gradient: backward differences, 0 on the first column and (without `up`) row.
        // Written as zips of equal-length slices so that the loops vectorise.
        let v = &self.v;
        let (cur, left) = (&v[1..], &v[..w - 1]);
        match up {
            Some(up) => {
                self.grad_row[0] += (v[0] - f64::from(up[0])).abs();
                for (((g, &a), &l), &u) in self.grad_row[1..]
                    .iter_mut()
                    .zip(cur)
                    .zip(left)
                    .zip(&up[1..])
                {
                    let (dx, dy) = (a - l, a - f64::from(u));
                    *g += (dx * dx + dy * dy).sqrt();
                }
            }
            None => {
                for ((g, &a), &l) in self.grad_row[1..].iter_mut().zip(cur).zip(left) {
                    *g += (a - l).abs();
                }
            }
        }
        // |Laplacian| on interior pixels only, summed in the training code's order.
        if let (Some(up), Some(down)) = (up, down) {
            let n = w - 2;
            let (mid, left, right) = (&v[1..=n], &v[..n], &v[2..]);
            let (up, down) = (&up[1..=n], &down[1..=n]);
            for (i, l) in self.lap_row[1..=n].iter_mut().enumerate() {
                let s = 4.0 * mid[i] - f64::from(up[i]) - f64::from(down[i]) - left[i] - right[i];
                *l += s.abs();
            }
        }
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
