//! Tamper evidence: recomputes the one hash chain over `decisions`, `reviews`, `signatures`
//! and `auth_events` (the sign-in log) in Rust and
//! checks it link by link, checks the chain head (a deleted tail leaves the head ahead of the
//! last row), and checks every stored image against its SHA-256.
//!
//! The canonical text of a row comes from the database's `audit_canonical` (the same function
//! the insert trigger hashes), rendered under the same settings the trigger pins (UTC,
//! `extra_float_digits = 1`), so a change made with the triggers disabled shows up here.

use super::AuditError;
use futures::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// The first thing found wrong, with the row it was found on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// `decisions`, `reviews`, `audit_chain_head` or `images`.
    pub table: String,
    /// The row id (for images: the stored SHA-256 in hex).
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
    pub decisions: u64,
    pub reviews: u64,
    pub signatures: u64,
    pub auth_events: u64,
    pub images: u64,
    /// Last verified link: record it elsewhere to also detect a rewrite of the whole chain.
    pub head_seq: i64,
    pub head_hash: String,
    pub first_break: Option<ChainBreak>,
}

#[derive(sqlx::FromRow)]
struct ChainRow {
    tbl: String,
    id: i64,
    chain_seq: i64,
    prev_hash: Vec<u8>,
    row_hash: Vec<u8>,
    canon: String,
}

const CHAIN: &str = "SELECT 'decisions' AS tbl, id, chain_seq, prev_hash, row_hash, \
        audit_canonical('decisions', to_jsonb(t)) AS canon FROM decisions t \
    UNION ALL SELECT 'reviews', id, chain_seq, prev_hash, row_hash, \
        audit_canonical('reviews', to_jsonb(t)) FROM reviews t \
    UNION ALL SELECT 'signatures', id, chain_seq, prev_hash, row_hash, \
        audit_canonical('signatures', to_jsonb(t)) FROM signatures t \
    UNION ALL SELECT 'auth_events', id, chain_seq, prev_hash, row_hash, \
        audit_canonical('auth_events', to_jsonb(t)) FROM auth_events t \
    ORDER BY chain_seq";

/// Walks the chain and the images in one snapshot; stops at the first break.
pub async fn verify(pool: &PgPool) -> Result<VerifyReport, AuditError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // Same rendering as the trigger: times in UTC, floats shortest-exact, bytea as hex.
    sqlx::query("SET LOCAL timezone = 'UTC'")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL extra_float_digits = 1")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL bytea_output = 'hex'")
        .execute(&mut *tx)
        .await?;
    let mut walk = Walk::default();
    {
        let mut rows = sqlx::query_as::<_, ChainRow>(CHAIN).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            if !walk.step(&row) {
                break;
            }
        }
    }
    if walk.first_break.is_none() {
        let head = sqlx::query!("SELECT seq, hash FROM audit_chain_head WHERE singleton")
            .fetch_one(&mut *tx)
            .await?;
        walk.check_head(head.seq, &head.hash);
    }
    let (images, bad_image) = check_images(&mut tx).await?;
    tx.commit().await?;
    Ok(VerifyReport {
        decisions: walk.decisions,
        reviews: walk.reviews,
        signatures: walk.signatures,
        auth_events: walk.auth_events,
        images,
        head_seq: walk.seq,
        head_hash: hex::encode(walk.hash),
        first_break: walk.first_break.or(bad_image),
    })
}

/// State of the walk: the last good link and what was counted. The default is the genesis,
/// sequence 0 with 32 zero bytes, as the migration seeds the head.
#[derive(Default)]
struct Walk {
    seq: i64,
    hash: [u8; 32],
    decisions: u64,
    reviews: u64,
    signatures: u64,
    auth_events: u64,
    first_break: Option<ChainBreak>,
}

impl Walk {
    /// Checks one row against the previous link; false (and `first_break` set) when broken.
    fn step(&mut self, row: &ChainRow) -> bool {
        let problem = if row.chain_seq != self.seq + 1 {
            Some(format!(
                "chain_seq {} follows {}: row(s) {}..{} missing",
                row.chain_seq,
                self.seq,
                self.seq + 1,
                row.chain_seq - 1
            ))
        } else if row.prev_hash != self.hash {
            Some(format!(
                "prev_hash {} does not link to the previous row's hash {}",
                hex::encode(&row.prev_hash),
                hex::encode(self.hash)
            ))
        } else {
            let computed = link_hash(&self.hash, &row.canon);
            (row.row_hash != computed).then(|| {
                format!(
                    "content changed: stored row_hash {} but the row hashes to {}",
                    hex::encode(&row.row_hash),
                    hex::encode(computed)
                )
            })
        };
        if let Some(problem) = problem {
            self.first_break = Some(ChainBreak {
                table: row.tbl.clone(),
                id: row.id.to_string(),
                chain_seq: Some(row.chain_seq),
                problem,
            });
            return false;
        }
        self.seq = row.chain_seq;
        self.hash.copy_from_slice(&row.row_hash);
        match row.tbl.as_str() {
            "reviews" => self.reviews += 1,
            "signatures" => self.signatures += 1,
            "auth_events" => self.auth_events += 1,
            _ => self.decisions += 1,
        }
        true
    }

    /// The head must name the last row: a head ahead of it means rows were removed at the end.
    fn check_head(&mut self, seq: i64, hash: &[u8]) {
        if seq != self.seq || hash != self.hash {
            self.first_break = Some(ChainBreak {
                table: "audit_chain_head".into(),
                id: "singleton".into(),
                chain_seq: Some(seq),
                problem: format!(
                    "head is at chain_seq {seq} ({}) but the last row is chain_seq {} ({}): \
                     rows after it were removed or the head was changed",
                    hex::encode(hash),
                    self.seq,
                    hex::encode(self.hash)
                ),
            });
        }
    }
}

/// `sha256(prev_hash || canonical text)`, as the insert trigger computes it.
pub fn link_hash(prev: &[u8], canonical: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical.as_bytes());
    h.finalize().into()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, prev: [u8; 32], canon: &str, tamper: bool) -> ChainRow {
        let mut hash = link_hash(&prev, canon);
        if tamper {
            hash[0] ^= 1;
        }
        ChainRow {
            tbl: "decisions".into(),
            id: seq,
            chain_seq: seq,
            prev_hash: prev.to_vec(),
            row_hash: hash.to_vec(),
            canon: canon.into(),
        }
    }

    #[test]
    fn walk_accepts_a_good_chain_and_names_the_first_bad_link() {
        let mut w = Walk::default();
        let r1 = row(1, [0; 32], "decisions:{\"id\": 1}", false);
        let h1: [u8; 32] = r1.row_hash.clone().try_into().unwrap();
        assert!(w.step(&r1));
        assert!(w.step(&row(2, h1, "decisions:{\"id\": 2}", false)));
        w.check_head(2, &w.hash.clone());
        assert!(w.first_break.is_none());
        assert!(!w.step(&row(3, w.hash, "decisions:{\"id\": 3}", true)));
        let b = w.first_break.unwrap();
        assert_eq!((b.id.as_str(), b.chain_seq), ("3", Some(3)));
        assert!(b.problem.starts_with("content changed"));
    }

    #[test]
    fn walk_names_gaps_and_a_head_ahead_of_the_rows() {
        let mut w = Walk::default();
        assert!(!w.step(&row(2, [0; 32], "x", false)));
        assert!(
            w.first_break
                .unwrap()
                .problem
                .contains("row(s) 1..1 missing")
        );
        let mut w = Walk::default();
        w.check_head(1, &[7; 32]);
        assert_eq!(w.first_break.unwrap().table, "audit_chain_head");
    }
}
