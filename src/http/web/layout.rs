//! The page skeleton every workstation page shares (landmarks, navigation by role, sign-out,
//! our stylesheet and script with their integrity hashes) and the words pages use for flags,
//! grades and times.

use super::Web;
use crate::auth::sessions::Session;
use crate::domain::{Flag, Grade};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

/// A page for a signed-in person.
pub fn page(web: &Web, s: &Session, title: &str, body: Markup) -> Markup {
    let role = s.principal.role;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · IARI workstation" }
                link rel="stylesheet" href="/static/app.css" integrity=(web.css_integrity);
                script src="/static/app.js" integrity=(web.js_integrity) defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    nav aria-label="Main" {
                        ul {
                            @if role.reads_results() {
                                li { a href="/worklist" { "Worklist" } }
                            }
                            @if role.searches_audit() || role.reads_sign_ins() {
                                li { a href="/audit" { "Audit" } }
                            }
                            @if role.manages_users() {
                                li { a href="/admin/users" { "Users" } }
                            }
                        }
                    }
                    div class="who" {
                        span data-test="signed-in-as" {
                            (s.principal.full_name) " (" (role) ")"
                        }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page for someone not (yet) signed in: sign-in, errors.
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · IARI workstation" }
                link rel="stylesheet" href="/static/app.css";
            }
            body {
                header class="top" { span class="brand" { "IARI review workstation" } }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A flag in words, as a technologist reads it.
pub fn flag_words(f: Flag) -> &'static str {
    match f {
        Flag::DisagreeAdjacent => "Sub-models disagree by one grade",
        Flag::DisagreeNonadjacent => "Sub-models disagree by two grades or more",
        Flag::SignConflict => "Some sub-models read negative, others positive",
        Flag::Tie => "Tied vote, broken by summed probability",
        Flag::ModelFailed => "A sub-model failed; the others decided",
        Flag::LowConfidence => "Low confidence",
        Flag::OutOfDistribution => {
            "Image unlike the training images: the sub-models' agreement is not reliable"
        }
        Flag::ReagentExpired => "Read with an expired reagent: a person must release it",
        Flag::QcMissing => "Plate controls missing: released without plate QC",
        Flag::QcFailed => "Plate control failed: result withheld from the LIS",
    }
}

/// The CSS class that colours a grade.
pub fn grade_class(g: Grade) -> &'static str {
    match g {
        Grade::Neg => "g-neg",
        Grade::P1 => "g-1",
        Grade::P2 => "g-2",
        Grade::P3 => "g-3",
        Grade::P4 => "g-4",
    }
}

/// A grade's name for `data-test` hooks and keys: `neg`, `1` … `4`.
pub fn grade_key(g: Grade) -> &'static str {
    match g {
        Grade::Neg => "neg",
        Grade::P1 => "1",
        Grade::P2 => "2",
        Grade::P3 => "3",
        Grade::P4 => "4",
    }
}

/// A time as pages show it (UTC, to the second).
/// A time as people at the site read it: in the site's zone (`lis.timezone`), with the zone's
/// abbreviation, so that a daylight-saving hour that repeats is still told apart.
pub fn when(t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// Encodes a query-string value (RFC 3986 unreserved characters stay as they are).
pub fn enc(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
