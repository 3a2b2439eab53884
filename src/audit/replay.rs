//! `iari replay <ID>`: re-runs a decision's pinned models (by name and SHA-256 from the stored
//! `decisions.models`) on its stored image bytes, and reports whether the outcome is identical
//! or what differs: grade, flags, each model's vote, and the largest probability difference.
//!
//! The decision rules come from the current config, so a changed threshold shows up here as a
//! flag difference, with unchanged votes. The shift score is pinned like the models: a decision
//! scored by a reference (named by its digest in `runtime.shift`) replays only with that same
//! reference, and one made before the score existed replays without it.

use super::AuditError;
use crate::classify::{Engine, EngineError, ImageLimits, ImageTensor, decode, versions};
use crate::config::Settings;
use crate::domain::{Classification, ExecutionInfo, ModelAnswer, ModelRef, Sha256Digest};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::str::FromStr;

/// One sub-model as the decision stored it.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredModel {
    pub name: String,
    pub version: String,
    pub sha256: Sha256Digest,
    #[serde(default)]
    pub probabilities: Option<Vec<f32>>,
    #[serde(default)]
    pub vote: Option<String>,
}

/// The shift score as the decision stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredShift {
    pub version: String,
    pub score: f64,
    /// The reference's digest from `runtime.shift`, when the writer recorded it.
    pub reference: Option<Sha256Digest>,
}

/// What the decision recorded, as replay needs it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: i64,
    pub grade: String,
    pub flags: Vec<String>,
    pub image_sha256: Sha256Digest,
    pub image: Vec<u8>,
    pub models: Vec<StoredModel>,
    /// None for decisions made before the score existed.
    pub shift: Option<StoredShift>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelComparison {
    pub name: String,
    pub version: String,
    pub stored_vote: Option<String>,
    pub replayed_vote: Option<String>,
    /// Largest |stored − replayed| over the five probabilities; none when either side failed.
    pub max_abs_probability_difference: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    pub decision_id: i64,
    pub identical: bool,
    pub stored_grade: String,
    pub replayed_grade: String,
    pub stored_flags: Vec<String>,
    pub replayed_flags: Vec<String>,
    pub models: Vec<ModelComparison>,
    pub max_abs_probability_difference: f32,
    pub stored_shift_score: Option<f64>,
    pub replayed_shift_score: Option<f64>,
    /// One line per difference, empty when identical.
    pub differences: Vec<String>,
    pub execution: ExecutionInfo,
    /// The ensemble version whose files replayed it: the current one, or the earlier version
    /// the decision is pinned to (kept under the manifest's `previous`).
    pub ensemble_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("decision {0}: stored models are unreadable: {1}")]
    StoredModels(i64, String),
    #[error(
        "decision {0}: stored image bytes do not hash to its image_sha256 (run `iari audit verify`)"
    )]
    ImageChanged(i64),
    #[error("cannot replay: {0}")]
    Engine(#[from] EngineError),
    #[error("cannot replay: stored image: {0}")]
    Image(String),
    #[error("cannot replay: the decision's shift score {0} is not the current manifest's")]
    ShiftUnavailable(String),
}

struct StoredRow {
    grade: String,
    flags: Vec<String>,
    image_sha256: Vec<u8>,
    bytes: Vec<u8>,
    models: serde_json::Value,
    shift_score: Option<f64>,
    shift_version: Option<String>,
    shift_reference: Option<String>,
}

/// Reads the decision's pinned models, shift reference and image bytes.
pub async fn load_stored(pool: &PgPool, id: i64) -> Result<Stored, ReplayError> {
    let row = sqlx::query_as!(
        StoredRow,
        r#"SELECT d.grade, d.flags, d.image_sha256, i.bytes, d.models, d.shift_score,
             d.shift_version, d.runtime #>> '{shift,reference_sha256}' AS shift_reference
           FROM decisions d JOIN images i ON i.sha256 = d.image_sha256 WHERE d.id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await
    .map_err(AuditError::from)?;
    let row = row.ok_or(AuditError::UnknownDecision(id))?;
    let (grade, flags, sha, image, models) = (
        row.grade,
        row.flags,
        row.image_sha256,
        row.bytes,
        row.models,
    );
    let shift = match (row.shift_score, row.shift_version) {
        (Some(score), Some(version)) => Some(StoredShift {
            version,
            score,
            reference: row
                .shift_reference
                .map(|r| Sha256Digest::from_str(&r))
                .transpose()
                .map_err(|e| ReplayError::StoredModels(id, format!("runtime.shift: {e}")))?,
        }),
        _ => None,
    };
    let models: Vec<StoredModel> =
        serde_json::from_value(models).map_err(|e| ReplayError::StoredModels(id, e.to_string()))?;
    let image_sha256 = Sha256Digest::from_slice(&sha)
        .ok_or_else(|| ReplayError::StoredModels(id, "image_sha256 is not 32 bytes".into()))?;
    if Sha256Digest::of(&image) != image_sha256 {
        return Err(ReplayError::ImageChanged(id));
    }
    Ok(Stored {
        id,
        grade,
        flags,
        image_sha256,
        image,
        models,
        shift,
    })
}

/// Loads the pinned models from the kept ensemble version that holds them (refusing when none
/// does) and classifies the image. Blocking: call it off the async threads.
pub fn rerun(settings: &Settings, stored: &Stored) -> Result<ReplayReport, ReplayError> {
    let pinned: Vec<ModelRef> = stored
        .models
        .iter()
        .map(|m| ModelRef {
            name: m.name.clone(),
            version: m.version.clone(),
            sha256: m.sha256,
        })
        .collect();
    let reference = stored.shift.as_ref().and_then(|s| s.reference);
    let mut settings = settings.clone();
    if let Some(version) = versions::holding(&settings.models.manifest, &pinned, reference)
        .map_err(EngineError::from)?
    {
        settings.models.manifest = version;
    }
    let settings = &settings;
    let engine = Engine::load_pinned(settings, &pinned)?;
    engine.check_pinned(&pinned)?;
    let engine = match &stored.shift {
        None => engine.without_shift(),
        Some(s) => {
            match s.reference {
                Some(r) => engine.check_pinned_shift(&s.version, r)?,
                // No digest recorded: the version must at least be the one computed now.
                None if engine.info().shift.as_ref().map(|i| i.version.as_str())
                    == Some(s.version.as_str()) => {}
                None => return Err(ReplayError::ShiftUnavailable(s.version.clone())),
            }
            engine
        }
    };
    let decoded = decode(&stored.image, &ImageLimits::from(&settings.images))
        .map_err(|e| ReplayError::Image(e.to_string()))?;
    let data = engine.preprocessor().run(&decoded.rgb);
    let tensor = ImageTensor {
        sha256: stored.image_sha256,
        data,
    };
    let classification = engine
        .classify(std::slice::from_ref(&tensor))?
        .pop()
        .ok_or_else(|| ReplayError::Image("the engine returned no result".into()))?;
    Ok(compare(
        stored,
        &classification,
        engine.info().execution.clone(),
        engine.info().ensemble.version.clone(),
    ))
}

/// The stored decision against the replayed classification.
pub fn compare(
    stored: &Stored,
    c: &Classification,
    execution: ExecutionInfo,
    ensemble_version: String,
) -> ReplayReport {
    let replayed_flags: Vec<String> = c
        .outcome
        .flags
        .iter()
        .map(|f| f.as_str().to_string())
        .collect();
    let replayed_grade = c.outcome.grade.label().to_string();
    let mut differences = Vec::new();
    if replayed_grade != stored.grade {
        differences.push(format!(
            "grade: stored {} replayed {replayed_grade}",
            stored.grade
        ));
    }
    let mut stored_flags = stored.flags.clone();
    stored_flags.sort();
    let mut sorted_replayed = replayed_flags.clone();
    sorted_replayed.sort();
    if stored_flags != sorted_replayed {
        differences.push(format!(
            "flags: stored [{}] replayed [{}]",
            stored_flags.join(", "),
            sorted_replayed.join(", ")
        ));
    }
    let models: Vec<ModelComparison> = stored
        .models
        .iter()
        .zip(&c.models)
        .map(|(s, (_, answer))| compare_model(s, answer))
        .collect();
    for m in &models {
        if m.stored_vote != m.replayed_vote {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "failed".into());
            differences.push(format!(
                "{} vote: stored {} replayed {}",
                m.name,
                show(&m.stored_vote),
                show(&m.replayed_vote)
            ));
        }
    }
    let max = models
        .iter()
        .filter_map(|m| m.max_abs_probability_difference)
        .fold(0.0_f32, f32::max);
    let stored_shift_score = stored.shift.as_ref().map(|s| s.score);
    let replayed_shift_score = c.shift.as_ref().map(|s| s.score);
    if stored_shift_score.is_some() != replayed_shift_score.is_some() {
        differences.push(format!(
            "shift score: stored {} replayed {}",
            show_score(stored_shift_score),
            show_score(replayed_shift_score)
        ));
    }
    ReplayReport {
        decision_id: stored.id,
        identical: differences.is_empty(),
        stored_grade: stored.grade.clone(),
        replayed_grade,
        stored_flags,
        replayed_flags,
        models,
        max_abs_probability_difference: max,
        stored_shift_score,
        replayed_shift_score,
        differences,
        execution,
        ensemble_version,
    }
}

fn show_score(s: Option<f64>) -> String {
    s.map_or("none".into(), |s| format!("{s:.4}"))
}

fn compare_model(s: &StoredModel, answer: &ModelAnswer) -> ModelComparison {
    let (replayed_vote, diff) = match answer {
        ModelAnswer::Voted {
            probabilities,
            vote,
        } => {
            let diff = s
                .probabilities
                .as_ref()
                .filter(|p| p.len() == probabilities.len())
                .map(|p| {
                    p.iter()
                        .zip(probabilities)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0_f32, f32::max)
                });
            (Some(vote.label().to_string()), diff)
        }
        ModelAnswer::Failed { .. } => (None, None),
    };
    ModelComparison {
        name: s.name.clone(),
        version: s.version.clone(),
        stored_vote: s.vote.clone(),
        replayed_vote,
        max_abs_probability_difference: diff,
    }
}
