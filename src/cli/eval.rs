//! `iari eval <DIR>`: runs the ensemble over a labelled folder (`neg`, `1+`..`4+` or
//! `1p`..`4p` sub-folders) and reports, per sub-model and for the ensemble, the metrics of
//! `classify::metrics`, timing, and how many errors the review policy caught, with and without
//! the shift flag `out_of_distribution`.

use super::classify::{report_failures, run_options, run_with_progress};
use super::plot;
use crate::classify::Engine;
use crate::classify::files::{FileResult, collect_images, label_of};
use crate::classify::metrics::{Confusion, Report, is_serious, report};
use crate::classify::vote::decide;
use crate::config::{DecisionSettings, Settings};
use crate::domain::{Classification, Flag, Grade, ModelAnswer};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Folder with one sub-folder per grade: neg, 1+ (or 1p), 2+, 3+, 4+.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Draw the confusion matrices into this PNG file.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// Images per inference run (default: inference.batch_size).
    #[arg(long)]
    pub batch_size: Option<usize>,
}

/// Metrics of one model (or the ensemble) on the set.
#[derive(Debug, Serialize)]
pub struct Scored {
    pub name: String,
    #[serde(flatten)]
    pub report: Report,
    pub serious_errors: u64,
    pub ms_per_image: f64,
}

/// What the review policy did with the ensemble's errors. "Flagged" means sent to review.
#[derive(Debug, Default, Serialize)]
pub struct ReviewCatch {
    pub errors: u64,
    pub errors_flagged: u64,
    pub serious_errors: u64,
    pub serious_unflagged: u64,
    pub decisions_flagged: u64,
    /// Decisions with a shift score (all of them when the manifest has a reference).
    pub shift_scored: u64,
    /// Decisions flagged `out_of_distribution`, and the serious errors among them.
    pub out_of_distribution: u64,
    pub serious_out_of_distribution: u64,
    /// The same review policy without the shift flag: what it adds.
    pub decisions_flagged_without_shift: u64,
    pub errors_flagged_without_shift: u64,
    pub serious_unflagged_without_shift: u64,
}

#[derive(Debug, Serialize)]
pub struct Evaluation {
    pub dir: PathBuf,
    pub synthetic: bool,
    pub ensemble_version: String,
    pub images: u64,
    pub models: Vec<Scored>,
    pub ensemble: Scored,
    pub review: ReviewCatch,
}

pub fn run(settings: &Settings, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let files: Vec<PathBuf> = collect_images(std::slice::from_ref(&args.dir))?
        .into_iter()
        .filter(|p| label_of(p).is_some())
        .collect();
    if files.is_empty() {
        anyhow::bail!(
            "{}: no images under neg, 1+..4+ or 1p..4p sub-folders",
            args.dir.display()
        );
    }
    let engine = Engine::load(settings)?;
    let before = model_seconds(&engine);
    let started = Instant::now();
    let results = run_with_progress(&engine, &files, &run_options(settings, args.batch_size));
    let wall = started.elapsed().as_secs_f64();
    let per_model: Vec<f64> = model_seconds(&engine)
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    let eval = evaluate(
        &engine,
        &args.dir,
        &results,
        wall,
        &per_model,
        &settings.decision,
    );
    match args.format {
        Format::Table => print_table(&eval),
        Format::Json => println!("{}", serde_json::to_string_pretty(&eval)?),
    }
    if let Some(path) = &args.plot {
        plot::confusion_matrices(path, &eval)?;
        eprintln!("iari: confusion matrices drawn to {}", path.display());
    }
    report_failures(&results)
}

/// Seconds of inference recorded so far for each model (from the metrics histogram).
fn model_seconds(engine: &Engine) -> Vec<f64> {
    let h = &crate::metrics::metrics().model_inference_seconds;
    engine
        .info()
        .models
        .iter()
        .map(|m| h.with_label_values(&[m.name.as_str()]).get_sample_sum())
        .collect()
}

fn evaluate(
    engine: &Engine,
    dir: &std::path::Path,
    results: &[FileResult],
    wall: f64,
    model_secs: &[f64],
    rules: &DecisionSettings,
) -> Evaluation {
    let info = engine.info();
    let labelled: Vec<(Grade, &Classification)> = results
        .iter()
        .filter_map(|r| Some((label_of(&r.path)?, r.outcome.as_ref().ok()?)))
        .collect();
    let n = labelled.len() as u64;
    let per_image_ms = |secs: f64| {
        if n == 0 {
            0.0
        } else {
            secs * 1000.0 / n as f64
        }
    };
    let models = info
        .models
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let pairs = labelled
                .iter()
                .filter_map(|(t, c)| Some((*t, c.models[k].1.vote()?)));
            score(&m.name, pairs, per_image_ms(model_secs[k]))
        })
        .collect();
    let pairs = labelled.iter().map(|(t, c)| (*t, c.outcome.grade));
    let ensemble = score("ensemble", pairs, per_image_ms(wall));
    Evaluation {
        dir: dir.to_path_buf(),
        synthetic: info.synthetic,
        ensemble_version: format!("{} {}", info.ensemble.name, info.ensemble.version),
        images: n,
        models,
        ensemble,
        review: review_catch(&labelled, rules),
    }
}

fn score(name: &str, pairs: impl Iterator<Item = (Grade, Grade)>, ms_per_image: f64) -> Scored {
    let mut c = Confusion::default();
    let mut serious = 0;
    for (t, p) in pairs {
        c.add(t, p);
        serious += u64::from(is_serious(t, p));
    }
    Scored {
        name: name.into(),
        report: report(&c),
        serious_errors: serious,
        ms_per_image,
    }
}

fn review_catch(labelled: &[(Grade, &Classification)], rules: &DecisionSettings) -> ReviewCatch {
    let mut r = ReviewCatch::default();
    for (truth, c) in labelled {
        let (pred, flagged) = (c.outcome.grade, c.outcome.needs_review);
        let without = review_without_shift(c, rules);
        let ood = c.outcome.flags.contains(&Flag::OutOfDistribution);
        r.decisions_flagged += u64::from(flagged);
        r.decisions_flagged_without_shift += u64::from(without);
        r.shift_scored += u64::from(c.shift.is_some());
        r.out_of_distribution += u64::from(ood);
        if pred != *truth {
            r.errors += 1;
            r.errors_flagged += u64::from(flagged);
            r.errors_flagged_without_shift += u64::from(without);
        }
        if is_serious(*truth, pred) {
            r.serious_errors += 1;
            r.serious_unflagged += u64::from(!flagged);
            r.serious_unflagged_without_shift += u64::from(!without);
            r.serious_out_of_distribution += u64::from(ood);
        }
    }
    r
}

/// Whether the decision would need review without its shift score: the same rules over the
/// same answers, so what the flag adds is measured, not assumed.
fn review_without_shift(c: &Classification, rules: &DecisionSettings) -> bool {
    let answers: Vec<ModelAnswer> = c.models.iter().map(|(_, a)| a.clone()).collect();
    // The engine decided these answers already, so the quorum holds; keep its verdict if not.
    decide(&answers, rules).map_or(c.outcome.needs_review, |o| o.needs_review)
}

fn print_table(e: &Evaluation) {
    let synthetic = if e.synthetic {
        " (SYNTHETIC models)"
    } else {
        ""
    };
    println!(
        "{}: {} images, ensemble {}{synthetic}",
        e.dir.display(),
        e.images,
        e.ensemble_version
    );
    println!(
        "\n{:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "model", "accuracy", "macro-P", "macro-R", "macro-F1", "kappa", "serious", "ms/image"
    );
    for s in e.models.iter().chain(std::iter::once(&e.ensemble)) {
        let r = &s.report;
        println!(
            "{:<16} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8} {:>9.3}",
            s.name,
            r.accuracy,
            r.macro_precision,
            r.macro_recall,
            r.macro_f1,
            r.kappa,
            s.serious_errors,
            s.ms_per_image
        );
    }
    for s in e.models.iter().chain(std::iter::once(&e.ensemble)) {
        print_detail(s);
    }
    let r = &e.review;
    println!(
        "\nreview policy: {} decision(s) flagged; {} of {} ensemble error(s) flagged; \
         {} of {} serious error(s) went UNFLAGGED",
        r.decisions_flagged, r.errors_flagged, r.errors, r.serious_unflagged, r.serious_errors
    );
    if r.shift_scored == 0 {
        println!("shift: not scored (the manifest has no shift reference)");
        return;
    }
    println!(
        "shift: {} of {} decision(s) out_of_distribution ({:.1} %), {} of {} serious error(s) \
         among them; without the shift flag: {} decision(s) flagged, {} of {} error(s) flagged, \
         {} serious error(s) UNFLAGGED",
        r.out_of_distribution,
        r.shift_scored,
        100.0 * r.out_of_distribution as f64 / r.shift_scored as f64,
        r.serious_out_of_distribution,
        r.serious_errors,
        r.decisions_flagged_without_shift,
        r.errors_flagged_without_shift,
        r.errors,
        r.serious_unflagged_without_shift
    );
}

fn print_detail(s: &Scored) {
    println!("\n{} (rows = true grade, columns = predicted)", s.name);
    println!(
        "{:<5} {:>6} {:>6} {:>6} {:>6} {:>6} | {:>8} {:>9} {:>6} {:>6} {:>7}",
        "", "neg", "1+", "2+", "3+", "4+", "accuracy", "precision", "recall", "F1", "support"
    );
    for (g, m) in s.report.per_class.iter().enumerate() {
        let row = &s.report.confusion.counts[g];
        println!(
            "{:<5} {:>6} {:>6} {:>6} {:>6} {:>6} | {:>8.4} {:>9.4} {:>6.4} {:>6.4} {:>7}",
            m.grade.label(),
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            m.accuracy,
            m.precision,
            m.recall,
            m.f1,
            m.support
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Sha256Digest, ShiftScore};

    fn rules() -> DecisionSettings {
        DecisionSettings {
            quorum: 1,
            low_confidence_threshold: 0.6,
            review_min_agreement: 1.0,
        }
    }

    /// The engine's decision for sub-models voting `votes` surely, with a shift score over
    /// the threshold when `ood`.
    fn decided(votes: &[Grade], ood: bool) -> Classification {
        let answers: Vec<ModelAnswer> = votes
            .iter()
            .map(|&vote| {
                let mut probabilities = [0.0; 5];
                probabilities[vote.index()] = 1.0;
                ModelAnswer::Voted {
                    probabilities,
                    vote,
                }
            })
            .collect();
        let shift = ShiftScore {
            version: "shift-1".into(),
            score: if ood { 20.0 } else { 5.0 },
            threshold: 11.97,
        };
        let mut outcome = decide(&answers, &rules()).unwrap();
        crate::classify::vote::flag_shift(&mut outcome, Some(&shift));
        let m = crate::domain::ModelRef {
            name: "m".into(),
            version: "1".into(),
            sha256: Sha256Digest::of(b"m"),
        };
        Classification {
            image_sha256: Sha256Digest::of(b"x"),
            models: answers.into_iter().map(|a| (m.clone(), a)).collect(),
            outcome,
            shift: Some(shift),
        }
    }

    #[test]
    fn review_catch_counts_flagged_and_unflagged_serious_errors_with_and_without_shift() {
        use Grade::*;
        let cases = [
            (Neg, decided(&[Neg, Neg], false)),
            // Caught by the vote: a dissenting sub-model.
            (Neg, decided(&[P1, P1, Neg], false)),
            (P2, decided(&[P3, P3], false)),
            // Serious, unanimous and confident: only the shift flag catches these.
            (P1, decided(&[P4, P4], true)),
            (P3, decided(&[Neg, Neg], true)),
            (P4, decided(&[P4, P4], true)),
        ];
        let refs: Vec<(Grade, &Classification)> = cases.iter().map(|(g, c)| (*g, c)).collect();
        let r = review_catch(&refs, &rules());
        assert_eq!((r.errors, r.errors_flagged), (4, 3));
        assert_eq!((r.serious_errors, r.serious_unflagged), (3, 0));
        assert_eq!(r.decisions_flagged, 4);
        assert_eq!((r.shift_scored, r.out_of_distribution), (6, 3));
        assert_eq!(r.serious_out_of_distribution, 2);
        assert_eq!(r.decisions_flagged_without_shift, 1);
        assert_eq!(r.errors_flagged_without_shift, 1);
        assert_eq!(r.serious_unflagged_without_shift, 2);
    }
}
