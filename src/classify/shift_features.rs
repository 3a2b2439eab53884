//! The 66 statistics of `shift-1` in one pass over a CHW tensor, exactly as
//! `onnx/train/iari_train/shift.py` defines them (f64; parity by `golden/shift.json`).
//!
//! Row by row: each row of each channel is widened to f64 once, into a rolling window of three
//! rows per channel (the Laplacian's neighbourhood); one fused loop gives every pixel's gradient
//! magnitude and |Laplacian| summed over the channels; then each ring's run of pixels in the row
//! adds its five sums (three channels, gradient, Laplacian) at once. The channel means come from
//! the ring sums, which cover every pixel once.
//!
//! On x86-64 CPUs with AVX2 the same code runs compiled for AVX2 (twice the f64 lanes of the
//! SSE2 baseline): every value is computed by the same operations in the same order, only more
//! of them at a time, so both give identical bits (tested).

/// A run of pixels `x0..x1` of one row that lie in ring `ring`.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub x0: u16,
    pub x1: u16,
    pub ring: u8,
}

/// The precomputed rings: runs of row `y` are `runs[row_start[y]..row_start[y + 1]]`.
pub struct Rings<'a> {
    pub runs: &'a [Run],
    pub row_start: &'a [usize],
    /// 1 / pixels per ring.
    pub inv_count: &'a [f64],
}

/// The features of the `w` × `h` tensor `x` (3 × h × w values) into `out` (6 + 5 × rings).
// The AVX2 build of the same code pays for its `unsafe` call (2.4x fewer instructions).
#[allow(unsafe_code)]
pub fn compute(x: &[f32], w: usize, h: usize, rings: &Rings<'_>, out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { compute_avx2(x, w, h, rings, out) };
    }
    compute_impl(x, w, h, rings, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn compute_avx2(x: &[f32], w: usize, h: usize, rings: &Rings<'_>, out: &mut [f64]) {
    compute_impl(x, w, h, rings, out);
}

#[inline(always)]
fn compute_impl(x: &[f32], w: usize, h: usize, rings: &Rings<'_>, out: &mut [f64]) {
    let plane = w * h;
    let r = rings.inv_count.len();
    assert!(x.len() == 3 * plane && out.len() == 6 + 5 * r && w >= 3 && h >= 3);
    let src = |c: usize, y: usize| &x[c * plane + y * w..c * plane + (y + 1) * w];
    // Moments about each channel's first value: exact for a flat channel, and free of the
    // cancellation of E[x²] − E[x]² when the spread is small against the mean.
    let first: [f64; 3] = std::array::from_fn(|c| f64::from(x[c * plane]));
    let mut sq = [0.0f64; 3];
    // Row y of channel c in slot y % 3: rows[(3c + slot) w ..][..w].
    let mut rows = vec![0.0f64; 9 * w];
    let (mut grad, mut lap) = (vec![0.0f64; w], vec![0.0f64; w]);
    // Per ring: channel 0, 1, 2, gradient and Laplacian sums.
    let mut ring = vec![[0.0f64; 5]; r];
    let slot = |c: usize, y: usize| (3 * c + y % 3) * w;
    for (c, s) in sq.iter_mut().enumerate() {
        *s += widen(src(c, 0), &mut rows[slot(c, 0)..][..w], first[c]);
    }
    for y in 0..h {
        if y + 1 < h {
            for (c, s) in sq.iter_mut().enumerate() {
                let at = slot(c, y + 1);
                *s += widen(src(c, y + 1), &mut rows[at..at + w], first[c]);
            }
        }
        let row = |yy: usize| -> [&[f64]; 3] { std::array::from_fn(|c| &rows[slot(c, yy)..][..w]) };
        let cur = row(y);
        let up = (y > 0).then(|| row(y - 1));
        let down = (y + 1 < h).then(|| row(y + 1));
        gradient_and_laplacian(cur, up, down, &mut grad, &mut lap);
        let runs = &rings.runs[rings.row_start[y]..rings.row_start[y + 1]];
        ring_sums(runs, cur, &grad, &lap, &mut ring);
    }
    let n = plane as f64;
    for c in 0..3 {
        let mean = ring.iter().map(|k| k[c]).sum::<f64>() / n;
        let d = mean - first[c];
        out[c] = mean;
        out[3 + c] = (sq[c] / n - d * d).max(0.0).sqrt();
    }
    for (k, sums) in ring.iter().enumerate() {
        let inv = rings.inv_count[k];
        for c in 0..3 {
            out[6 + c * r + k] = sums[c] * inv;
        }
        out[6 + 3 * r + k] = sums[3] / 3.0 * inv;
        out[6 + 4 * r + k] = sums[4] / 3.0 * inv;
    }
}

/// `dst` = `src` in f64; returns the sum of (value − `first`)². Four partial sums: f64 addition
/// is not associative, so a reduction vectorises only when its lanes are spelled out.
#[inline(always)]
fn widen(src: &[f32], dst: &mut [f64], first: f64) -> f64 {
    let mut acc = [0.0f64; 4];
    let mut s = src.chunks_exact(4);
    let mut d = dst.chunks_exact_mut(4);
    for (s4, d4) in (&mut s).zip(&mut d) {
        for j in 0..4 {
            let v = f64::from(s4[j]);
            d4[j] = v;
            acc[j] += (v - first) * (v - first);
        }
    }
    for (sv, dv) in s.remainder().iter().zip(d.into_remainder()) {
        let v = f64::from(*sv);
        *dv = v;
        acc[0] += (v - first) * (v - first);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// One channel's gradient magnitude (backward differences) and |Laplacian| at a pixel, in the
/// training code's order of operations.
#[inline(always)]
fn pixel(mid: f64, left: f64, right: f64, up: f64, down: f64) -> (f64, f64) {
    let (dx, dy) = (mid - left, mid - up);
    let g = (dx * dx + dy * dy).sqrt();
    let l = (4.0 * mid - up - down - left - right).abs();
    (g, l)
}

/// The row's gradient magnitude and |Laplacian| per pixel, summed over the channels as the
/// training code's channel mean does ((c0 + c1) + c2). dx is 0 in the first column, dy without
/// a row above; the Laplacian is 0 on the border.
#[inline(always)]
fn gradient_and_laplacian(
    cur: [&[f64]; 3],
    up: Option<[&[f64]; 3]>,
    down: Option<[&[f64]; 3]>,
    g: &mut [f64],
    l: &mut [f64],
) {
    let n = g.len();
    l.fill(0.0);
    let Some(up) = up else {
        g[0] = 0.0;
        for i in 1..n {
            let d: [f64; 3] = std::array::from_fn(|c| (cur[c][i] - cur[c][i - 1]).abs());
            g[i] = (d[0] + d[1]) + d[2];
        }
        return;
    };
    let edge = |i: usize, left: bool| -> f64 {
        let d: [f64; 3] = std::array::from_fn(|c| {
            let dx = if left { 0.0 } else { cur[c][i] - cur[c][i - 1] };
            let dy = cur[c][i] - up[c][i];
            (dx * dx + dy * dy).sqrt()
        });
        (d[0] + d[1]) + d[2]
    };
    // First column: dx = 0, so the magnitude is |dy| (what √(0 + dy²) gives exactly).
    g[0] = {
        let d: [f64; 3] = std::array::from_fn(|c| (cur[c][0] - up[c][0]).abs());
        (d[0] + d[1]) + d[2]
    };
    g[n - 1] = edge(n - 1, false);
    let Some(down) = down else {
        for (i, gi) in g.iter_mut().enumerate().take(n - 1).skip(1) {
            *gi = edge(i, false);
        }
        return;
    };
    // Interior of a middle row: both at once, on equal-length slices so the loop vectorises.
    let m = n - 2;
    let mid: [&[f64]; 3] = std::array::from_fn(|c| &cur[c][1..=m]);
    let left: [&[f64]; 3] = std::array::from_fn(|c| &cur[c][..m]);
    let right: [&[f64]; 3] = std::array::from_fn(|c| &cur[c][2..]);
    let up: [&[f64]; 3] = std::array::from_fn(|c| &up[c][1..=m]);
    let down: [&[f64]; 3] = std::array::from_fn(|c| &down[c][1..=m]);
    let (g, l) = (&mut g[1..=m], &mut l[1..=m]);
    for i in 0..m {
        let (g0, l0) = pixel(mid[0][i], left[0][i], right[0][i], up[0][i], down[0][i]);
        let (g1, l1) = pixel(mid[1][i], left[1][i], right[1][i], up[1][i], down[1][i]);
        let (g2, l2) = pixel(mid[2][i], left[2][i], right[2][i], up[2][i], down[2][i]);
        g[i] = (g0 + g1) + g2;
        l[i] = (l0 + l1) + l2;
    }
}

/// Adds each run's sums of the three channel rows, the gradient and the Laplacian to its ring.
#[inline(always)]
fn ring_sums(runs: &[Run], cur: [&[f64]; 3], grad: &[f64], lap: &[f64], ring: &mut [[f64; 5]]) {
    for run in runs {
        let (a, b) = (run.x0 as usize, run.x1 as usize);
        let (r0, r1, r2) = (&cur[0][a..b], &cur[1][a..b], &cur[2][a..b]);
        let (g, l) = (&grad[a..b], &lap[a..b]);
        let mut s = [0.0f64; 5];
        for i in 0..b - a {
            s[0] += r0[i];
            s[1] += r1[i];
            s[2] += r2[i];
            s[3] += g[i];
            s[4] += l[i];
        }
        for (acc, v) in ring[run.ring as usize].iter_mut().zip(s) {
            *acc += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_avx2_build_gives_the_portable_bits() {
        let (w, h) = (96, 96);
        let (runs, row_start, counts) = super::super::ring_runs(12, 68.0, w, h);
        let inv: Vec<f64> = counts.iter().map(|&c| 1.0 / c as f64).collect();
        let rings = Rings {
            runs: &runs,
            row_start: &row_start,
            inv_count: &inv,
        };
        let mut state = 0x9e37_79b9u32;
        let x: Vec<f32> = (0..3 * w * h)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 4096) as f32 / 1024.0 - 2.0
            })
            .collect();
        let (mut a, mut b) = (vec![0.0; 66], vec![0.0; 66]);
        compute(&x, w, h, &rings, &mut a);
        compute_impl(&x, w, h, &rings, &mut b);
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
    }
}
