//! Anchoring the audit chain outside the database: `iari audit checkpoint` prints the head
//! (and can append it to a file or send it to syslog), `iari audit verify --expect`,
//! `--checkpoints` and `--since-checkpoint` check the chain against what was kept.

use crate::audit::{self, Anchors, Checkpoint};
use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct AnchorArgs {
    /// A checkpoint (SEQ:HASH) the chain must still pass through; repeatable.
    #[arg(long, value_name = "SEQ:HASH")]
    expect: Vec<Checkpoint>,
    /// A file of checkpoints, one per line as `iari audit checkpoint --append` writes them
    /// (SEQ:HASH first on the line); every one must still be a link of the chain.
    #[arg(long, value_name = "FILE")]
    checkpoints: Option<PathBuf>,
    /// Trust the chain up to this checkpoint and check only what came after it.
    #[arg(long, value_name = "SEQ:HASH")]
    since_checkpoint: Option<Checkpoint>,
}

impl AnchorArgs {
    pub fn anchors(&self) -> anyhow::Result<Anchors> {
        let mut expect = self.expect.clone();
        if let Some(file) = &self.checkpoints {
            expect.extend(read_checkpoints(file)?);
        }
        Ok(Anchors {
            expect,
            since: self.since_checkpoint,
        })
    }
}

/// Checkpoints from a file: the first field of every non-empty line not starting with `#`.
fn read_checkpoints(file: &Path) -> anyhow::Result<Vec<Checkpoint>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            l.split_whitespace()
                .next()
                .unwrap_or_default()
                .parse::<Checkpoint>()
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", file.display(), i + 1))
        })
        .collect()
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Also append the line `SEQ:HASH TIME` to this file (created if missing).
    #[arg(long, value_name = "FILE")]
    append: Option<PathBuf>,
    /// Also send it to the local syslog (/dev/log, facility authpriv), for a log host the
    /// database's owner cannot rewrite.
    #[arg(long)]
    syslog: bool,
}

pub async fn run(pool: &sqlx::PgPool, args: &CheckpointArgs) -> anyhow::Result<(String, ExitCode)> {
    let head = audit::head(pool).await?;
    let line = format!("{head} {}", chrono::Utc::now().to_rfc3339());
    if let Some(file) = &args.append {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .with_context(|| format!("opening {}", file.display()))?;
        writeln!(f, "{line}").with_context(|| format!("writing {}", file.display()))?;
        f.sync_all()?;
    }
    if args.syslog {
        syslog(&format!("audit checkpoint {head}")).context("sending to syslog (/dev/log)")?;
    }
    Ok((format!("{head}\n"), ExitCode::SUCCESS))
}

/// One RFC 3164 message to the local syslog socket: authpriv (10) · notice (5).
fn syslog(message: &str) -> std::io::Result<()> {
    let socket = std::os::unix::net::UnixDatagram::unbound()?;
    let text = format!("<85>iari[{}]: {message}", std::process::id());
    socket.send_to(text.as_bytes(), "/dev/log")?;
    Ok(())
}
