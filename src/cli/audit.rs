//! `iari audit …` and `iari review`: thin wrappers that open the pool, call `crate::audit`, and
//! print the result.

use super::prompt::Input;
use crate::audit::format::{self, Format};
use crate::audit::{self as audit, Filter, SignRequest};
use crate::config::Settings;
use crate::domain::{Grade, Meaning};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List stored decisions, oldest first; page with --limit and --after.
    List {
        #[command(flatten)]
        filter: Box<Filter>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// One decision with its full provenance, reviews, signatures and HL7 delivery history.
    Show {
        id: i64,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Check the tamper-evident chain over captures, decisions, reviews, signatures and the
    /// sign-in log, and the stored images.
    Verify {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[command(flatten)]
        anchors: super::checkpoint::AnchorArgs,
    },
    /// Print the chain head as SEQ:HASH, to keep outside the database (see docs/operations.md).
    Checkpoint(super::checkpoint::CheckpointArgs),
    /// Disagreement figures: counts by flag and model pair, review override rate.
    Stats {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

/// `iari review <ID> --grade G [--reason CODE] [--comment TEXT]`: a signed review. The user
/// name and password are asked for (terminal), or read as two lines from standard input.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The decision id.
    pub id: i64,
    /// The grade the reviewer reads: neg, 1+, 2+, 3+ or 4+.
    #[arg(long)]
    pub grade: String,
    /// confirmed or corrected; by default, confirmed when the grade is the reported one.
    #[arg(long)]
    pub meaning: Option<String>,
    /// A reason code from `workstation.reasons` (required for a correction).
    #[arg(long)]
    pub reason: Option<String>,
    /// Words sent with the result as a note.
    #[arg(long)]
    pub comment: Option<String>,
}

/// `iari retract <ID>`: the signer is asked for, like `iari review`.
#[derive(Debug, Args)]
pub struct RetractArgs {
    /// The decision id.
    pub id: i64,
    /// A reason code from `workstation.reasons` (required).
    #[arg(long)]
    pub reason: String,
    /// Words sent to the LIS with the withdrawal.
    #[arg(long)]
    pub comment: Option<String>,
}

pub async fn run(settings: &Settings, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let pool = crate::store::pool(&settings.database)?;
    let out = match cmd {
        AuditCommand::List { filter, format } => list(&pool, &filter, format).await,
        AuditCommand::Show { id, format } => show(&pool, id, format).await,
        AuditCommand::Verify { format, anchors } => match anchors.anchors() {
            Ok(a) => verify(&pool, format, &a).await,
            Err(e) => Err(e),
        },
        AuditCommand::Checkpoint(args) => super::checkpoint::run(&pool, &args).await,
        AuditCommand::Stats { format } => {
            let st = audit::stats(&pool).await?;
            Ok(match format {
                Format::Table => (format::stats_table(&st), ExitCode::SUCCESS),
                _ => (serde_json::to_string_pretty(&st)? + "\n", ExitCode::SUCCESS),
            })
        }
    };
    pool.close().await;
    let (text, code) = out?;
    print!("{text}");
    Ok(code)
}

async fn list(
    pool: &sqlx::PgPool,
    f: &Filter,
    format: Format,
) -> anyhow::Result<(String, ExitCode)> {
    let page = audit::list(pool, f).await?;
    let text = match format {
        Format::Table => {
            let more = page
                .next_after
                .map_or(String::new(), |a| format!("more: --after {a}\n"));
            let qc = page.plate_qc.as_ref().map_or(String::new(), |q| {
                format!(
                    "plate QC: {} ({})\n",
                    q.state,
                    q.detail.as_deref().unwrap_or("controls pending")
                )
            });
            qc + &format::list_table(&page.items) + &more
        }
        Format::Csv => format::list_csv(&page.items),
        Format::Json => serde_json::to_string_pretty(&page)? + "\n",
    };
    Ok((text, ExitCode::SUCCESS))
}

async fn show(pool: &sqlx::PgPool, id: i64, format: Format) -> anyhow::Result<(String, ExitCode)> {
    let p = audit::show(pool, id).await?;
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&p)? + "\n",
        _ => format::show_table(&p),
    };
    Ok((text, ExitCode::SUCCESS))
}

async fn verify(
    pool: &sqlx::PgPool,
    format: Format,
    anchors: &audit::Anchors,
) -> anyhow::Result<(String, ExitCode)> {
    let r = audit::verify_anchored(pool, anchors).await?;
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&r)? + "\n",
        _ if r.first_break.is_some() => format!(
            "chain good up to seq {} ({} decisions, {} reviews); stopped at the first broken link\n",
            r.head_seq, r.decisions, r.reviews
        ),
        _ => format!(
            "checked from seq {}: {} captures, {} decisions, {} reviews, {} signatures, \
             {} sign-in log events, {} images; {} checkpoint(s) passed; chain head seq {} hash {}\n",
            r.since_seq,
            r.captures,
            r.decisions,
            r.reviews,
            r.signatures,
            r.auth_events,
            r.images,
            r.checkpoints,
            r.head_seq,
            r.head_hash
        ),
    };
    match r.first_break {
        // The one-line error on stderr names the first broken row; the summary still prints.
        Some(b) => {
            print!("{text}");
            anyhow::bail!("audit chain broken at {b}")
        }
        None => Ok((text + "chain intact\n", ExitCode::SUCCESS)),
    }
}

/// The signer's user name, then their password, asked for `what` they sign (on the terminal, or
/// as two lines of standard input).
pub(super) fn ask_signer(input: &mut Input, what: &str) -> anyhow::Result<(String, String)> {
    let user = input.line("user")?;
    let password = input.secret(&format!("password for {user} ({what})"))?;
    Ok((user, password))
}

/// The account, when `password` is its password at this moment (a wrong one counts toward the
/// lock-out, as in the workstation).
pub(super) async fn signer(
    pool: &sqlx::PgPool,
    ws: &crate::config::WorkstationSettings,
    user: &str,
    password: &str,
) -> anyhow::Result<crate::auth::Principal> {
    use crate::auth::{Lockout, users};
    let lock = Lockout::from(ws);
    let v = users::authenticate(pool, lock, user, password, users::Purpose::Signature).await?;
    Ok(v.principal)
}

pub async fn review(
    settings: &Settings,
    args: ReviewArgs,
    input: &mut Input,
) -> anyhow::Result<ExitCode> {
    let grade: Grade = args.grade.parse()?;
    let meaning = args
        .meaning
        .as_deref()
        .map(|m| Meaning::parse(m).ok_or_else(|| anyhow::anyhow!("unknown meaning {m:?}")))
        .transpose()?;
    let (user, password) = ask_signer(input, &format!("signs decision {}", args.id))?;
    let pool = crate::store::pool(&settings.database)?;
    let ws = &settings.workstation;
    let result = async {
        let signer = signer(&pool, ws, &user, &password).await?;
        let req = SignRequest {
            grade,
            meaning,
            reason_code: args.reason,
            reason_text: args.comment,
        };
        anyhow::Ok(audit::sign_review(&pool, &signer, args.id, &req, &ws.reasons).await?)
    }
    .await;
    pool.close().await;
    let o = result.with_context(|| format!("review of decision {} refused", args.id))?;
    println!(
        "signature {} ({}) recorded for decision {}: {} (was {}{})",
        o.signature_id,
        o.meaning,
        o.decision_id,
        o.grade,
        o.previous_grade,
        if o.overridden {
            ", overrides the ensemble"
        } else {
            ""
        }
    );
    match (o.hl7_message_id, &o.result_status, &o.note) {
        (Some(m), Some(s), _) => println!("HL7 result {s} enqueued as outbox message {m}"),
        (_, _, Some(note)) => println!("{note}"),
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn retract(
    settings: &Settings,
    args: RetractArgs,
    input: &mut Input,
) -> anyhow::Result<ExitCode> {
    let what = format!("signs the retraction of decision {}", args.id);
    let (user, password) = ask_signer(input, &what)?;
    let pool = crate::store::pool(&settings.database)?;
    let ws = &settings.workstation;
    let result = async {
        let signer = signer(&pool, ws, &user, &password).await?;
        let req = audit::RetractRequest {
            reason_code: args.reason,
            reason_text: args.comment,
        };
        anyhow::Ok(audit::sign_retraction(&pool, &signer, args.id, &req, &ws.reasons).await?)
    }
    .await;
    pool.close().await;
    let o = result.with_context(|| format!("retraction of decision {} refused", args.id))?;
    println!(
        "signature {} (retracted) recorded for decision {}: the LIS's {} is withdrawn \
         (HL7 {} enqueued as outbox message {}); the decision is back on the worklist",
        o.signature_id, o.decision_id, o.withdrawn_grade, o.result_status, o.hl7_message_id
    );
    Ok(ExitCode::SUCCESS)
}

/// `iari replay <ID>`: exit 0 when the replay is identical, non-zero naming the differences.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The decision id.
    pub id: i64,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub async fn replay(settings: &Settings, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    use crate::audit::replay::{load_stored, rerun};
    let pool = crate::store::pool(&settings.database)?;
    let stored = load_stored(&pool, args.id).await;
    pool.close().await;
    let stored = stored?;
    let owned = settings.clone();
    // Model loading and inference are CPU-bound: off the async threads.
    let report = tokio::task::spawn_blocking(move || rerun(&owned, &stored)).await??;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        _ => print!("{}", format::replay_table(&report)),
    }
    if report.identical {
        return Ok(ExitCode::SUCCESS);
    }
    anyhow::bail!(
        "replay of decision {} differs: {}",
        args.id,
        report.differences.join("; ")
    )
}
