//! `iari classify` and `iari eval` as a user runs them: the real binary on real files.

use crate::common::{golden_decision, golden_dir, repo};
use std::path::Path;
use std::process::{Command, Output};

fn iari(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iari"))
        .args(args)
        .current_dir(repo())
        .env("IARI__INFERENCE__DEVICE", "cpu")
        .env("IARI__LOG__LEVEL", "warn")
        .output()
        .expect("iari runs")
}

fn copy(from: &str, to: &Path) {
    std::fs::copy(golden_dir().join(from), to).unwrap();
}

#[test]
fn classify_reports_each_image_and_each_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    copy("g4-4p.png", &dir.path().join("a.png"));
    std::fs::write(
        dir.path().join("broken.png"),
        b"\x89PNG\r\n\x1a\n truncated",
    )
    .unwrap();
    let nested = dir.path().join("more");
    std::fs::create_dir(&nested).unwrap();
    copy("g0-neg.png", &nested.join("b.png"));
    let out = iari(&["classify", dir.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a broken file makes the exit non-zero"
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["grade"], golden_decision("g4-4p.png").as_str());
    assert!(rows[1]["error"].as_str().unwrap().contains("undecodable"));
    assert_eq!(rows[2]["grade"], golden_decision("g0-neg.png").as_str());
    assert_eq!(rows[2]["votes"].as_object().unwrap().len(), 5);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.png: image undecodable"), "{stderr}");
}

#[test]
fn classify_csv_and_table_have_one_row_per_image() {
    let g = golden_dir();
    let files = [g.join("g2-2p.png"), g.join("g7-3p-300x280.png")];
    let args: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let csv = iari(
        &[
            &["classify", "--format", "csv", "--batch-size", "1"],
            &args[..],
        ]
        .concat(),
    );
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let text = String::from_utf8(csv.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("path,grade,agreement"));
    assert!(
        lines[1].contains(&format!(",{},", golden_decision("g2-2p.png")))
            && lines[2].contains(&format!(",{},", golden_decision("g7-3p-300x280.png"))),
        "{text}"
    );
    let table = iari(&[&["classify"], &args[..]].concat());
    let text = String::from_utf8(table.stdout).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(text.lines().next().unwrap().contains("densenet-cbam"));
}

#[test]
fn eval_scores_a_labelled_folder_and_draws_the_matrices() {
    let dir = tempfile::tempdir().unwrap();
    for (folder, file) in [
        ("neg", "g0-neg.png"),
        ("neg", "g5-neg-bubble.png"),
        ("2p", "g2-2p.png"),
        ("4+", "g4-4p.png"),
    ] {
        let sub = dir.path().join(folder);
        std::fs::create_dir_all(&sub).unwrap();
        copy(file, &sub.join(file));
    }
    let plot = dir.path().join("cm.png");
    let out = iari(&[
        "eval",
        dir.path().to_str().unwrap(),
        "--format",
        "json",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["images"], 4);
    assert_eq!(e["models"].as_array().unwrap().len(), 5);
    // Expected from the golden decisions against the folder labels.
    let truth = [
        ("g0-neg.png", "neg"),
        ("g5-neg-bubble.png", "neg"),
        ("g2-2p.png", "2+"),
        ("g4-4p.png", "4+"),
    ];
    let right = truth
        .iter()
        .filter(|(f, t)| golden_decision(f) == *t)
        .count();
    let neg_right = truth[..2]
        .iter()
        .filter(|(f, _)| golden_decision(f) == "neg")
        .count();
    assert_eq!(e["ensemble"]["accuracy"], right as f64 / 4.0);
    assert_eq!(e["ensemble"]["confusion"]["counts"][0][0], neg_right);
    assert_eq!(e["review"]["errors"], 4 - right);
    let png = std::fs::read(&plot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
}

#[test]
fn eval_counts_out_of_distribution_and_models_verify_names_the_reference() {
    // A training-like well, a well with red and blue swapped and a site-b well (SYNTHETIC); how
    // many are over the threshold is what golden/shift.json, written by the training code, says.
    let shift: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden_dir().join("shift.json")).unwrap())
            .unwrap();
    let files = [
        ("neg", "g0-neg.png"),
        ("neg", "s2-swapped-rb.png"),
        ("1+", "s1-siteb-1p.png"),
    ];
    let over = shift["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| files.iter().any(|(_, f)| c["image"] == *f))
        .filter(|c| c["out_of_distribution"] == true)
        .count() as u64;
    assert!(over >= 1, "the set has a well over the threshold");
    let dir = tempfile::tempdir().unwrap();
    for (folder, file) in files {
        let sub = dir.path().join(folder);
        std::fs::create_dir_all(&sub).unwrap();
        copy(file, &sub.join(file));
    }
    let out = iari(&["eval", dir.path().to_str().unwrap(), "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &e["review"];
    assert_eq!(
        (
            r["shift_scored"].as_u64(),
            r["out_of_distribution"].as_u64()
        ),
        (Some(3), Some(over))
    );
    assert!(r["decisions_flagged"].as_u64() >= Some(over), "{r}");
    assert!(r["decisions_flagged_without_shift"].as_u64() <= r["decisions_flagged"].as_u64());

    let out = iari(&["models", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("shift reference shift-1 sha256 "), "{text}");
    let threshold = format!(" threshold {:.4}", shift["threshold"].as_f64().unwrap());
    assert!(text.contains(&threshold), "{text} lacks{threshold}");
}

/// `iari models verify` checks the earlier versions a manifest keeps, too: a changed file in
/// one fails the command and is named.
#[test]
fn models_verify_checks_the_kept_earlier_versions() {
    let models = repo().join("onnx/models");
    let text = std::fs::read_to_string(models.join("manifest.json")).unwrap();
    let mut man: serde_json::Value = serde_json::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1");
    std::fs::create_dir(&v1).unwrap();
    for m in man["models"].as_array().unwrap() {
        let file = m["file"].as_str().unwrap();
        std::fs::copy(models.join(file), v1.join(file)).unwrap();
        std::fs::copy(models.join(file), dir.path().join(file)).unwrap();
    }
    std::fs::write(v1.join("manifest.json"), &text).unwrap();
    man["previous"] = serde_json::json!(["v1/manifest.json"]);
    let current = dir.path().join("manifest.json");
    std::fs::write(&current, man.to_string()).unwrap();
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_iari"))
            .args(["models", "verify"])
            .env("IARI__MODELS__MANIFEST", &current)
            .env("IARI__LOG__LEVEL", "warn")
            .output()
            .expect("iari runs")
    };
    let out = verify();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    let ok = text.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(ok, 10, "five files in each of two versions: {text}");
    assert!(
        text.contains("earlier versions, kept for decisions pinned to them:"),
        "{text}"
    );

    std::fs::write(v1.join("vgg-cbam.onnx"), b"changed").unwrap();
    let out = verify();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!out.status.success(), "{text}");
    let bad: Vec<&str> = text.lines().filter(|l| l.starts_with("MISMATCH")).collect();
    assert_eq!(bad.len(), 1, "{text}");
    assert!(bad[0].contains("vgg-cbam"), "{text}");
}
