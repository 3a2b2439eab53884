//! `iari policy check | simulate | activate | suspend | resume | show`: the release policy's
//! file checked; what it would have done to stored decisions or a labelled folder, next to the
//! policy in force; the signed changes to the policy in force.

use super::audit::{ask_signer, signer};
use super::classify::{report_failures, run_options, run_with_progress};
use super::prompt::Input;
use crate::classify::Engine;
use crate::classify::files::{collect_images, label_of};
use crate::config::Settings;
use crate::domain::Sha256Digest;
use crate::release::check::check;
use crate::release::sign::{PolicyAction, sign_policy};
use crate::release::simulate::{Case, Tally, parse_time, stored_cases};
use crate::release::store::FOLLOW_EVERY;
use crate::release::{Facts, Policy, PolicySnapshot};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Parse a policy file (unknown keys refused, a catch-all last rule required) and report
    /// the rules that can never match or never release; non-zero when there are any.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// What the policy would have done to stored decisions (no re-inference) or to a labelled
    /// folder, next to the policy in force: shares released final and to review, and the
    /// errors released final where the truth is known, with 95 % Wilson intervals.
    Simulate(SimulateArgs),
    /// Put a policy file in force (a director's signature: asks for the user and password).
    /// Running workers apply it to their next batch, within seconds, with no restart.
    Activate {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Words recorded with the signature (why, on what evidence).
        #[arg(long)]
        comment: Option<String>,
    },
    /// Suspend the policy in force: every result needs review until `resume` (a supervisor's or
    /// director's signature).
    Suspend {
        #[arg(long)]
        comment: Option<String>,
    },
    /// Lift a suspension (a supervisor's or director's signature).
    Resume {
        #[arg(long)]
        comment: Option<String>,
    },
    /// The policy in force and whether it is suspended.
    Show,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Stored decisions decided at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    pub since: Option<String>,
    /// Stored decisions decided before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// A labelled folder (neg, 1+..4+ or 1p..4p) to classify instead of stored decisions.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["since", "until"])]
    pub labelled: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(settings: &Settings, cmd: PolicyCommand, input: &mut Input) -> anyhow::Result<ExitCode> {
    let (action, comment) = match cmd {
        PolicyCommand::Check { file } => return check_file(&file),
        PolicyCommand::Simulate(args) => return simulate(settings, args),
        PolicyCommand::Show => return show(settings),
        PolicyCommand::Activate { file, comment } => {
            let bytes = std::fs::read(&file).with_context(|| file.display().to_string())?;
            let p =
                Policy::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            for f in check(&p) {
                eprintln!("iari: warning: {}", f.describe(&p));
            }
            (PolicyAction::Activate(bytes), comment)
        }
        PolicyCommand::Suspend { comment } => (PolicyAction::Suspend, comment),
        PolicyCommand::Resume { comment } => (PolicyAction::Resume, comment),
    };
    let what = match &action {
        PolicyAction::Activate(b) => format!("activates release policy {}", Sha256Digest::of(b)),
        PolicyAction::Suspend => "suspends the release policy".into(),
        PolicyAction::Resume => "resumes the release policy".into(),
    };
    let (user, password) = ask_signer(input, &what)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let o = rt.block_on(async {
        let pool = crate::store::pool(&settings.database)?;
        let r = async {
            let signer = signer(&pool, &settings.workstation, &user, &password).await?;
            anyhow::Ok(sign_policy(&pool, &signer, &action, comment.as_deref()).await?)
        }
        .await;
        pool.close().await;
        r
    });
    let o = o.context("policy signature refused")?;
    println!(
        "signature {} ({}) recorded: policy {:?} version {} ({}); workers apply it within {} s",
        o.signature_id,
        o.meaning,
        o.policy_name,
        o.policy_version,
        o.policy_sha256,
        FOLLOW_EVERY.as_secs() + 1
    );
    Ok(ExitCode::SUCCESS)
}

fn show(settings: &Settings) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let s = rt.block_on(async {
        let pool = crate::store::pool(&settings.database)?;
        let s = crate::release::store::active(&pool).await;
        pool.close().await;
        anyhow::Ok(s?)
    })?;
    println!("{}", serde_json::to_string_pretty(&s.stamp())?);
    Ok(ExitCode::SUCCESS)
}

fn check_file(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let p = Policy::load(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    println!(
        "{}: policy {:?} version {} sha256 {}, {} rules",
        file.display(),
        p.name(),
        p.version(),
        p.sha256,
        p.rules().len()
    );
    let findings = check(&p);
    for f in &findings {
        println!("  {}", f.describe(&p));
    }
    if findings.is_empty() {
        println!("  every rule can match");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

fn simulate(settings: &Settings, args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let candidate =
        Policy::load(&args.file).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The pool is made inside the runtime: it needs one to exist.
    let pool = {
        let _inside = rt.enter();
        crate::store::pool(&settings.database)?
    };
    let active = rt.block_on(crate::release::store::active(&pool))?;
    let (cases, source, code) = match &args.labelled {
        Some(dir) => {
            let (_, cases, code) = labelled_cases(settings, dir)?;
            (cases, format!("labelled folder {}", dir.display()), code)
        }
        None => {
            let since = args
                .since
                .as_deref()
                .map(|s| parse_time("--since", s))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let until = args
                .until
                .as_deref()
                .map(|s| parse_time("--until", s))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let cases = rt.block_on(stored_cases(&pool, since, until))?;
            (cases, "stored decisions".to_string(), ExitCode::SUCCESS)
        }
    };
    rt.block_on(pool.close());
    let new = Tally::of(&candidate, &cases);
    let mut now = Tally::default();
    for c in &cases {
        now.add(&active.policy, active.suspended, c);
    }
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::json!({
                "source": source,
                "policy": {"file": args.file, "stamp": PolicySnapshot::new(candidate.clone(), false).stamp(),
                           "tally": new, "shares": new.shares()},
                "active": {"stamp": active.stamp(), "tally": now, "shares": now.shares()},
            })
        ),
        Format::Table => print_table(&source, (&candidate, &new), (&active, &now)),
    }
    Ok(code)
}

/// The labelled images under `dir` (sub-folders neg, 1+..4+ or 1p..4p), classified: the files,
/// one case each with its folder's grade as the truth, and the exit code that reports the images
/// that could not be classified. `simulate --labelled` and `calibrate` read folders this way.
pub(super) fn labelled_cases(
    settings: &Settings,
    dir: &std::path::Path,
) -> anyhow::Result<(Vec<PathBuf>, Vec<Case>, ExitCode)> {
    let files: Vec<PathBuf> = collect_images(&[dir.to_path_buf()])?
        .into_iter()
        .filter(|p| label_of(p).is_some())
        .collect();
    anyhow::ensure!(
        !files.is_empty(),
        "{}: no images under neg, 1+..4+ or 1p..4p sub-folders",
        dir.display()
    );
    let engine = Engine::load(settings)?;
    let results = run_with_progress(&engine, &files, &run_options(settings, None));
    let cases = results
        .iter()
        .filter_map(|r| {
            let c = r.outcome.as_ref().ok()?;
            Some(Case {
                facts: Facts::of_classification(c),
                truth: label_of(&r.path),
            })
        })
        .collect();
    let code = report_failures(&results)?;
    Ok((files, cases, code))
}

fn print_table(source: &str, new: (&Policy, &Tally), now: (&PolicySnapshot, &Tally)) {
    let (a, b) = (new.1.shares(), now.1.shares());
    let suspended = if now.0.suspended { ", SUSPENDED" } else { "" };
    println!(
        "{source}: {} decisions, {} with a known truth",
        new.1.decisions, new.1.known
    );
    println!(
        "  this policy:   {:?} version {} ({})",
        new.0.name(),
        new.0.version(),
        new.0.sha256
    );
    println!(
        "  active policy: {:?} version {} ({}{suspended})",
        now.0.policy.name(),
        now.0.policy.version(),
        now.0.policy.sha256
    );
    let rows = [
        ("released final", a.released_final, b.released_final),
        ("to review", a.to_review, b.to_review),
        ("errors released final", a.errors_final, b.errors_final),
        (
            "serious errors released final",
            a.serious_final,
            b.serious_final,
        ),
    ];
    println!("\n{:<31} {:<44} active", "", "this policy");
    for (name, x, y) in rows {
        println!("{name:<31} {:<44} {y}", x.to_string());
    }
    println!(
        "\nwithheld (QC failed): {} / {}; error shares are of the decisions with a known truth{}",
        new.1.withheld,
        now.1.withheld,
        if source.starts_with("stored") {
            " (the grade of their latest signed review)"
        } else {
            " (the folder's label)"
        }
    );
}
