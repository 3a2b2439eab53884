//! Capture event v1 (`capture-event.md`): bytes off the queue → a typed [`CaptureEvent`], or an
//! `invalid_event` failure that says which field is wrong. Nothing past this module sees raw JSON
//! except the stored copy of the original event.
//!
//! Where this is stricter than `capture-event.md`'s "patient.* free text": the HL7 profile's
//! Revision 2 asks that every patient the event allows gives a valid PID, so a patient with any
//! field must carry `mrn` (PID-3), `birth_date` must be `YYYY-MM-DD` and `sex` a table 0001 code
//! (`Patient::check`); names stay free text (escaped on output), at most 100 characters each.

pub use crate::domain::{Analyzer, CaptureEvent, ImageRef, ImageSource, Order, Patient};
use crate::domain::{
    CaptureId, DeadLetterReason, Failure, PlateFormat, PlateRole, Reagent, Sha256Digest, Well,
};
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::Deserialize;
use std::path::PathBuf;

pub const SCHEMA_V1: &str = "iari.capture.v1";
/// Inline media types the spec allows.
pub const MEDIA_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/tiff", "image/bmp"];

/// What the parser needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct EventLimits {
    pub plate: PlateFormat,
    /// Largest body accepted, checked before parsing (inline images arrive base64-encoded).
    pub max_body_bytes: usize,
}

impl EventLimits {
    /// Room for an inline image of `max_image_bytes` in base64 (4/3) plus the metadata.
    pub fn for_images(plate: PlateFormat, max_image_bytes: u64) -> Self {
        let b64 = usize::try_from(max_image_bytes.div_ceil(3) * 4).unwrap_or(usize::MAX);
        EventLimits {
            plate,
            max_body_bytes: b64.saturating_add(64 * 1024),
        }
    }
}

#[derive(Deserialize)]
struct RawEvent {
    capture_id: String,
    captured_at: String,
    analyzer: RawAnalyzer,
    plate: RawPlate,
    specimen: RawSpecimen,
    patient: Option<Patient>,
    order: Option<Order>,
    image: RawImage,
    reagent: Option<RawReagent>,
}

#[derive(Deserialize)]
struct RawAnalyzer {
    id: String,
    software_version: Option<String>,
}

#[derive(Deserialize)]
struct RawPlate {
    id: String,
    well: String,
    role: Option<String>,
}

/// `reagent` (release.md).
#[derive(Deserialize)]
struct RawReagent {
    lot: Option<String>,
    expires: Option<String>,
    cell: Option<String>,
}

#[derive(Deserialize)]
struct RawSpecimen {
    accession: String,
    collected_at: Option<String>,
}

#[derive(Deserialize)]
struct RawImage {
    path: Option<String>,
    data_base64: Option<String>,
    media_type: Option<String>,
    sha256: Option<String>,
}

fn invalid(detail: impl Into<String>) -> Failure {
    Failure::new(DeadLetterReason::InvalidEvent, detail)
}

/// Parses and validates one message body.
pub fn parse(body: &[u8], limits: &EventLimits) -> Result<CaptureEvent, Failure> {
    if body.len() > limits.max_body_bytes {
        return Err(invalid(format!(
            "body of {} bytes exceeds the limit of {} bytes",
            body.len(),
            limits.max_body_bytes
        )));
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| invalid(format!("body is not UTF-8 (at byte {})", e.valid_up_to())))?;
    // Nesting deeper than 128 levels and duplicate keys are refused (see `json`).
    let raw = super::json::from_str(text).map_err(|e| invalid(format!("body is not JSON: {e}")))?;
    match raw.get("schema").and_then(serde_json::Value::as_str) {
        Some(SCHEMA_V1) => {}
        Some(other) => return Err(invalid(format!("unknown schema {other:?}"))),
        None => return Err(invalid("missing field `schema`")),
    }
    // The path in the error names the field for the integrator (`plate.well`, `image`).
    let fields: RawEvent = serde_path_to_error::deserialize(raw.clone())
        .map_err(|e| invalid(format!("{}: {}", e.path(), e.inner())))?;
    validate(fields, raw, limits)
}

fn validate(
    e: RawEvent,
    raw: serde_json::Value,
    limits: &EventLimits,
) -> Result<CaptureEvent, Failure> {
    let capture_id =
        CaptureId::parse(&e.capture_id).map_err(|err| invalid(format!("capture_id: {err}")))?;
    let well = Well::parse(&e.plate.well, limits.plate)
        .map_err(|err| invalid(format!("plate.well: {err}")))?;
    let captured_at = timestamp("captured_at", &e.captured_at)?;
    let role = plate_role(e.plate.role.as_deref())?;
    let reagent = e.reagent.map(reagent).transpose()?;
    Ok(CaptureEvent {
        capture_id,
        captured_at,
        analyzer: Analyzer {
            id: short_text("analyzer.id", e.analyzer.id)?,
            software_version: bounded(
                "analyzer.software_version",
                e.analyzer.software_version,
                MAX_SOFTWARE_VERSION,
            )?,
        },
        plate_id: short_text("plate.id", e.plate.id)?,
        well,
        role,
        reagent,
        accession: short_text("specimen.accession", e.specimen.accession)?,
        collected_at: e
            .specimen
            .collected_at
            .map(|t| timestamp("specimen.collected_at", &t))
            .transpose()?,
        patient: patient(e.patient)?,
        order: order(e.order)?,
        image: image_ref(e.image)?,
        raw,
    })
}

/// The patient's rules (`Patient::check`): a patient with any field carries its MRN, a valid
/// birth date and a table 0001 sex, so every PID the HL7 builder makes is one a strict v2.5.1
/// validator accepts. A patient of blanks only is no patient.
fn patient(p: Option<Patient>) -> Result<Option<Patient>, Failure> {
    match p {
        Some(p) if !p.is_empty() => {
            p.check().map_err(invalid)?;
            Ok(Some(p))
        }
        _ => Ok(None),
    }
}

/// RFC 3339 with an explicit offset (`Z` or `±hh:mm`).
fn timestamp(key: &str, s: &str) -> Result<DateTime<FixedOffset>, Failure> {
    DateTime::parse_from_rfc3339(s).map_err(|e| {
        invalid(format!(
            "{key}: {s:?} is not an RFC 3339 time with offset: {e}"
        ))
    })
}

/// `plate.role`: absent is a patient's well; anything but the three roles is refused.
fn plate_role(role: Option<&str>) -> Result<PlateRole, Failure> {
    match role {
        None => Ok(PlateRole::Patient),
        Some(r) => PlateRole::parse(r).ok_or_else(|| {
            invalid(format!(
                "plate.role: {r:?} is not patient, positive_control or negative_control"
            ))
        }),
    }
}

/// `reagent`: bounded texts and a `YYYY-MM-DD` expiry date. An expired reagent is not refused:
/// the capture is graded and flagged `reagent_expired` (never final automatically).
fn reagent(r: RawReagent) -> Result<Reagent, Failure> {
    let expires = r
        .expires
        .map(|d| {
            NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .map_err(|_| invalid(format!("reagent.expires: {d:?} is not a YYYY-MM-DD date")))
        })
        .transpose()?;
    Ok(Reagent {
        lot: bounded("reagent.lot", r.lot, 32)?,
        expires,
        cell: bounded("reagent.cell", r.cell, 32)?,
    })
}

/// Longest accepted optional texts (characters): stored with every decision and copied into
/// HL7 fields, so no event can make those rows or messages arbitrarily large.
const MAX_SOFTWARE_VERSION: usize = 64;
const MAX_ORDER_FIELD: usize = 200;
const MAX_IMAGE_PATH: usize = 1024;

/// An optional text of at most `max` characters.
fn bounded(key: &str, s: Option<String>, max: usize) -> Result<Option<String>, Failure> {
    match s {
        Some(s) if s.chars().count() > max => {
            Err(invalid(format!("{key}: at most {max} characters")))
        }
        s => Ok(s),
    }
}

fn order(o: Option<Order>) -> Result<Option<Order>, Failure> {
    let Some(o) = o else { return Ok(None) };
    Ok(Some(Order {
        placer_order_number: bounded(
            "order.placer_order_number",
            o.placer_order_number,
            MAX_ORDER_FIELD,
        )?,
        test_code: bounded("order.test_code", o.test_code, MAX_ORDER_FIELD)?,
        test_name: bounded("order.test_name", o.test_name, MAX_ORDER_FIELD)?,
    }))
}

/// 1–32 printable characters (no control characters, not blank).
fn short_text(key: &str, s: String) -> Result<String, Failure> {
    let n = s.chars().count();
    if !(1..=32).contains(&n) || s.chars().any(char::is_control) || s.trim().is_empty() {
        return Err(invalid(format!("{key}: must be 1-32 printable characters")));
    }
    Ok(s)
}

fn image_ref(img: RawImage) -> Result<ImageRef, Failure> {
    let sha256 = img
        .sha256
        .map(|s| s.parse::<Sha256Digest>())
        .transpose()
        .map_err(|e| invalid(format!("image.sha256: {e}")))?;
    let source = match (img.path, img.data_base64) {
        (Some(path), None) => {
            if path.chars().count() > MAX_IMAGE_PATH {
                return Err(invalid(format!(
                    "image.path: at most {MAX_IMAGE_PATH} characters"
                )));
            }
            if path.is_empty() || path.chars().any(char::is_control) {
                return Err(invalid(
                    "image.path: must be a non-empty path without control characters",
                ));
            }
            ImageSource::Path(PathBuf::from(path))
        }
        (None, Some(base64)) => {
            let media_type = img
                .media_type
                .ok_or_else(|| invalid("image.media_type: required with image.data_base64"))?;
            if !MEDIA_TYPES.contains(&media_type.as_str()) {
                return Err(invalid(format!(
                    "image.media_type: {media_type:?} is not one of {}",
                    MEDIA_TYPES.join(", ")
                )));
            }
            ImageSource::Inline { base64, media_type }
        }
        (Some(_), Some(_)) => {
            return Err(invalid("image: give either path or data_base64, not both"));
        }
        (None, None) => return Err(invalid("image: one of path or data_base64 is required")),
    };
    Ok(ImageRef { source, sha256 })
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
