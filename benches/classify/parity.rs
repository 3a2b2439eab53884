//! On a GPU: do its sessions give the CPU path's answers? The same packed sample images through
//! both engines: the largest logit difference, and how many votes and decisions differ.

use iari::classify::{Engine, SharedInput};
use iari::domain::Sha256Digest;

pub fn report(gpu: &Engine, cpu: &Engine, tensors: &[Vec<f32>], shas: &[Sha256Digest]) {
    let input = SharedInput::from(tensors.concat());
    let n = tensors.len();
    let (a, b) = (gpu.run_models(&input, n), cpu.run_models(&input, n));
    let mut max_diff = 0f32;
    for (x, y) in a.iter().zip(&b) {
        let (Ok(x), Ok(y)) = (x, y) else {
            println!("parity: a model failed: {x:?} / {y:?}");
            return;
        };
        for (rx, ry) in x.iter().zip(y) {
            for (p, q) in rx.iter().zip(ry) {
                max_diff = max_diff.max((p - q).abs());
            }
        }
    }
    let ga = gpu.classify_packed(shas, &input).expect("GPU decisions");
    let cb = cpu.classify_packed(shas, &input).expect("CPU decisions");
    let (mut votes, mut grades, mut flags) = (0, 0, 0);
    for (x, y) in ga.iter().zip(&cb) {
        votes += x
            .models
            .iter()
            .zip(&y.models)
            .filter(|(m, k)| m.1.vote() != k.1.vote())
            .count();
        grades += usize::from(x.outcome.grade != y.outcome.grade);
        flags += usize::from(
            x.outcome.flags != y.outcome.flags || x.outcome.needs_review != y.outcome.needs_review,
        );
    }
    println!(
        "parity with the CPU provider, {n} images: max |logit difference| {max_diff:.2e}; \
         votes differing {votes} of {}; grades differing {grades}; flags or review differing {flags}",
        n * a.len()
    );
}
