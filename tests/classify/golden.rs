//! Parity with `onnx/models/golden/`: the Rust preprocessing equals the Python tensors, ORT
//! logits match the recorded ones, and votes and decisions are the same.

use crate::common::{engine, golden_dir};
use iari::classify::{ImageLimits, ImageTensor, decode, vote};
use iari::domain::{Grade, Sha256Digest};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
struct GoldenCase {
    image: String,
    tensor: String,
    width: u32,
    height: u32,
    logits: HashMap<String, [f32; 5]>,
    votes: HashMap<String, String>,
    decision: String,
    summed_softmax: [f32; 5],
}

fn cases() -> Vec<GoldenCase> {
    let text = std::fs::read_to_string(golden_dir().join("golden.json")).unwrap();
    let cases: Vec<GoldenCase> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 5, "golden set too small");
    cases
}

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(golden_dir().join(name)).unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn limits() -> ImageLimits {
    ImageLimits {
        max_bytes: 20 << 20,
        max_width: 4096,
        max_height: 4096,
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn rust_preprocessing_equals_the_golden_tensors() {
    let pre = engine().preprocessor();
    for case in cases() {
        let bytes = std::fs::read(golden_dir().join(&case.image)).unwrap();
        let img = decode(&bytes, &limits()).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (case.width, case.height),
            "{}",
            case.image
        );
        let ours = pre.run(&img.rgb);
        let theirs = read_f32(&case.tensor);
        let d = max_abs_diff(&ours, &theirs);
        assert!(d <= 1e-5, "{}: max abs diff {d}", case.image);
    }
}

fn check_logits(logits: &[iari::classify::ModelLogits], case: &GoldenCase, source: &str) {
    let e = engine();
    for (m, result) in e.info().models.iter().zip(logits) {
        let got = result.as_ref().unwrap()[0];
        let want = case.logits[&m.name];
        let d = max_abs_diff(&got, &want);
        assert!(
            d <= 1e-4,
            "{} {} ({source}): logit diff {d}",
            case.image,
            m.name
        );
        let vote = vote::answer_from_logits(&got).vote().unwrap();
        assert_eq!(
            vote.label(),
            case.votes[&m.name],
            "{} {} vote",
            case.image,
            m.name
        );
    }
}

#[test]
fn ort_logits_match_on_golden_and_rust_tensors() {
    let e = engine();
    for case in cases() {
        let golden = read_f32(&case.tensor);
        check_logits(&e.run_models(&golden.into(), 1), &case, "golden tensor");
        let bytes = std::fs::read(golden_dir().join(&case.image)).unwrap();
        let ours = e
            .preprocessor()
            .run(&decode(&bytes, &limits()).unwrap().rgb);
        check_logits(&e.run_models(&ours.into(), 1), &case, "rust tensor");
    }
}

#[test]
fn batched_decisions_match_the_golden_decisions() {
    let e = engine();
    let cases = cases();
    let batch: Vec<ImageTensor> = cases
        .iter()
        .map(|c| {
            let bytes = std::fs::read(golden_dir().join(&c.image)).unwrap();
            let data = e
                .preprocessor()
                .run(&decode(&bytes, &limits()).unwrap().rgb);
            ImageTensor {
                sha256: Sha256Digest::of(&bytes),
                data,
            }
        })
        .collect();
    let out = e.classify(&batch).unwrap();
    assert_eq!(out.len(), cases.len());
    for ((c, t), got) in cases.iter().zip(&batch).zip(&out) {
        assert_eq!(got.image_sha256, t.sha256);
        assert_eq!(got.outcome.grade.label(), c.decision, "{}", c.image);
        let votes: Vec<&str> = got
            .models
            .iter()
            .map(|(_, a)| a.vote().map_or("failed", Grade::label))
            .collect();
        let want: Vec<&str> = got
            .models
            .iter()
            .map(|(m, _)| c.votes[&m.name].as_str())
            .collect();
        assert_eq!(votes, want, "{}", c.image);
        let mut summed = [0.0f32; 5];
        for (_, a) in &got.models {
            if let iari::domain::ModelAnswer::Voted { probabilities, .. } = a {
                for (s, p) in summed.iter_mut().zip(probabilities) {
                    *s += p;
                }
            }
        }
        assert!(
            max_abs_diff(&summed, &c.summed_softmax) <= 1e-4,
            "{}",
            c.image
        );
    }
}
