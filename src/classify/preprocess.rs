//! Preprocessing `pp-area-1`, exactly as training does it (`onnx/train/iari_train/preprocess.py`):
//! resize the whole RGB8 image by area averaging in f64 (rows, then columns), then
//! `(v/255 − mean)/std` in f64, cast to f32, CHW in R, G, B order.

use super::manifest::{Manifest, PreprocessingSpec};
use image::RgbImage;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
#[error("preprocessing {version}: {reason}")]
pub struct PreprocessError {
    pub version: String,
    pub reason: String,
}

/// Sparse area weights for one axis (input length n → output length m): output `i` takes
/// `weights[offsets[i]..offsets[i+1]]` from source pixels starting at `starts[i]`.
#[derive(Debug)]
struct AreaWeights {
    starts: Vec<usize>,
    offsets: Vec<usize>,
    weights: Vec<f64>,
}

impl AreaWeights {
    /// Same arithmetic as the Python contract: s = n/m, output i covers [i*s, (i+1)*s), source
    /// pixel j covers [j, j+1) and weighs overlap/s.
    fn new(n: usize, m: usize) -> AreaWeights {
        let s = n as f64 / m as f64;
        let mut w = AreaWeights {
            starts: Vec::with_capacity(m),
            offsets: vec![0],
            weights: Vec::new(),
        };
        for i in 0..m {
            let lo = i as f64 * s;
            let hi = (i as f64 + 1.0) * s;
            // Bounded scan around the window; float rounding can only move edges by one pixel.
            let first = (lo.floor() as usize).saturating_sub(1);
            let last = ((hi.ceil() as usize) + 1).min(n);
            let mut start = None;
            for j in first..last {
                let jf = j as f64;
                let overlap = hi.min(jf + 1.0) - lo.max(jf);
                if overlap > 0.0 {
                    start.get_or_insert(j);
                    w.weights.push(overlap / s);
                } else if start.is_some() {
                    break;
                }
            }
            w.starts.push(start.unwrap_or(0));
            w.offsets.push(w.weights.len());
        }
        w
    }

    fn taps(&self, i: usize) -> (usize, &[f64]) {
        (
            self.starts[i],
            &self.weights[self.offsets[i]..self.offsets[i + 1]],
        )
    }
}

/// Turns decoded images into model input tensors. Cheap to share: weight matrices are cached
/// per input size behind a mutex held only for the lookup.
#[derive(Debug)]
pub struct Preprocessor {
    version: String,
    width: usize,
    height: usize,
    mean: [f64; 3],
    std: [f64; 3],
    cache: Mutex<HashMap<(usize, usize), Arc<AreaWeights>>>,
}

impl Preprocessor {
    pub fn new(spec: &PreprocessingSpec) -> Result<Preprocessor, PreprocessError> {
        let fail = |reason: String| PreprocessError {
            version: spec.version.clone(),
            reason,
        };
        if spec.resize.method != "area" || spec.resize.crop != "none" {
            return Err(fail(format!(
                "resize {}/{} not supported (only area, no crop)",
                spec.resize.method, spec.resize.crop
            )));
        }
        if spec.color != "RGB" || spec.layout != "NCHW" {
            return Err(fail(format!(
                "color {} layout {} not supported",
                spec.color, spec.layout
            )));
        }
        Ok(Preprocessor {
            version: spec.version.clone(),
            width: spec.resize.width as usize,
            height: spec.resize.height as usize,
            mean: spec.mean,
            std: spec.std,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn from_manifest(manifest: &Manifest) -> Result<Preprocessor, PreprocessError> {
        Self::new(&manifest.preprocessing)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// (width, height) of the model input.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Number of f32 values in one image tensor (3 × H × W).
    pub fn tensor_len(&self) -> usize {
        3 * self.width * self.height
    }

    fn weights(&self, n: usize, m: usize) -> Arc<AreaWeights> {
        // A poisoned lock only means another thread panicked mid-insert of an immutable Arc;
        // the map itself is still valid.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry((n, m))
            .or_insert_with(|| Arc::new(AreaWeights::new(n, m)))
            .clone()
    }

    /// The model input for one image: CHW f32 of length [`Preprocessor::tensor_len`].
    pub fn run(&self, img: &RgbImage) -> Vec<f32> {
        let mut out = vec![0.0; self.tensor_len()];
        self.run_into(img, &mut out);
        out
    }

    /// Like [`Preprocessor::run`], writing into `out` (length [`Preprocessor::tensor_len`]).
    pub fn run_into(&self, img: &RgbImage, out: &mut [f32]) {
        self.run_into_with(img, out, &mut Vec::new());
    }

    /// Like [`Preprocessor::run_into`], with the intermediate rows kept in `scratch` so a
    /// caller preprocessing many images allocates it once.
    pub fn run_into_with(&self, img: &RgbImage, out: &mut [f32], scratch: &mut Vec<f64>) {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let wy = self.weights(h, self.height);
        let wx = self.weights(w, self.width);
        self.resize_rows(img.as_raw(), w, &wy, scratch);
        self.resize_columns_and_normalise(scratch, w, &wx, out);
    }

    /// Vertical pass: for each output row, the weighted sum of its source rows, all W×3 values.
    fn resize_rows(&self, raw: &[u8], w: usize, wy: &AreaWeights, rows: &mut Vec<f64>) {
        let stride = w * 3;
        rows.clear();
        rows.resize(self.height * stride, 0.0);
        for (oy, acc) in rows.chunks_exact_mut(stride).enumerate() {
            let (start, taps) = wy.taps(oy);
            for (k, &weight) in taps.iter().enumerate() {
                let src = &raw[(start + k) * stride..(start + k + 1) * stride];
                for (a, &v) in acc.iter_mut().zip(src) {
                    *a += weight * f64::from(v);
                }
            }
        }
    }

    /// Horizontal pass, then normalisation, written as CHW.
    fn resize_columns_and_normalise(
        &self,
        rows: &[f64],
        w: usize,
        wx: &AreaWeights,
        out: &mut [f32],
    ) {
        let plane = self.width * self.height;
        for oy in 0..self.height {
            let row = &rows[oy * w * 3..(oy + 1) * w * 3];
            for ox in 0..self.width {
                let (start, taps) = wx.taps(ox);
                let mut sum = [0.0f64; 3];
                for (k, &weight) in taps.iter().enumerate() {
                    let px = &row[(start + k) * 3..(start + k) * 3 + 3];
                    for c in 0..3 {
                        sum[c] += weight * px[c];
                    }
                }
                for c in 0..3 {
                    let v = (sum[c] / 255.0 - self.mean[c]) / self.std[c];
                    out[c * plane + oy * self.width + ox] = v as f32;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::manifest::ResizeSpec;
    use image::Rgb;

    fn spec(w: u32, h: u32) -> PreprocessingSpec {
        PreprocessingSpec {
            version: "pp-area-1".into(),
            color: "RGB".into(),
            resize: ResizeSpec {
                method: "area".into(),
                width: w,
                height: h,
                crop: "none".into(),
            },
            mean: [0.5; 3],
            std: [0.25; 3],
            layout: "NCHW".into(),
        }
    }

    /// Dense reference straight from the contract's formula, for comparison.
    fn dense(n: usize, m: usize) -> Vec<Vec<f64>> {
        let s = n as f64 / m as f64;
        (0..m)
            .map(|i| {
                let (lo, hi) = (i as f64 * s, (i as f64 + 1.0) * s);
                (0..n)
                    .map(|j| ((hi.min(j as f64 + 1.0) - lo.max(j as f64)).max(0.0)) / s)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn sparse_weights_equal_the_dense_formula_and_sum_to_one() {
        for (n, m) in [(229, 96), (230, 96), (96, 96), (50, 96), (300, 96), (7, 3)] {
            let sparse = AreaWeights::new(n, m);
            let d = dense(n, m);
            for (i, row) in d.iter().enumerate() {
                let (start, taps) = sparse.taps(i);
                let mut rebuilt = vec![0.0; n];
                rebuilt[start..start + taps.len()].copy_from_slice(taps);
                assert_eq!(&rebuilt, row, "n={n} m={m} i={i}");
                assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn uniform_image_maps_to_the_normalised_value() {
        let p = Preprocessor::new(&spec(4, 3)).unwrap();
        let img = RgbImage::from_pixel(10, 7, Rgb([255, 0, 128]));
        let t = p.run(&img);
        assert_eq!(t.len(), 36);
        assert!(t[..12].iter().all(|v| (v - 2.0).abs() < 1e-6));
        assert!(t[12..24].iter().all(|v| (v + 2.0).abs() < 1e-6));
        let g = ((128.0 / 255.0 - 0.5) / 0.25) as f32;
        assert!(t[24..].iter().all(|v| (v - g).abs() < 1e-6));
    }

    #[test]
    fn halving_averages_pixel_pairs_in_chw_order() {
        let p = Preprocessor::new(&spec(2, 1)).unwrap();
        let img = RgbImage::from_fn(4, 2, |x, y| Rgb([(x * 10 + y * 20) as u8, 0, 255]));
        let t = p.run(&img);
        // Output (0,0) averages x in {0,1}, y in {0,1}: (0+10+20+30)/4 = 15.
        let expect = |v: f64| ((v / 255.0 - 0.5) / 0.25) as f32;
        assert!((t[0] - expect(15.0)).abs() < 1e-6);
        assert!((t[1] - expect(35.0)).abs() < 1e-6);
        assert!((t[4] - expect(255.0)).abs() < 1e-6);
    }

    #[test]
    fn unsupported_specs_are_refused() {
        let mut s = spec(96, 96);
        s.resize.method = "bilinear".into();
        assert!(Preprocessor::new(&s).is_err());
        let mut s = spec(96, 96);
        s.color = "BGR".into();
        assert!(Preprocessor::new(&s).is_err());
    }
}
