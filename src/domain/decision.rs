//! What a classification produced: each sub-model's answer, the ensemble outcome and its flags.
//! Built by `classify`, stored by `store`, reported by `deliver`, shown by `audit`.

use super::{Grade, Sha256Digest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Why a decision needs a second look. A decision may carry several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Every dissenting vote is a neighbour of the winner.
    DisagreeAdjacent,
    /// Some dissent is two grades or more away from the winner.
    DisagreeNonadjacent,
    /// Some sub-models say neg, others a positive grade.
    SignConflict,
    /// Plurality was tied; broken by summed probability.
    Tie,
    /// A sub-model failed; the decision used the rest (at least the quorum).
    ModelFailed,
    /// The winners' mean probability is under the configured threshold.
    LowConfidence,
    /// The image's shift score is over the manifest's threshold: it looks unlike the training
    /// images, so agreement between the sub-models says little about it.
    OutOfDistribution,
    /// The capture was made after its reagent's expiry date (release.md): never final
    /// automatically.
    ReagentExpired,
    /// The plate's controls were not all decided by `qc.wait_s` after its first capture: the
    /// result went out preliminary without plate QC.
    QcMissing,
    /// A control well of the plate was outside its expected grades: the plate's results are
    /// withheld (and withdrawn where already sent).
    QcFailed,
}

impl Flag {
    pub const ALL: [Flag; 10] = [
        Flag::DisagreeAdjacent,
        Flag::DisagreeNonadjacent,
        Flag::SignConflict,
        Flag::Tie,
        Flag::ModelFailed,
        Flag::LowConfidence,
        Flag::OutOfDistribution,
        Flag::ReagentExpired,
        Flag::QcMissing,
        Flag::QcFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Flag::DisagreeAdjacent => "disagree_adjacent",
            Flag::DisagreeNonadjacent => "disagree_nonadjacent",
            Flag::SignConflict => "sign_conflict",
            Flag::Tie => "tie",
            Flag::ModelFailed => "model_failed",
            Flag::LowConfidence => "low_confidence",
            Flag::OutOfDistribution => "out_of_distribution",
            Flag::ReagentExpired => "reagent_expired",
            Flag::QcMissing => "qc_missing",
            Flag::QcFailed => "qc_failed",
        }
    }

    pub fn parse(s: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of one sub-model as pinned in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
    pub sha256: Sha256Digest,
}

/// One sub-model's answer for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ModelAnswer {
    /// Softmax probabilities in grade order, and the argmax.
    Voted {
        probabilities: [f32; Grade::COUNT],
        vote: Grade,
    },
    /// The model could not answer (its session failed); the text says why.
    Failed { error: String },
}

impl ModelAnswer {
    pub fn vote(&self) -> Option<Grade> {
        match self {
            ModelAnswer::Voted { vote, .. } => Some(*vote),
            ModelAnswer::Failed { .. } => None,
        }
    }
}

/// The ensemble's verdict for one image under the decision rules and review policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub grade: Grade,
    /// Fraction of all sub-models of the ensemble that voted for `grade` (HL7 OBX-9).
    pub agreement: f32,
    /// Mean probability the winning voters gave to `grade`.
    pub confidence: f32,
    pub flags: BTreeSet<Flag>,
    /// Goes out as preliminary (`P`) and waits for a person.
    pub needs_review: bool,
}

/// Which execution provider really ran the models, and why it is not the one asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionInfo {
    /// `CPUExecutionProvider` or `CUDAExecutionProvider`.
    pub provider: String,
    /// What was configured: `auto`, `cpu` or `cuda`.
    pub requested: String,
    /// Set when CUDA was wanted (or tried by `auto`) and the CPU ran instead.
    pub fallback_reason: Option<String>,
    pub onnxruntime_version: String,
}

/// How far one image lies from the training images (the manifest's `shift` reference).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftScore {
    /// The score's definition, e.g. `shift-1`.
    pub version: String,
    pub score: f64,
    /// The reference's threshold: over it, the image is out of distribution.
    pub threshold: f64,
}

impl ShiftScore {
    pub fn out_of_distribution(&self) -> bool {
        self.score > self.threshold
    }
}

/// A complete classification of one image: the answers, the outcome and how it was computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub image_sha256: Sha256Digest,
    /// In manifest order, one per sub-model.
    pub models: Vec<(ModelRef, ModelAnswer)>,
    pub outcome: Outcome,
    /// None when the manifest has no shift reference (versions before `shift-1`).
    #[serde(default)]
    pub shift: Option<ShiftScore>,
}
