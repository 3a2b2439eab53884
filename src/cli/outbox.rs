//! `iari outbox list / show / resend / park`: HL7 messages the LIS has not accepted, operated
//! through `store::outbox::ops`. Resend and park name who asks (`--by`, recorded with the
//! operating-system account that ran the command); until accounts exist (the workstation) the
//! name is the operator's word, as `iari review --by` is.

use crate::audit::format::Format;
use crate::config::Settings;
use crate::domain::DeliveryState;
use crate::store::outbox::ops::{self, MessageDetail, MessageSummary, Request};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::fmt::Write;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Outbox messages, newest first (default: the parked ones, state failed).
    List {
        /// pending, acked or failed; `all` for every state.
        #[arg(long, default_value = "failed")]
        state: String,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// One message: its stored bytes, every attempt and ACK, and what operators did to it.
    Show {
        id: i64,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Send a parked message again: the same bytes and MSH-10, as a new attempt (supervisor).
    Resend(OperationArgs),
    /// Give up on a pending message: parked as failed until someone resends it.
    Park(OperationArgs),
}

#[derive(Debug, Args)]
pub struct OperationArgs {
    /// The outbox message id (`iari outbox list`).
    pub id: i64,
    /// Who asks (recorded with the operation and the attempt it leads to).
    #[arg(long)]
    pub by: String,
    /// Why (recorded).
    #[arg(long)]
    pub reason: Option<String>,
}

pub async fn run(settings: &Settings, cmd: OutboxCommand) -> anyhow::Result<ExitCode> {
    let pool = crate::store::pool(&settings.database)?;
    let result = dispatch(&pool, cmd).await;
    pool.close().await;
    print!("{}", result?);
    Ok(ExitCode::SUCCESS)
}

async fn dispatch(pool: &sqlx::PgPool, cmd: OutboxCommand) -> anyhow::Result<String> {
    Ok(match cmd {
        OutboxCommand::List {
            state,
            limit,
            format,
        } => {
            let state = match state.as_str() {
                "all" => None,
                s => Some(DeliveryState::parse(s).with_context(|| {
                    format!("--state {s:?}: one of pending, acked, failed, all")
                })?),
            };
            let rows = ops::list(pool, state, limit.clamp(1, 10_000)).await?;
            match format {
                Format::Table => list_table(&rows),
                _ => serde_json::to_string_pretty(&rows)? + "\n",
            }
        }
        OutboxCommand::Show { id, format } => {
            let d = ops::show(pool, id)
                .await?
                .with_context(|| format!("outbox message {id} does not exist"))?;
            match format {
                Format::Table => show_table(&d),
                _ => serde_json::to_string_pretty(&d)? + "\n",
            }
        }
        OutboxCommand::Resend(a) => {
            ops::resend(pool, a.id, &request(&a)).await?;
            format!(
                "outbox message {} queued to be sent again (asked by {})\n",
                a.id, a.by
            )
        }
        OutboxCommand::Park(a) => {
            ops::park(pool, a.id, &request(&a)).await?;
            format!("outbox message {} parked (asked by {})\n", a.id, a.by)
        }
    })
}

fn request(a: &OperationArgs) -> Request<'_> {
    Request {
        by: &a.by,
        os_user: OS_USER.as_str(),
        reason: a.reason.as_deref(),
    }
}

/// The account that runs the command, as the environment names it.
static OS_USER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
});

fn list_table(rows: &[MessageSummary]) -> String {
    let mut out = format!(
        "{:>8} {:>9} {:<20} {:<10} {:<6} {:<8} {:>8}  {}\n",
        "id", "decision", "control_id", "filler", "status", "state", "attempts", "last error"
    );
    for m in rows {
        let _ = writeln!(
            out,
            "{:>8} {:>9} {:<20} {:<10} {:<6} {:<8} {:>8}  {}",
            m.id,
            m.decision_id,
            m.control_id,
            m.filler_number,
            m.result_status,
            m.state,
            m.attempts,
            m.last_error.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(out, "{} message(s)", rows.len());
    out
}

fn show_table(d: &MessageDetail) -> String {
    let m = &d.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "message {} (decision {}), MSH-10 {}, filler {}, status {}, {} after {} attempt(s) ({} counted)",
        m.id,
        m.decision_id,
        m.control_id,
        m.filler_number,
        m.result_status,
        m.state,
        m.attempts,
        m.counted_attempts
    );
    if let Some(e) = &m.last_error {
        let _ = writeln!(out, "last error: {e}");
    }
    if let Some(code) = &d.ack_code {
        let _ = writeln!(
            out,
            "last ACK: {code} {}",
            d.ack_text.as_deref().unwrap_or("")
        );
    }
    for a in &d.attempts {
        let _ = writeln!(
            out,
            "attempt {} {} -> {} {}{}{}",
            a.attempt,
            a.started_at.to_rfc3339(),
            a.outcome,
            a.ack_code.as_deref().unwrap_or(""),
            a.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
            a.requested_by
                .as_deref()
                .map(|b| format!(" [resend asked by {b}]"))
                .unwrap_or_default()
        );
    }
    for o in &d.operations {
        let _ = writeln!(
            out,
            "{} {} by {} (os user {}) from {}{}",
            o.at.to_rfc3339(),
            o.action,
            o.requested_by,
            o.os_user,
            o.state_before,
            o.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    match &d.payload {
        // Segments on their own lines; the bytes themselves end each with CR.
        Some(p) => {
            out.push_str("payload:\n");
            for seg in p.split('\r').filter(|s| !s.is_empty()) {
                let _ = writeln!(out, "  {seg}");
            }
        }
        None => out.push_str("payload: not built yet\n"),
    }
    out
}
