use super::*;

const S: usize = 96;

/// A reference with the manifest's shape: identity whitening, zero mean (score = ‖f‖).
fn spec(rings: usize) -> ShiftSpec {
    let dims = ShiftSpec::dims(rings);
    ShiftSpec {
        version: VERSION.into(),
        rings,
        ring_radius: 68.0,
        threshold: 11.97,
        mean: vec![0.0; dims],
        whiten: (0..dims)
            .map(|i| (0..dims).map(|j| f64::from(u8::from(i == j))).collect())
            .collect(),
        shrinkage: None,
        quantile: None,
        n_reference: None,
        fitted_on: None,
    }
}

/// A deterministic, uneven tensor (a blob and a ramp with some texture).
fn tensor(seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    (0..3 * S * S)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let (c, y, x) = (i / (S * S), (i / S) % S, i % S);
            let r = ((y as f32 - 40.0).powi(2) + (x as f32 - 50.0).powi(2)).sqrt();
            let noise = (state % 1000) as f32 / 1000.0 - 0.5;
            (1.5 - r / 40.0) * (c as f32 + 1.0) / 3.0 + 0.2 * noise
        })
        .collect()
}

/// The training code's definition, pixel by pixel over whole maps (no runs, no single pass).
fn naive_features(x: &[f32], rings: usize) -> Vec<f64> {
    let at = |c: usize, y: usize, xx: usize| f64::from(x[c * S * S + y * S + xx]);
    let ring = |y: usize, xx: usize| {
        let r = ((y as f64 - 47.5).powi(2) + (xx as f64 - 47.5).powi(2)).sqrt();
        ((r / 68.0 * rings as f64).floor() as usize).min(rings - 1)
    };
    let mut count = vec![0.0; rings];
    for y in 0..S {
        for xx in 0..S {
            count[ring(y, xx)] += 1.0;
        }
    }
    let prof = |m: &dyn Fn(usize, usize) -> f64| {
        let mut p = vec![0.0; rings];
        for y in 0..S {
            for xx in 0..S {
                p[ring(y, xx)] += m(y, xx);
            }
        }
        p.iter().zip(&count).map(|(a, n)| a / n).collect::<Vec<_>>()
    };
    let n = (S * S) as f64;
    let mut f = vec![0.0; ShiftSpec::dims(rings)];
    for c in 0..3 {
        let mean: f64 = (0..S * S).map(|i| at(c, i / S, i % S)).sum::<f64>() / n;
        let var: f64 = (0..S * S)
            .map(|i| (at(c, i / S, i % S) - mean).powi(2))
            .sum::<f64>()
            / n;
        f[c] = mean;
        f[3 + c] = var.sqrt();
        for (k, v) in prof(&|y, xx| at(c, y, xx)).into_iter().enumerate() {
            f[6 + c * rings + k] = v;
        }
    }
    let grad = |y: usize, xx: usize| {
        (0..3)
            .map(|c| {
                let dx = if xx > 0 {
                    at(c, y, xx) - at(c, y, xx - 1)
                } else {
                    0.0
                };
                let dy = if y > 0 {
                    at(c, y, xx) - at(c, y - 1, xx)
                } else {
                    0.0
                };
                (dx * dx + dy * dy).sqrt()
            })
            .sum::<f64>()
            / 3.0
    };
    let lap = |y: usize, xx: usize| {
        if y == 0 || xx == 0 || y == S - 1 || xx == S - 1 {
            return 0.0;
        }
        (0..3)
            .map(|c| {
                (4.0 * at(c, y, xx)
                    - at(c, y - 1, xx)
                    - at(c, y + 1, xx)
                    - at(c, y, xx - 1)
                    - at(c, y, xx + 1))
                .abs()
            })
            .sum::<f64>()
            / 3.0
    };
    for (k, v) in prof(&grad).into_iter().enumerate() {
        f[6 + 3 * rings + k] = v;
    }
    for (k, v) in prof(&lap).into_iter().enumerate() {
        f[6 + 4 * rings + k] = v;
    }
    f
}

#[test]
fn one_pass_features_equal_the_definition() {
    for rings in [12, 5] {
        let m = ShiftModel::new(&spec(rings), S, S).unwrap();
        for seed in 1..4 {
            let x = tensor(seed);
            let mut fast = vec![0.0; m.dims()];
            m.features_into(&x, &mut fast);
            let slow = naive_features(&x, rings);
            for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "rings {rings} seed {seed} feature {i}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn score_is_the_whitened_distance() {
    let m = ShiftModel::new(&spec(12), S, S).unwrap();
    let x = tensor(7);
    let f = naive_features(&x, 12);
    let want = f.iter().map(|v| v * v).sum::<f64>().sqrt();
    let s = m.score(&x);
    assert!(
        (s.score - want).abs() < 1e-9 * want,
        "{} vs {want}",
        s.score
    );
    assert_eq!(s.version, VERSION);
    assert_eq!(s.out_of_distribution(), s.score > 11.97);
}

#[test]
fn a_flat_tensor_has_no_spread_gradient_or_laplacian() {
    let m = ShiftModel::new(&spec(12), S, S).unwrap();
    let x = vec![0.25f32; 3 * S * S];
    let mut f = vec![0.0; m.dims()];
    m.features_into(&x, &mut f);
    assert!(f[..3].iter().all(|v| *v == 0.25));
    assert!(f[3..6].iter().all(|v| *v == 0.0), "{:?}", &f[3..6]);
    assert!(f[6 + 36..].iter().all(|v| *v == 0.0));
}

#[test]
fn rings_cover_every_pixel_once_in_row_runs() {
    let (runs, starts, counts) = ring_runs(12, 68.0, S, S);
    assert_eq!(counts.iter().sum::<u64>(), (S * S) as u64);
    assert!(counts.iter().all(|&c| c > 0));
    for y in 0..S {
        let row = &runs[starts[y]..starts[y + 1]];
        assert_eq!(row.first().unwrap().x0, 0);
        assert_eq!(row.last().unwrap().x1 as usize, S);
        assert!(
            row.windows(2)
                .all(|w| w[0].x1 == w[1].x0 && w[0].ring != w[1].ring)
        );
    }
}

#[test]
fn bad_references_are_refused() {
    type Spoil = fn(&mut ShiftSpec);
    let cases: Vec<(Spoil, &str)> = vec![
        (|s| s.version = "shift-9".into(), "computes shift-1 only"),
        (
            |s| {
                s.mean.pop();
            },
            "need 66",
        ),
        (|s| s.whiten[3].push(0.0), "66 x 66"),
        (
            |s| {
                s.whiten.pop();
            },
            "66 x 66",
        ),
        (|s| s.threshold = f64::NAN, "threshold"),
        (|s| s.threshold = f64::INFINITY, "threshold"),
        (|s| s.mean[5] = f64::NAN, "finite"),
        (|s| s.rings = 0, "rings"),
        (|s| s.ring_radius = 0.0, "ring_radius"),
    ];
    for (spoil, want) in cases {
        let mut s = spec(12);
        spoil(&mut s);
        let e = s.check().unwrap_err();
        assert!(e.contains(want), "{e}");
    }
    // A radius so large that the outer rings hold no pixel.
    let mut s = spec(12);
    s.ring_radius = 1000.0;
    assert!(ShiftModel::new(&s, S, S).unwrap_err().contains("no pixel"));
}

#[test]
fn a_refitted_reference_has_another_digest() {
    let a = spec(12);
    let mut b = spec(12);
    assert_eq!(a.digest(), b.digest());
    b.threshold = 12.0;
    assert_ne!(a.digest(), b.digest());
    b.threshold = a.threshold;
    b.whiten[0][1] = 1e-9;
    assert_ne!(a.digest(), b.digest());
}
