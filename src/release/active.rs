//! The policy a process applies now. A worker holds one `ActivePolicy`; each batch takes one
//! `PolicySnapshot` from it and releases every decision of the batch under that snapshot, so a
//! switch never splits a batch. Every decision records the snapshot's stamp (version, name,
//! SHA-256, suspended) in its `runtime`, which the hash chain covers.

use super::decide::{Verdict, decide};
use super::facts::Facts;
use super::policy::Policy;
use crate::domain::Classification;
use crate::store::decisions::Provenance;
use serde_json::{Value, json};
use std::sync::{Arc, RwLock};

/// One policy, and whether it is suspended (every result needs review), as of one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySnapshot {
    pub policy: Policy,
    pub suspended: bool,
}

impl PolicySnapshot {
    pub fn new(policy: Policy, suspended: bool) -> PolicySnapshot {
        PolicySnapshot { policy, suspended }
    }

    pub fn shipped_default() -> PolicySnapshot {
        PolicySnapshot::new(Policy::shipped_default(), false)
    }

    /// `{version, name, sha256, suspended}`: what each decision records of its policy.
    pub fn stamp(&self) -> Value {
        json!({
            "version": self.policy.version(),
            "name": self.policy.name(),
            "sha256": self.policy.sha256.to_string(),
            "suspended": self.suspended,
        })
    }

    /// The batch's provenance with this policy's stamp under `runtime.policy`.
    pub fn provenance(&self, base: &Provenance) -> Provenance {
        let mut p = base.clone();
        if let Value::Object(m) = &mut p.runtime {
            m.insert("policy".into(), self.stamp());
        } else {
            p.runtime = json!({ "runtime": p.runtime, "policy": self.stamp() });
        }
        p
    }

    /// Releases `c` (captured as `event`): sets `needs_review` from this policy.
    pub fn release(&self, c: &mut Classification, event: &Value) -> Verdict {
        let facts = Facts::of_classification(c).with_event(event);
        let v = decide(&self.policy, self.suspended, &facts);
        c.outcome.needs_review = v.release.needs_review();
        v
    }
}

/// The current snapshot, shared by a process's tasks; cheap to clone.
#[derive(Debug, Clone)]
pub struct ActivePolicy {
    current: Arc<RwLock<Arc<PolicySnapshot>>>,
}

impl Default for ActivePolicy {
    /// The shipped default until an activated policy is read.
    fn default() -> Self {
        ActivePolicy::new(PolicySnapshot::shipped_default())
    }
}

impl ActivePolicy {
    pub fn new(s: PolicySnapshot) -> ActivePolicy {
        ActivePolicy {
            current: Arc::new(RwLock::new(Arc::new(s))),
        }
    }

    /// The snapshot to release one batch under.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the snapshot; batches already holding the old one finish under it.
    pub fn set(&self, s: PolicySnapshot) {
        let s = Arc::new(s);
        match self.current.write() {
            Ok(mut g) => *g = s,
            Err(poisoned) => *poisoned.into_inner() = s,
        }
    }
}
