//! The policy file: TOML, unknown keys refused. A policy is a version, a name, an optional
//! approval note and ordered `[[rule]]`s; each rule is a set of conditions (all must hold) and
//! one outcome. The first rule that matches decides; the last rule has no condition, so every
//! decision meets some rule. The policy's identity is the SHA-256 of the file's bytes, so what
//! the director signed is exactly what runs.

use super::facts::{PlateRole, ReagentState};
use crate::domain::{Flag, Grade, Sha256Digest};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What a rule sends its decisions to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOutcome {
    /// Released to the LIS as a final result, with no review.
    Final,
    /// Preliminary, on the worklist for a person.
    #[default]
    Review,
}

/// `flags = "none"`: the decision carries no flag at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoFlags {
    None,
}

/// One rule: every condition given must hold; a condition left out holds for every decision.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Shown by `check` and `simulate`; the rule's position names it when absent.
    pub name: Option<String>,
    /// The ensemble's grade is one of these.
    pub grade: Option<BTreeSet<Grade>>,
    /// `"none"`: the decision carries no flag.
    pub flags: Option<NoFlags>,
    /// The decision carries at least one of these flags.
    pub flags_any: Option<BTreeSet<Flag>>,
    /// The decision carries none of these flags.
    pub flags_none: Option<BTreeSet<Flag>>,
    /// Share of all sub-models that voted for the grade, at least / at most.
    pub agreement_min: Option<f32>,
    pub agreement_max: Option<f32>,
    /// The winners' mean probability for the grade, at least.
    pub confidence_min: Option<f32>,
    /// `true`: every sub-model answered and all voted the same grade; `false`: not so.
    pub votes_all_equal: Option<bool>,
    /// At least this many sub-models voted for the grade.
    pub winner_votes_min: Option<u32>,
    /// Named sub-models answered and voted one of the given grades, e.g.
    /// `model_vote = { "resnet-cbam" = ["neg"] }`.
    pub model_vote: Option<BTreeMap<String, BTreeSet<Grade>>>,
    /// The well's role on its plate is one of these.
    pub role: Option<BTreeSet<PlateRole>>,
    /// The reagent's state is one of these.
    pub reagent: Option<BTreeSet<ReagentState>>,
    pub outcome: RuleOutcome,
}

impl Rule {
    /// No condition at all: the rule matches every decision.
    pub fn is_catch_all(&self) -> bool {
        Rule {
            name: self.name.clone(),
            outcome: self.outcome,
            ..Rule::default()
        } == *self
    }

    /// `#3 "name"` or `#3`, counting from 1 as a reader of the file does.
    pub fn label(&self, index: usize) -> String {
        match &self.name {
            Some(n) => format!("rule #{} {n:?}", index + 1),
            None => format!("rule #{}", index + 1),
        }
    }
}

/// The file as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The lab's version of its policy, e.g. `"2026-12-01.1"`; recorded with every decision.
    pub version: String,
    pub name: String,
    /// Who approved it and on what evidence, in words; shown, never interpreted.
    pub approved_note: Option<String>,
    #[serde(rename = "rule", default)]
    pub rules: Vec<Rule>,
}

/// A parsed, checked policy and the hash of the bytes it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub file: PolicyFile,
    pub sha256: Sha256Digest,
    /// The file's bytes, as hashed, stored and signed.
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not UTF-8 text")]
    NotText,
    #[error("{0}")]
    Toml(String),
    #[error("{0}")]
    Invalid(String),
}

/// The shipped default: today's fixed rule (unanimous and unflagged: final; else review).
pub const DEFAULT_POLICY: &[u8] = include_bytes!("../../config/policy/default.toml");

impl Policy {
    /// The shipped default policy; it is tested to parse.
    pub fn shipped_default() -> Policy {
        match Policy::parse(DEFAULT_POLICY) {
            Ok(p) => p,
            // The file is compiled in and tested (`default_policy_parses`): unreachable.
            Err(e) => panic!("config/policy/default.toml: {e}"),
        }
    }

    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let bytes = std::fs::read(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Policy::parse(&bytes)
    }

    /// Parses and validates the bytes; the hash is of the bytes as given.
    pub fn parse(bytes: &[u8]) -> Result<Policy, PolicyError> {
        let text = std::str::from_utf8(bytes).map_err(|_| PolicyError::NotText)?;
        let file: PolicyFile = toml::from_str(text)
            .map_err(|e| PolicyError::Toml(e.to_string().trim_end().replace('\n', " ")))?;
        validate(&file)?;
        Ok(Policy {
            file,
            sha256: Sha256Digest::of(bytes),
            bytes: bytes.to_vec(),
        })
    }

    pub fn version(&self) -> &str {
        &self.file.version
    }

    pub fn name(&self) -> &str {
        &self.file.name
    }

    pub fn rules(&self) -> &[Rule] {
        &self.file.rules
    }
}

fn validate(f: &PolicyFile) -> Result<(), PolicyError> {
    let bad = |m: String| Err(PolicyError::Invalid(m));
    if f.version.trim().is_empty() || f.version.len() > 64 {
        return bad("version: 1 to 64 characters".into());
    }
    if f.name.trim().is_empty() || f.name.len() > 200 {
        return bad("name: 1 to 200 characters".into());
    }
    let Some(last) = f.rules.last() else {
        return bad("no [[rule]]: a policy needs at least its catch-all rule".into());
    };
    if !last.is_catch_all() {
        return bad(format!(
            "{} is the last rule and has conditions: the last rule must match every decision \
             (no condition, only an outcome)",
            last.label(f.rules.len() - 1)
        ));
    }
    for (i, r) in f.rules.iter().enumerate() {
        let share = |v: Option<f32>, key: &str| match v {
            Some(x) if !(0.0..=1.0).contains(&x) => Err(PolicyError::Invalid(format!(
                "{}: {key} = {x} is outside 0..1",
                r.label(i)
            ))),
            _ => Ok(()),
        };
        share(r.agreement_min, "agreement_min")?;
        share(r.agreement_max, "agreement_max")?;
        share(r.confidence_min, "confidence_min")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Policy, PolicyError> {
        Policy::parse(s.as_bytes())
    }

    #[test]
    fn default_policy_parses() {
        let p = Policy::shipped_default();
        assert_eq!(p.rules().len(), 2);
        assert_eq!(p.rules()[0].outcome, RuleOutcome::Final);
        assert!(p.rules()[1].is_catch_all());
        assert_eq!(p.sha256, Sha256Digest::of(DEFAULT_POLICY));
    }

    #[test]
    fn every_condition_parses() {
        let p = parse(
            r#"version = "7"
name = "all keys"
approved_note = "test"
[[rule]]
name = "strong negatives"
grade = ["neg", "1+"]
flags_any = ["disagree_adjacent"]
flags_none = ["low_confidence", "tie"]
agreement_min = 0.8
agreement_max = 1.0
confidence_min = 0.9
votes_all_equal = false
winner_votes_min = 4
model_vote = { "resnet-cbam" = ["1+", "2+"], "vgg-cbam" = ["neg"] }
role = ["patient"]
reagent = ["in_date", "none"]
outcome = "final"
[[rule]]
flags = "none"
outcome = "final"
[[rule]]
outcome = "review"
"#,
        )
        .unwrap();
        let r = &p.rules()[0];
        assert_eq!(r.grade.as_ref().unwrap().len(), 2);
        assert_eq!(r.winner_votes_min, Some(4));
        assert_eq!(r.model_vote.as_ref().unwrap()["vgg-cbam"].len(), 1);
        assert_eq!(p.rules()[1].flags, Some(NoFlags::None));
        assert!(!r.is_catch_all() && !p.rules()[1].is_catch_all());
    }

    #[test]
    fn unknown_fields_and_values_are_refused() {
        let e =
            parse("version = \"1\"\nname = \"x\"\ncolour = 1\n[[rule]]\noutcome = \"review\"\n");
        assert!(e.unwrap_err().to_string().contains("colour"));
        let e = parse(
            "version = \"1\"\nname = \"x\"\n[[rule]]\nagreemnt_min = 1.0\noutcome = \"final\"\n[[rule]]\noutcome = \"review\"\n",
        );
        assert!(e.unwrap_err().to_string().contains("agreemnt_min"));
        let e = parse(
            "version = \"1\"\nname = \"x\"\n[[rule]]\nflags_any = [\"wobbly\"]\noutcome = \"final\"\n[[rule]]\noutcome = \"review\"\n",
        );
        assert!(e.unwrap_err().to_string().contains("wobbly"));
        let e = parse("version = \"1\"\nname = \"x\"\n[[rule]]\noutcome = \"maybe\"\n");
        assert!(e.unwrap_err().to_string().contains("maybe"));
        let e = parse(
            "version = \"1\"\nname = \"x\"\n[[rule]]\nflags = \"some\"\noutcome = \"final\"\n[[rule]]\noutcome = \"review\"\n",
        );
        assert!(e.is_err());
    }

    #[test]
    fn a_policy_without_a_catch_all_last_rule_is_refused() {
        let e = parse(
            "version = \"1\"\nname = \"x\"\n[[rule]]\nflags = \"none\"\noutcome = \"final\"\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("last rule must match every decision"),
            "{e}"
        );
        let e = parse("version = \"1\"\nname = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("catch-all"), "{e}");
        let e = parse("version = \"1\"\nname = \"x\"\n[[rule]]\noutcome = \"review\"\n[[rule]]\nagreement_min = 0.0\noutcome = \"final\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("rule #2"), "{e}");
    }

    #[test]
    fn shares_outside_zero_one_are_refused() {
        let e = parse("version = \"1\"\nname = \"x\"\n[[rule]]\nconfidence_min = 1.5\noutcome = \"final\"\n[[rule]]\noutcome = \"review\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("confidence_min = 1.5"), "{e}");
    }

    #[test]
    fn the_hash_is_of_the_bytes() {
        let a = "version = \"1\"\nname = \"x\"\n[[rule]]\noutcome = \"review\"\n";
        let b = format!("# a comment changes the bytes\n{a}");
        let (pa, pb) = (parse(a).unwrap(), parse(&b).unwrap());
        assert_eq!(pa.file, pb.file);
        assert_ne!(pa.sha256, pb.sha256);
        assert_eq!(pa.sha256, Sha256Digest::of(a.as_bytes()));
    }
}
