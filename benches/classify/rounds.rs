//! The full path's CPU per image against its parts, in interleaved rounds. On a shared host the
//! machine's speed drifts during a run (on 2026-11-26 this VM's classify throughput fell from
//! ~1,300 to ~780 images/s within two hours), so parts and whole measured in back-to-back
//! windows compare different machines. Each round measures decode + preprocess, inference and
//! the full path one after another for a short window (in turn forwards and backwards); the
//! median round is the result, with how many rounds had the whole above its parts.

use super::{Measure, measure};
use std::time::Duration;

/// One measured thing: images per call, and the call.
pub struct Part<'a> {
    pub images_per_call: usize,
    pub call: Box<dyn FnMut() + 'a>,
}

impl Part<'_> {
    /// Repeats the call for at least `window`.
    pub fn measure(&mut self, window: Duration) -> Measure {
        measure(window, self.images_per_call, &mut self.call)
    }
}

/// Prints each round and the median of (full − parts) / parts.
pub fn compare(rounds: usize, window: Duration, mut dp: Part, mut infer: Part, mut full: Part) {
    let mut over = Vec::with_capacity(rounds);
    for r in 1..=rounds {
        // Every other round runs the whole first, so neither side always follows the other.
        let (d, i, f) = if r % 2 == 1 {
            let d = dp.measure(window);
            let i = infer.measure(window);
            (d, i, full.measure(window))
        } else {
            let f = full.measure(window);
            let i = infer.measure(window);
            (dp.measure(window), i, f)
        };
        let parts = d.cpu_ms_per_image() + i.cpu_ms_per_image();
        let pct = (f.cpu_ms_per_image() - parts) / parts * 100.0;
        println!(
            "  round {r}: decode+preprocess {:.3} + inference {:.3} = {parts:.3} ms; full path {:.3} ms ({pct:+.1} %)",
            d.cpu_ms_per_image(),
            i.cpu_ms_per_image(),
            f.cpu_ms_per_image()
        );
        over.push(pct);
    }
    over.sort_by(f64::total_cmp);
    let above = over.iter().filter(|&&p| p > 0.0).count();
    if let Some(median) = over.get(over.len() / 2) {
        println!(
            "  median over {rounds} rounds: full path {median:+.1} % CPU per image against its parts ({above} of {rounds} rounds above)"
        );
    }
}
