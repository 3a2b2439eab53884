//! The command line: parses arguments, loads the config, and hands each command to its stage.

mod audit;
mod calibrate;
mod checkpoint;
mod classify;
pub mod demo;
mod eval;
mod lis_sim;
mod models;
mod outbox;
mod plot;
mod policy;
pub mod prompt;
pub mod publish;
mod serve;
mod users;
pub mod worker;

use crate::config::Settings;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "iari",
    version,
    about = "Grades solid-phase Coombs test wells with a CNN ensemble"
)]
pub struct Cli {
    /// Config file layered over the built-in defaults (IARI__SECTION__KEY variables override both).
    #[arg(long, global = true, env = "IARI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply database migrations (creates the database when missing).
    Migrate,
    /// The service: consume capture events, classify, store, serve HTTP (stops on SIGTERM/SIGINT).
    Worker,
    /// Analyzer simulator: publish one capture event per image.
    Publish(Box<publish::PublishArgs>),
    /// Test LIS over MLLP: ACKs each HL7 message, with optional faults and a record file.
    LisSim(lis_sim::LisSimArgs),
    /// End-to-end demo on local services: migrate, run a worker, publish the samples, summarize.
    Demo(demo::DemoArgs),
    /// Work with the model ensemble.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Grade image files and folders with the ensemble (no broker or database needed).
    Classify(classify::ClassifyArgs),
    /// Measure the ensemble and each model on a labelled folder (neg, 1+..4+ or 1p..4p).
    Eval(eval::EvalArgs),
    /// Stored decisions: list, show, verify the tamper-evident chain, disagreement stats.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// HL7 messages the LIS has not accepted: list, show, resend, park.
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
    /// Sign a confirmation or correction of a decision (asks for user and password; sent to the LIS).
    Review(audit::ReviewArgs),
    /// Sign a retraction of a result the LIS holds (supervisor or director; asks for user and
    /// password; sends the withdrawal and puts the decision back on the worklist).
    Retract(audit::RetractArgs),
    /// The review workstation and the API (needs the database, not the broker).
    Serve(serve::ServeArgs),
    /// Accounts, roles and API tokens.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// The release policy: check, simulate, activate (signed), suspend / resume (signed), show.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// From a labelled folder, the least restrictive release policy whose upper 95 % bound of
    /// serious errors released final stays under a rate; writes it with its evidence.
    Calibrate(calibrate::CalibrateArgs),
    /// Re-run a decision's pinned models on its stored image; non-zero when the outcome differs.
    Replay(audit::ReplayArgs),
}

/// Runs the parsed command; errors are printed as one line on stderr.
pub fn run(cli: Cli) -> ExitCode {
    run_with(cli, prompt::Input::from_stdin())
}

/// Like [`run`], with the answers to the commands' questions (user names, passwords) from
/// `input`.
pub fn run_with(cli: Cli, mut input: prompt::Input) -> ExitCode {
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("iari: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(&settings.log);
    let result = match cli.command {
        Command::Migrate => block_on(migrate(&settings)),
        Command::Models(cmd) => models::run(&settings, cmd),
        Command::Worker => block_on(worker::run(&settings)),
        Command::Publish(args) => block_on(publish::run(&settings, *args)),
        Command::LisSim(args) => block_on(lis_sim::run(args)),
        Command::Demo(args) => block_on(demo::run(&settings, args)),
        Command::Classify(args) => classify::run(&settings, args),
        Command::Eval(args) => eval::run(&settings, args),
        Command::Audit(cmd) => block_on(audit::run(&settings, cmd)),
        Command::Outbox(cmd) => block_on(outbox::run(&settings, cmd)),
        Command::Review(args) => block_on(audit::review(&settings, args, &mut input)),
        Command::Retract(args) => block_on(audit::retract(&settings, args, &mut input)),
        Command::Serve(args) => block_on(serve::run(&settings, args)),
        Command::Users(cmd) => block_on(users::run(&settings, cmd, &mut input)),
        Command::Policy(cmd) => policy::run(&settings, cmd, &mut input),
        Command::Calibrate(args) => calibrate::run(&settings, args),
        Command::Replay(args) => block_on(audit::replay(&settings, args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("iari: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        // Many errors already print their source; repeating it would only add noise.
        if out.contains(&cause) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&cause);
    }
    out.replace('\n', " ")
}

fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    f: F,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

async fn migrate(settings: &Settings) -> anyhow::Result<ExitCode> {
    let applied = migrate_database(settings).await?;
    println!(
        "migrations applied: {applied} (database {})",
        settings.database.url.redacted()
    );
    Ok(ExitCode::SUCCESS)
}

/// Creates the database if needed and applies the migrations (as the schema's owner).
pub async fn migrate_database(settings: &Settings) -> anyhow::Result<usize> {
    use anyhow::Context;
    let db = &settings.database;
    crate::store::ensure_database(db)
        .await
        .with_context(|| format!("cannot prepare database {}", db.url.redacted()))?;
    let pool = crate::store::pool(db)?;
    let applied = crate::store::migrate(&pool)
        .await
        .with_context(|| format!("migrating database {}", db.url.redacted()))?;
    pool.close().await;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn one_line_names_each_cause_once() {
        let e = anyhow::Error::new(Outer(std::io::Error::other("disk\nfull"))).context("saving");
        assert_eq!(super::one_line(&e), "saving: outer: disk full");
    }
}
