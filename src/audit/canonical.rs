//! The canonical text of a chained row, computed in Rust from its raw columns: the text the
//! database's insert trigger hashed, `table:` followed by the row as PostgreSQL renders a jsonb
//! object (keys ordered by length, then bytes; `", "` and `": "` between items; floats as the
//! shortest exact decimal; times in UTC; bytea as `\x` hex).
//!
//! Verification must not take this text from the database: its owner can redefine a function
//! such as `audit_canonical` so that a changed row renders as it did before. Nested jsonb
//! columns arrive as jsonb's own text output (a built-in, not a redefinable function), which is
//! what they look like inside the enclosing object.

use chrono::{DateTime, Timelike, Utc};
use std::fmt::Write;

/// One column's value, as the row holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Real(f32),
    Double(f64),
    Text(String),
    Bytes(Vec<u8>),
    Time(DateTime<Utc>),
    TextArray(Vec<String>),
    /// A jsonb column, already in jsonb's text form.
    Json(String),
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        v.map_or(Value::Null, Value::Text)
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Value::Null, Value::Int)
    }
}

impl From<Option<f64>> for Value {
    fn from(v: Option<f64>) -> Self {
        v.map_or(Value::Null, Value::Double)
    }
}

/// `table:{…}` over `fields` (any order: jsonb orders them).
pub fn canonical(table: &str, fields: Vec<(&str, Value)>) -> String {
    let mut fields = fields;
    fields.sort_by(|a, b| (a.0.len(), a.0.as_bytes()).cmp(&(b.0.len(), b.0.as_bytes())));
    let mut out = String::with_capacity(512);
    out.push_str(table);
    out.push_str(":{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        string(&mut out, key);
        out.push_str(": ");
        render(&mut out, value);
    }
    out.push('}');
    out
}

fn render(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        // Each in its own width: an f32's shortest digits are not its f64 widening's.
        Value::Real(f) => float(out, f64::from(*f), f),
        Value::Double(f) => float(out, *f, f),
        Value::Text(s) => string(out, s),
        Value::Bytes(b) => {
            out.push_str("\"\\\\x");
            out.push_str(&hex::encode(b));
            out.push('"');
        }
        Value::Time(t) => time(out, t),
        Value::TextArray(items) => {
            out.push('[');
            for (i, s) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                string(out, s);
            }
            out.push(']');
        }
        Value::Json(text) => out.push_str(text),
    }
}

/// A float as to_jsonb stores it: the shortest exact digits (float4/8 output with
/// `extra_float_digits` > 0) read back as numeric, whose output never uses an exponent and has
/// no negative zero. Rust's `Display` gives the same digits in the same plain notation.
fn float(out: &mut String, value: f64, shortest: impl std::fmt::Display) {
    if !value.is_finite() {
        // Not a JSON number: to_jsonb keeps the float's text as a string.
        let text = if value.is_nan() {
            "NaN"
        } else if value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        string(out, text);
    } else if value == 0.0 {
        out.push('0');
    } else {
        let _ = write!(out, "{shortest}");
    }
}

/// jsonb's timestamptz form in UTC: `2026-12-06T07:45:55.1234+00:00`, trailing zeros of the
/// microseconds dropped, no fraction when there is none.
fn time(out: &mut String, t: &DateTime<Utc>) {
    let _ = write!(out, "\"{}", t.format("%Y-%m-%dT%H:%M:%S"));
    let micros = t.nanosecond() / 1_000 % 1_000_000;
    if micros != 0 {
        let frac = format!("{micros:06}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str("+00:00\"");
}

/// A JSON string escaped as PostgreSQL's `escape_json` does.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_order_by_length_then_bytes_and_values_render_as_jsonb() {
        let t = Utc.with_ymd_and_hms(2026, 12, 6, 7, 45, 55).unwrap()
            + chrono::Duration::microseconds(123_400);
        let text = canonical(
            "decisions",
            vec![
                ("grade", Value::Text("1+".into())),
                ("id", Value::Int(7)),
                ("agreement", Value::Real(0.8)),
                ("flags", Value::TextArray(vec!["tie".into(), "a\"b".into()])),
                ("prev_hash", Value::Bytes(vec![0, 255])),
                ("decided_at", Value::Time(t)),
                ("models", Value::Json("{\"a\": 1}".into())),
                ("zero", Value::Double(-0.0)),
                ("tiny", Value::Double(1e-7)),
                ("c", Value::Null),
            ],
        );
        assert_eq!(
            text,
            "decisions:{\"c\": null, \"id\": 7, \"tiny\": 0.0000001, \"zero\": 0, \
             \"flags\": [\"tie\", \"a\\\"b\"], \"grade\": \"1+\", \"models\": {\"a\": 1}, \
             \"agreement\": 0.8, \"prev_hash\": \"\\\\x00ff\", \
             \"decided_at\": \"2026-12-06T07:45:55.1234+00:00\"}"
        );
    }

    #[test]
    fn strings_escape_controls_and_keep_unicode() {
        let mut s = String::new();
        string(&mut s, "a\u{1}\n\té\\");
        assert_eq!(s, "\"a\\u0001\\n\\té\\\\\"");
    }
}
