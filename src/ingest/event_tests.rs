use super::*;
use serde_json::{Value, json};

fn limits() -> EventLimits {
    EventLimits::for_images(PlateFormat::default(), 20 * 1024 * 1024)
}

fn good() -> Value {
    json!({
        "schema": "iari.capture.v1",
        "capture_id": "PLT0042-A01-20261126T101500Z",
        "captured_at": "2026-11-26T10:15:00Z",
        "analyzer": { "id": "HCM-01", "software_version": "2.3.1" },
        "plate": { "id": "PLT0042", "well": "A1" },
        "specimen": { "accession": "S26-001234", "collected_at": "2026-11-26T08:02:00+01:00" },
        "patient": { "mrn": "MRN12345", "family": "DOE|^~\\&", "given": "JANE\nX" },
        "order": { "placer_order_number": "PLC123" },
        "image": { "path": "2026/11/26/PLT0042-A01.png" }
    })
}

fn parse_value(v: &Value) -> Result<CaptureEvent, Failure> {
    parse(&serde_json::to_vec(v).unwrap(), &limits())
}

fn assert_invalid(r: Result<CaptureEvent, Failure>, needle: &str) {
    let f = r.unwrap_err();
    assert_eq!(f.reason, DeadLetterReason::InvalidEvent);
    assert!(
        f.detail.contains(needle),
        "{needle:?} not in {:?}",
        f.detail
    );
}

#[test]
fn parses_the_spec_example() {
    let e = parse_value(&good()).unwrap();
    assert_eq!(e.capture_id.as_str(), "PLT0042-A01-20261126T101500Z");
    assert_eq!(e.well.to_string(), "A1");
    assert_eq!(e.plate_id, "PLT0042");
    assert_eq!(e.analyzer.id, "HCM-01");
    assert_eq!(e.collected_at.unwrap().offset().local_minus_utc(), 3600);
    assert_eq!(e.patient.unwrap().family.as_deref(), Some("DOE|^~\\&"));
    assert_eq!(
        e.image.source,
        ImageSource::Path("2026/11/26/PLT0042-A01.png".into())
    );
    assert_eq!(e.raw, good());
}

#[test]
fn inline_image_needs_a_known_media_type() {
    let mut v = good();
    v["image"] =
        json!({ "data_base64": "AAAA", "media_type": "image/png", "sha256": "ab".repeat(32) });
    let e = parse_value(&v).unwrap();
    assert!(matches!(e.image.source, ImageSource::Inline { .. }));
    assert!(e.image.sha256.is_some());
    v["image"]["media_type"] = json!("image/gif");
    assert_invalid(parse_value(&v), "media_type");
    v["image"] = json!({ "data_base64": "AAAA" });
    assert_invalid(parse_value(&v), "media_type");
}

#[test]
fn not_utf8_not_json_unknown_schema() {
    assert_invalid(parse(b"\xff\xfe{}", &limits()), "not UTF-8");
    assert_invalid(parse(b"{\"schema\": ", &limits()), "not JSON");
    assert_invalid(parse(b"[1,2]", &limits()), "schema");
    let mut v = good();
    v["schema"] = json!("iari.capture.v2");
    assert_invalid(parse_value(&v), "unknown schema");
}

#[test]
fn missing_and_invalid_fields_name_the_field() {
    let cases: [(&str, Value, &str); 9] = [
        ("capture_id", json!("has space"), "capture_id"),
        ("captured_at", json!("2026-11-26T10:15:00"), "captured_at"),
        ("captured_at", json!(12), "captured_at"),
        ("plate", json!({ "id": "P", "well": "I13" }), "plate.well"),
        ("plate", json!({ "id": "", "well": "A1" }), "plate.id"),
        ("analyzer", json!({ "id": "x".repeat(33) }), "analyzer.id"),
        (
            "specimen",
            json!({ "accession": "a\u{7}b" }),
            "specimen.accession",
        ),
        ("image", json!({}), "image"),
        (
            "image",
            json!({ "path": "a.png", "data_base64": "AA", "media_type": "image/png" }),
            "not both",
        ),
    ];
    for (key, value, needle) in cases {
        let mut v = good();
        v[key] = value;
        assert_invalid(parse_value(&v), needle);
    }
    for key in [
        "capture_id",
        "captured_at",
        "analyzer",
        "plate",
        "specimen",
        "image",
    ] {
        let mut v = good();
        v.as_object_mut().unwrap().remove(key);
        assert_invalid(parse_value(&v), key);
    }
    let mut v = good();
    v["image"]["sha256"] = json!("not-hex");
    assert_invalid(parse_value(&v), "image.sha256");
}

#[test]
fn hostile_bodies_are_refused_not_crashed_on() {
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    assert_invalid(parse(deep.as_bytes(), &limits()), "not JSON");
    let text = serde_json::to_string(&good()).unwrap();
    let twice = text.replacen('{', r#"{"capture_id": "OTHER","#, 1);
    assert_invalid(parse(twice.as_bytes(), &limits()), "duplicate key");
    let small = EventLimits {
        plate: PlateFormat::default(),
        max_body_bytes: 16,
    };
    assert_invalid(
        parse(&serde_json::to_vec(&good()).unwrap(), &small),
        "exceeds the limit",
    );
}

#[test]
fn body_limit_leaves_room_for_a_max_size_inline_image() {
    let l = EventLimits::for_images(PlateFormat::default(), 3 * 1000);
    assert!(l.max_body_bytes >= 4 * 1000);
}

/// The patient rules of Revision 2: any patient field needs the MRN (PID-3 is required when a
/// PID is sent), a birth date is a date, a sex is a table 0001 code; a patient of blanks is no
/// patient.
#[test]
fn patient_fields_follow_the_hl7_profile() {
    let with = |p: Value| {
        let mut v = good();
        v["patient"] = p;
        parse_value(&v)
    };
    let ok = with(json!({ "mrn": "M1" })).unwrap();
    assert_eq!(ok.patient.unwrap().mrn.as_deref(), Some("M1"));
    let full = json!({ "mrn": "M1", "family": "DOE|^~\\&", "given": "A\nB",
                       "birth_date": "2000-02-29", "sex": "U" });
    assert!(with(full).is_ok());
    assert_eq!(with(json!({})).unwrap().patient, None);
    assert_eq!(
        with(json!({ "mrn": " ", "family": "" })).unwrap().patient,
        None
    );
    let cases = [
        (json!({ "family": "DOE", "given": "JANE" }), "patient.mrn"),
        (
            json!({ "birth_date": "1980-01-01", "sex": "F" }),
            "patient.mrn",
        ),
        (
            json!({ "mrn": "M1", "birth_date": "1980-13-01" }),
            "patient.birth_date",
        ),
        (json!({ "mrn": "M1", "sex": "female" }), "patient.sex"),
        (json!({ "mrn": "M".repeat(65) }), "patient.mrn"),
        (
            json!({ "mrn": "M1", "given": "x".repeat(101) }),
            "patient.given",
        ),
    ];
    for (p, needle) in cases {
        assert_invalid(with(p), needle);
    }
}

#[test]
fn optional_texts_have_length_limits() {
    for (pointer, max) in [
        ("/analyzer/software_version", 64),
        ("/order/placer_order_number", 200),
        ("/order/test_code", 200),
        ("/order/test_name", 200),
        ("/image/path", 1024),
    ] {
        let key = pointer[1..].replace('/', ".");
        let mut v = good();
        *v.pointer_mut(&pointer[..pointer.rfind('/').unwrap()])
            .unwrap()
            .as_object_mut()
            .unwrap()
            .entry(pointer.rsplit('/').next().unwrap())
            .or_insert(Value::Null) = Value::String("é".repeat(max));
        assert!(parse_value(&v).is_ok(), "{key} at its limit");
        *v.pointer_mut(pointer).unwrap() = Value::String("é".repeat(max + 1));
        assert_invalid(parse_value(&v), &format!("{key}: at most {max} characters"));
    }
}

#[test]
fn roles_and_reagents_are_parsed_and_bad_values_refused() {
    let with = |pointer: &str, field: &str, value: Value| {
        let mut v = good();
        v.pointer_mut(pointer)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(field.into(), value);
        parse_value(&v)
    };
    assert_eq!(parse_value(&good()).unwrap().role, PlateRole::Patient);
    for role in PlateRole::ALL {
        assert_eq!(
            with("/plate", "role", json!(role.as_str())).unwrap().role,
            role
        );
    }
    assert_invalid(with("/plate", "role", json!("blank")), "is not patient");
    // Captured 2026-11-26 (local date of the example).
    let reagent = |expires: &str| json!({ "lot": "RS-24-118", "expires": expires, "cell": "II" });
    let last_day = with("", "reagent", reagent("2026-11-26")).unwrap();
    assert!(!last_day.reagent_expired(), "in date on its last day");
    assert_eq!(
        last_day.reagent.as_ref().and_then(|r| r.cell.as_deref()),
        Some("II")
    );
    let expired = with("", "reagent", reagent("2026-11-25")).unwrap();
    assert!(expired.reagent_expired(), "graded, and flagged later");
    assert_invalid(
        with("", "reagent", reagent("31.03.2027")),
        "not a YYYY-MM-DD date",
    );
    assert_invalid(
        with("", "reagent", json!({ "lot": "L".repeat(33) })),
        "reagent.lot: at most 32",
    );
    let lot_only = with("", "reagent", json!({ "lot": "RS-1" })).unwrap();
    assert!(!lot_only.reagent_expired());
}
