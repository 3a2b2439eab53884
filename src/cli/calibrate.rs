//! `iari calibrate DIR --max-serious-release RATE`: classifies a labelled folder and writes the
//! least restrictive policy whose upper 95 % bound of serious errors released final stays under
//! RATE, with its evidence (`release::calibrate`).

use crate::config::Settings;
use crate::domain::{Grade, Sha256Digest};
use crate::release::Policy;
use crate::release::calibrate::{Evidence, candidates, choose, policy_file};
use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Labelled folder: neg, 1+..4+ (or 1p..4p) sub-folders.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Largest acceptable share of serious errors released final (0.001 = 0.1 %), judged by the
    /// upper 95 % Wilson bound.
    #[arg(long, value_name = "RATE")]
    pub max_serious_release: f64,
    /// Where to write the policy (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The policy's version.
    #[arg(long, default_value = "calibrated-1")]
    pub version: String,
}

pub fn run(settings: &Settings, args: CalibrateArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.max_serious_release > 0.0 && args.max_serious_release < 1.0,
        "--max-serious-release must be between 0 and 1 (0.001 is 0.1 %)"
    );
    let (files, cases, code) = super::policy::labelled_cases(settings, &args.dir)?;
    let dataset = dataset_sha256(&args.dir, &files)?;
    let per_grade: Vec<(String, u64)> = Grade::ALL
        .iter()
        .map(|g| {
            (
                g.label().to_string(),
                cases.iter().filter(|c| c.truth == Some(*g)).count() as u64,
            )
        })
        .collect();
    let cands = candidates(&cases);
    let chosen = choose(&cands, args.max_serious_release);
    let dir = args.dir.display().to_string();
    let evidence = Evidence {
        dir: &dir,
        dataset_sha256: &dataset,
        per_grade: &per_grade,
        rate: args.max_serious_release,
    };
    let text = policy_file(&evidence, &args.version, chosen, cands.len());
    // What is written must be a valid policy: the same parser `activate` uses.
    let p =
        Policy::parse(text.as_bytes()).map_err(|e| anyhow::anyhow!("calibrated policy: {e}"))?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| path.display().to_string())?;
            eprintln!(
                "iari: policy written to {} (sha256 {})",
                path.display(),
                p.sha256
            );
        }
        None => print!("{text}"),
    }
    if chosen.is_none() {
        eprintln!(
            "iari: no candidate met the rate on {} images; the policy sends everything to review",
            cases.len()
        );
    }
    Ok(code)
}

/// SHA-256 over the sorted lines `relative/path<TAB>sha256-of-the-file`.
fn dataset_sha256(dir: &Path, files: &[PathBuf]) -> anyhow::Result<String> {
    let mut lines = Vec::with_capacity(files.len());
    for f in files {
        let bytes = std::fs::read(f).with_context(|| f.display().to_string())?;
        let rel = f
            .strip_prefix(dir)
            .unwrap_or(f)
            .to_string_lossy()
            .replace('\\', "/");
        lines.push(format!("{rel}\t{}\n", Sha256Digest::of(&bytes)));
    }
    lines.sort();
    Ok(Sha256Digest::of(lines.concat().as_bytes()).to_string())
}
