//! Tamper evidence: recomputes the one hash chain over `captures`, `decisions`, `reviews`,
//! `signatures` and `auth_events` (the sign-in log) in Rust and checks it link by link, checks
//! the chain head (a deleted tail leaves the head ahead of the last row), checks the chain still
//! passes through checkpoints recorded outside the database, and checks every stored image
//! against its SHA-256.
//!
//! Each row's canonical text is built here from its raw columns (`canonical`, `chain`), so a
//! database owner who redefines `audit_canonical` or disables the triggers cannot hide a change.

use super::AuditError;
use super::chain;
use super::walk::Walk;
pub use super::walk::{Anchors, Checkpoint};
use serde::Serialize;
use sqlx::{Connection, PgPool};

/// The first thing found wrong, with the row it was found on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// `captures`, `decisions`, `reviews`, `signatures`, `auth_events`, `audit_chain_head`,
    /// `checkpoint` or `images`.
    pub table: String,
    /// The row id (captures: the capture id; images: the stored SHA-256 in hex).
    pub id: String,
    pub chain_seq: Option<i64>,
    pub problem: String,
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} id {}", self.table, self.id)?;
        if let Some(seq) = self.chain_seq {
            write!(f, " (chain_seq {seq})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// What was checked; `first_break` is `None` when everything holds.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Where the walk started: 0 (the genesis) or a trusted checkpoint's sequence number.
    pub since_seq: i64,
    pub captures: u64,
    pub decisions: u64,
    pub reviews: u64,
    pub signatures: u64,
    pub auth_events: u64,
    pub images: u64,
    /// Checkpoints the chain was found to pass through.
    pub checkpoints: u64,
    /// Last verified link: record it elsewhere (`iari audit checkpoint`) to also detect a
    /// rewrite of the whole chain.
    pub head_seq: i64,
    pub head_hash: String,
    pub first_break: Option<ChainBreak>,
}

/// The whole chain from its genesis, with no outside checkpoint.
pub async fn verify(pool: &PgPool) -> Result<VerifyReport, AuditError> {
    verify_anchored(pool, &Anchors::default()).await
}

/// Walks the chain (from `anchors.since`, or the genesis) and the images in one snapshot;
/// stops at the first break.
pub async fn verify_anchored(pool: &PgPool, anchors: &Anchors) -> Result<VerifyReport, AuditError> {
    if let (Some(since), Some(before)) = (
        anchors.since,
        anchors
            .expect
            .iter()
            .find(|c| anchors.since.is_some_and(|s| c.seq < s.seq)),
    ) {
        return Err(AuditError::Invalid(format!(
            "checkpoint {before} lies before the start {since}: verify from the genesis to check it"
        )));
    }
    let mut lead = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *lead)
        .await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut *lead)
        .await?;
    // One connection per chained table, on the lead's snapshot: the tables stream in parallel
    // and are merged in chain order here.
    let mut conns = chain::open(&pool.connect_options(), &snapshot).await?;
    let mut walk = Walk::new(anchors);
    chain::merge(
        chain::streams(&mut conns, walk.start.map_or(1, |s| s.seq)),
        |link| walk.step(&link),
    )
    .await?;
    for c in conns {
        c.close().await?;
    }
    if walk.first_break.is_none() {
        walk.check_unreached();
    }
    if walk.first_break.is_none() {
        let (seq, hash) = head_row(&mut *lead).await?;
        walk.check_head(seq, &hash);
    }
    let (images, bad_image) = check_images(&mut lead).await?;
    lead.commit().await?;
    Ok(VerifyReport {
        since_seq: walk.start.map_or(0, |s| s.seq),
        captures: walk.count[0],
        decisions: walk.count[1],
        reviews: walk.count[2],
        signatures: walk.count[3],
        auth_events: walk.count[4],
        images,
        checkpoints: walk.met,
        head_seq: walk.seq,
        head_hash: hex::encode(walk.hash),
        first_break: walk.first_break.or(bad_image),
    })
}

/// The current chain head as the database records it (not verified: `verify` does that).
pub async fn head(pool: &PgPool) -> Result<Checkpoint, AuditError> {
    let (seq, hash) = head_row(pool).await?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| AuditError::Invalid("chain head hash is not 32 bytes".into()))?;
    Ok(Checkpoint { seq, hash })
}

/// The head row: (sequence number, hash).
async fn head_row(db: impl sqlx::PgExecutor<'_>) -> Result<(i64, Vec<u8>), sqlx::Error> {
    let head = sqlx::query!("SELECT seq, hash FROM audit_chain_head WHERE singleton")
        .fetch_one(db)
        .await?;
    Ok((head.seq, head.hash))
}

/// Counts images and finds the first whose bytes no longer hash to their key.
async fn check_images(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
) -> Result<(u64, Option<ChainBreak>), AuditError> {
    let r = sqlx::query!(
        r#"SELECT count(*) AS "count!", (SELECT encode(sha256, 'hex') FROM images
             WHERE sha256 <> sha256(bytes) ORDER BY stored_at, sha256 LIMIT 1) AS bad
           FROM images"#
    )
    .fetch_one(&mut **tx)
    .await?;
    let (count, bad) = (r.count, r.bad);
    let broken = bad.map(|id| ChainBreak {
        table: "images".into(),
        id,
        chain_seq: None,
        problem: "stored bytes do not hash to the image's sha256".into(),
    });
    Ok((u64::try_from(count).unwrap_or(0), broken))
}
