//! Shares with their 95 % Wilson score intervals, as `simulate` and `calibrate` report them.

use serde::Serialize;

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// `k` of `n`, the share and its 95 % Wilson interval (0..0 when `n` is 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Share {
    pub k: u64,
    pub n: u64,
    pub share: f64,
    pub low: f64,
    pub high: f64,
}

impl Share {
    pub fn new(k: u64, n: u64) -> Share {
        let (low, high) = wilson(k, n);
        Share {
            k,
            n,
            share: if n == 0 { 0.0 } else { k as f64 / n as f64 },
            low,
            high,
        }
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.n == 0 {
            return f.write_str("0/0 (nothing to count)");
        }
        write!(
            f,
            "{}/{} = {:.2} % (95 % CI {:.2}–{:.2} %)",
            self.k,
            self.n,
            self.share * 100.0,
            self.low * 100.0,
            self.high * 100.0
        )
    }
}

/// The 95 % Wilson score interval of `k` successes in `n` trials.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let (k, n) = (k.min(n) as f64, n as f64);
    let p = k / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    // At k = 0 and k = n the bounds are exactly 0 and 1; the formula leaves rounding there.
    let low = if k == 0.0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if k == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_known_values() {
        // Reference values computed separately (Python, the textbook formula, z = 1.959964).
        let (l, h) = wilson(0, 100);
        assert!(l == 0.0 && (h - 0.036_993_5).abs() < 1e-6, "{h}");
        let (l, h) = wilson(5, 100);
        assert!(
            (l - 0.021_543_7).abs() < 1e-6 && (h - 0.111_750_5).abs() < 1e-6,
            "{l} {h}"
        );
        let (l, h) = wilson(10, 10);
        assert!((l - 0.722_467_2).abs() < 1e-6 && h == 1.0, "{l}");
        assert_eq!(wilson(0, 0), (0.0, 0.0));
        assert_eq!(Share::new(1, 4).share, 0.25);
        assert_eq!(Share::new(0, 0).to_string(), "0/0 (nothing to count)");
        assert_eq!(
            Share::new(5, 100).to_string(),
            "5/100 = 5.00 % (95 % CI 2.15–11.18 %)"
        );
    }
}
