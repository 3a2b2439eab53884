//! The policy in force, as the database records it: the latest `policy_activated` signature
//! names the policy (by its file's SHA-256, the file kept in `release_policies`), and the latest
//! `policy_suspended` / `policy_resumed` signature says whether it is suspended. With no
//! activation yet, the shipped default is in force. `follow` keeps a worker's `ActivePolicy` in
//! step with it, so a running worker picks up an activation within `FOLLOW_EVERY`.

use super::active::{ActivePolicy, PolicySnapshot};
use super::policy::{Policy, PolicyError};
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a worker reads the policy in force (release.md: a switch within 10 s).
pub const FOLLOW_EVERY: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ActiveError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The stored, activated file no longer parses under this version of IARI.
    #[error("the activated release policy: {0}")]
    Policy(#[from] PolicyError),
}

/// The policy in force now.
pub async fn active(pool: &PgPool) -> Result<PolicySnapshot, ActiveError> {
    active_in(pool).await
}

/// Like [`active`], inside a transaction (the signing of a policy change).
pub async fn active_in<'e, E: sqlx::PgExecutor<'e>>(e: E) -> Result<PolicySnapshot, ActiveError> {
    let row = sqlx::query!(
        r#"SELECT
             (SELECT p.body FROM signatures s JOIN release_policies p ON p.sha256 = s.decision_row_hash
               WHERE s.decision_id IS NULL AND s.meaning = 'policy_activated'
               ORDER BY s.id DESC LIMIT 1) AS body,
             COALESCE((SELECT s.meaning = 'policy_suspended' FROM signatures s
               WHERE s.decision_id IS NULL AND s.meaning IN ('policy_suspended', 'policy_resumed')
               ORDER BY s.id DESC LIMIT 1), false) AS "suspended!""#
    )
    .fetch_one(e)
    .await?;
    let policy = match row.body {
        Some(body) => Policy::parse(&body)?,
        None => Policy::shipped_default(),
    };
    Ok(PolicySnapshot::new(policy, row.suspended))
}

/// Reads the policy in force every `FOLLOW_EVERY` into `handle` until `cancel`. A failed read
/// keeps the snapshot in force (logged): a database outage stops the batches' writes anyway.
pub async fn follow(pool: PgPool, handle: ActivePolicy, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
        match active(&pool).await {
            Ok(s) if *handle.snapshot() != s => {
                tracing::info!(policy = %s.policy.name(), version = %s.policy.version(),
                    sha256 = %s.policy.sha256, suspended = s.suspended, "release policy in force");
                handle.set(s);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not read the release policy in force; keeping the current one")
            }
        }
    }
}
