//! A capture event as every stage after ingest sees it: validated, typed, with the original
//! JSON kept for storage. Built only by `ingest::event::parse`.

use super::{CaptureId, Order, Patient, PlateRole, Reagent, Sha256Digest, Well};
use chrono::{DateTime, FixedOffset};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub struct Analyzer {
    pub id: String,
    pub software_version: Option<String>,
}

/// Where the image bytes are: a file under the image root, or base64 in the event.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    Path(PathBuf),
    Inline { base64: String, media_type: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageRef {
    pub source: ImageSource,
    /// When given, the bytes must match it.
    pub sha256: Option<Sha256Digest>,
}

/// A validated capture event, version 1, with the original JSON kept for storage.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureEvent {
    pub capture_id: CaptureId,
    pub captured_at: DateTime<FixedOffset>,
    pub analyzer: Analyzer,
    pub plate_id: String,
    pub well: Well,
    pub role: PlateRole,
    pub reagent: Option<Reagent>,
    pub accession: String,
    pub collected_at: Option<DateTime<FixedOffset>>,
    pub patient: Option<Patient>,
    pub order: Option<Order>,
    pub image: ImageRef,
    pub raw: serde_json::Value,
}

impl CaptureEvent {
    /// Read with a reagent past its expiry date: flagged `reagent_expired`, never final.
    pub fn reagent_expired(&self) -> bool {
        self.reagent
            .as_ref()
            .is_some_and(|r| r.expired_at(&self.captured_at))
    }
}
