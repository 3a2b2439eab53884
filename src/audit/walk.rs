//! The chain walk itself, apart from the database: each link checked against the one before it,
//! the checkpoints kept outside the database (`SEQ:HASH`) it must pass through, and the trusted
//! checkpoint a walk may start from.

use super::chain::Link;
use super::verify::ChainBreak;
use sha2::{Digest, Sha256};
use std::str::FromStr;

/// A link of the chain recorded outside the database: `SEQ:HASH` (hash in hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: [u8; 32],
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, hex::encode(self.hash))
    }
}

impl FromStr for Checkpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("checkpoint {s:?}: expected SEQ:HASH (64 hex digits)");
        let (seq, hash) = s.trim().split_once(':').ok_or_else(bad)?;
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        let bytes = hex::decode(hash).map_err(|_| bad())?;
        let hash: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        if seq < 0 {
            return Err(bad());
        }
        Ok(Checkpoint { seq, hash })
    }
}

/// What the walk is anchored to: checkpoints it must pass through, and optionally one to start
/// from (trusted, so only what came after it is checked).
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    pub expect: Vec<Checkpoint>,
    pub since: Option<Checkpoint>,
}

/// State of the walk: the last good link and what was counted. It begins at the genesis
/// (sequence 0 with 32 zero bytes, as the migration seeds the head) or at a trusted checkpoint.
pub(super) struct Walk {
    pub(super) start: Option<Checkpoint>,
    pub(super) start_met: bool,
    pub(super) expect: Vec<Checkpoint>,
    pub(super) met: u64,
    pub(super) seq: i64,
    pub(super) hash: [u8; 32],
    /// captures, decisions, reviews, signatures, auth_events.
    pub(super) count: [u64; 5],
    pub(super) first_break: Option<ChainBreak>,
}

impl Walk {
    pub(super) fn new(anchors: &Anchors) -> Walk {
        let mut expect = anchors.expect.clone();
        expect.retain(|c| Some(*c) != anchors.since);
        expect.sort_by_key(|c| std::cmp::Reverse(c.seq));
        Walk {
            start: anchors.since,
            start_met: false,
            expect,
            met: 0,
            seq: anchors.since.map_or(0, |s| s.seq),
            hash: anchors.since.map_or([0; 32], |s| s.hash),
            count: [0; 5],
            first_break: None,
        }
    }

    fn broken(&mut self, table: &str, id: &str, seq: i64, problem: String) -> bool {
        self.first_break = Some(ChainBreak {
            table: table.into(),
            id: id.into(),
            chain_seq: Some(seq),
            problem,
        });
        false
    }

    /// Checks one row against the previous link; false (and `first_break` set) when broken.
    pub(super) fn step(&mut self, row: &Link) -> bool {
        let computed = link_hash(&row.prev_hash, &row.canon);
        if row.row_hash != computed {
            return self.broken(
                row.table,
                &row.id,
                row.chain_seq,
                format!(
                    "content changed: stored row_hash {} but the row hashes to {}",
                    hex::encode(&row.row_hash),
                    hex::encode(computed)
                ),
            );
        }
        // The trusted starting point itself: it must still be there, unchanged.
        if let Some(start) = self.start.filter(|s| s.seq > 0 && s.seq == row.chain_seq) {
            if row.row_hash != start.hash {
                return self.broken(
                    "checkpoint",
                    &start.to_string(),
                    start.seq,
                    format!("the chain no longer passes through it: the row there is {} {} with hash {}",
                        row.table, row.id, hex::encode(&row.row_hash)),
                );
            }
            self.start_met = true;
            self.met += 1;
            return true;
        }
        if row.chain_seq != self.seq + 1 {
            let problem = format!(
                "chain_seq {} follows {}: row(s) {}..{} missing",
                row.chain_seq,
                self.seq,
                self.seq + 1,
                row.chain_seq - 1
            );
            return self.broken(row.table, &row.id, row.chain_seq, problem);
        }
        if row.prev_hash != self.hash {
            let problem = format!(
                "prev_hash {} does not link to the previous row's hash {}",
                hex::encode(&row.prev_hash),
                hex::encode(self.hash)
            );
            return self.broken(row.table, &row.id, row.chain_seq, problem);
        }
        while let Some(c) = self
            .expect
            .last()
            .copied()
            .filter(|c| c.seq <= row.chain_seq)
        {
            self.expect.pop();
            if c.seq < row.chain_seq {
                // Below the start (refused earlier) or 0: the genesis, always passed through.
                if c.seq == 0 && c.hash == [0; 32] {
                    self.met += 1;
                    continue;
                }
                return self.broken(
                    "checkpoint",
                    &c.to_string(),
                    c.seq,
                    "not a link of this chain".into(),
                );
            }
            if c.hash != computed {
                let problem = format!(
                    "the chain no longer passes through it: the row there is {} {} with hash {}",
                    row.table,
                    row.id,
                    hex::encode(computed)
                );
                return self.broken("checkpoint", &c.to_string(), c.seq, problem);
            }
            self.met += 1;
        }
        self.seq = row.chain_seq;
        self.hash = computed;
        let slot = match row.table {
            "captures" => 0,
            "decisions" => 1,
            "reviews" => 2,
            "signatures" => 3,
            _ => 4,
        };
        self.count[slot] += 1;
        true
    }

    /// Checkpoints beyond the last row (or a start the walk never met): the chain was cut.
    pub(super) fn check_unreached(&mut self) {
        let missing = self
            .expect
            .first()
            .copied()
            .or(self.start.filter(|s| s.seq > 0 && !self.start_met));
        if let Some(c) = missing {
            let problem = format!(
                "the chain ends at chain_seq {} before reaching it: rows were removed",
                self.seq
            );
            self.broken("checkpoint", &c.to_string(), c.seq, problem);
        }
    }

    /// The head must name the last row: a head ahead of it means rows were removed at the end.
    pub(super) fn check_head(&mut self, seq: i64, hash: &[u8]) {
        if seq != self.seq || hash != self.hash {
            let problem = format!(
                "head is at chain_seq {seq} ({}) but the last row is chain_seq {} ({}): \
                 rows after it were removed or the head was changed",
                hex::encode(hash),
                self.seq,
                hex::encode(self.hash)
            );
            self.broken("audit_chain_head", "singleton", seq, problem);
        }
    }
}

/// `sha256(prev_hash || canonical text)`, as the insert trigger computes it.
pub(super) fn link_hash(prev: &[u8], canonical: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, prev: [u8; 32], canon: &str, tamper: bool) -> Link {
        let mut hash = link_hash(&prev, canon);
        if tamper {
            hash[0] ^= 1;
        }
        Link {
            table: "decisions",
            id: seq.to_string(),
            chain_seq: seq,
            prev_hash: prev.to_vec(),
            row_hash: hash.to_vec(),
            canon: canon.into(),
        }
    }

    fn hash(l: &Link) -> [u8; 32] {
        l.row_hash.clone().try_into().unwrap()
    }

    #[test]
    fn walk_accepts_a_good_chain_and_names_the_first_bad_link() {
        let mut w = Walk::new(&Anchors::default());
        let r1 = row(1, [0; 32], "decisions:{\"id\": 1}", false);
        assert!(w.step(&r1));
        assert!(w.step(&row(2, hash(&r1), "decisions:{\"id\": 2}", false)));
        w.check_head(2, &w.hash.clone());
        assert!(w.first_break.is_none());
        assert!(!w.step(&row(3, w.hash, "decisions:{\"id\": 3}", true)));
        let b = w.first_break.unwrap();
        assert_eq!((b.id.as_str(), b.chain_seq), ("3", Some(3)));
        assert!(b.problem.starts_with("content changed"));
    }

    #[test]
    fn walk_names_gaps_and_a_head_ahead_of_the_rows() {
        let mut w = Walk::new(&Anchors::default());
        assert!(!w.step(&row(2, [0; 32], "x", false)));
        assert!(
            w.first_break
                .unwrap()
                .problem
                .contains("row(s) 1..1 missing")
        );
        let mut w = Walk::new(&Anchors::default());
        w.check_head(1, &[7; 32]);
        assert_eq!(w.first_break.unwrap().table, "audit_chain_head");
    }

    #[test]
    fn checkpoints_must_be_links_of_the_chain_and_a_start_skips_what_came_before() {
        let r1 = row(1, [0; 32], "a", false);
        let r2 = row(2, hash(&r1), "b", false);
        let r3 = row(3, hash(&r2), "c", false);
        let at = |l: &Link| Checkpoint {
            seq: l.chain_seq,
            hash: hash(l),
        };
        // Passes through the expected link.
        let mut w = Walk::new(&Anchors {
            expect: vec![at(&r2)],
            since: None,
        });
        assert!(w.step(&r1) && w.step(&r2) && w.step(&r3));
        w.check_unreached();
        assert!(w.first_break.is_none() && w.met == 1);
        // A rewritten chain (same length, other content) does not.
        let other = row(2, hash(&r1), "B", false);
        let mut w = Walk::new(&Anchors {
            expect: vec![at(&r2)],
            since: None,
        });
        assert!(w.step(&r1));
        assert!(!w.step(&other));
        assert_eq!(w.first_break.unwrap().table, "checkpoint");
        // A cut chain never reaches it.
        let mut w = Walk::new(&Anchors {
            expect: vec![at(&r3)],
            since: None,
        });
        assert!(w.step(&r1) && w.step(&r2));
        w.check_unreached();
        assert!(
            w.first_break
                .unwrap()
                .problem
                .contains("ends at chain_seq 2")
        );
        // From a start: the start row itself, then only what follows.
        let mut w = Walk::new(&Anchors {
            expect: vec![],
            since: Some(at(&r2)),
        });
        assert!(w.step(&r2) && w.step(&r3));
        w.check_unreached();
        assert!(w.first_break.is_none());
        assert_eq!((w.seq, w.count[1]), (3, 1));
        // A start whose row is gone is reported.
        let mut w = Walk::new(&Anchors {
            expect: vec![],
            since: Some(at(&r2)),
        });
        assert!(w.step(&r3));
        w.check_unreached();
        assert_eq!(w.first_break.unwrap().table, "checkpoint");
    }

    #[test]
    fn checkpoints_parse_and_print_as_seq_colon_hex() {
        let c: Checkpoint = format!("42:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!((c.seq, c.hash[0]), (42, 0xab));
        assert_eq!(c.to_string().parse::<Checkpoint>().unwrap(), c);
        assert!("42".parse::<Checkpoint>().is_err());
        assert!("-1:00".parse::<Checkpoint>().is_err());
        assert!(
            format!("1:{}", "ab".repeat(31))
                .parse::<Checkpoint>()
                .is_err()
        );
    }
}
