//! The decision list behind `iari audit list` and `GET /api/v1/decisions`: filters parsed at the
//! edge, one parameterised query (filter values are always bound, never spliced into SQL),
//! stable order `(decided_at, id)` and keyset paging with `after`.

use super::AuditError;
use crate::domain::{DeliveryState, Flag, Grade, PlateFormat, ResultStatus, Well};
use crate::store::plates::PlateQc;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};

/// Page size when none is asked for, and the largest one served.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 10_000;

/// The filters as the user typed them (command line or query string); see [`Filter::parse`].
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only this capture id.
    #[arg(long)]
    pub capture: Option<String>,
    /// Only this accession number.
    #[arg(long)]
    pub accession: Option<String>,
    /// Only this plate id.
    #[arg(long)]
    pub plate: Option<String>,
    /// Only this well (A1 … H12).
    #[arg(long)]
    pub well: Option<String>,
    /// Only decisions with this grade (neg, 1+ … 4+).
    #[arg(long)]
    pub grade: Option<String>,
    /// Only flagged decisions (`--flagged false`: only unflagged ones).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub flagged: Option<bool>,
    /// State of the decision's latest HL7 message: pending, acked or failed.
    #[arg(long)]
    pub delivery: Option<String>,
    /// The ensemble version or any sub-model's version.
    #[arg(long)]
    pub model_version: Option<String>,
    /// Decided at or after this time (RFC 3339, or a date meaning its start in UTC).
    #[arg(long)]
    pub since: Option<String>,
    /// Decided at or before this time (RFC 3339, or a date meaning that whole day in UTC).
    #[arg(long)]
    pub until: Option<String>,
    /// Most rows returned (default 100, at most 10000).
    #[arg(long)]
    pub limit: Option<i64>,
    /// Continue after this decision id (the `next_after` of the previous page).
    #[arg(long)]
    pub after: Option<i64>,
}

fn parse_delivery(s: &str) -> Result<DeliveryState, AuditError> {
    DeliveryState::parse(s).ok_or_else(|| {
        AuditError::Invalid(format!(
            "invalid delivery {s:?}: expected pending, acked or failed"
        ))
    })
}

/// Filters checked and typed; built only by [`Filter::parse`].
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    capture: Option<String>,
    accession: Option<String>,
    plate: Option<String>,
    well: Option<String>,
    grade: Option<Grade>,
    flagged: Option<bool>,
    delivery: Option<DeliveryState>,
    model_version: Option<String>,
    since: Option<DateTime<Utc>>,
    /// Exclusive upper bound when `until` was a date, inclusive when a timestamp.
    until: Option<(DateTime<Utc>, bool)>,
    limit: i64,
    after: Option<i64>,
}

impl Parsed {
    /// Rows one page holds, within 1..=[`MAX_LIMIT`].
    pub fn limit(&self) -> i64 {
        self.limit
    }
}

impl Filter {
    /// Checks every value; a wrong one is refused with a message naming it.
    pub fn parse(&self) -> Result<Parsed, AuditError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AuditError::Invalid(format!(
                "limit must be 1-{MAX_LIMIT}, got {limit}"
            )));
        }
        let grade = match &self.grade {
            Some(g) => Some(
                g.parse::<Grade>()
                    .map_err(|e| AuditError::Invalid(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Parsed {
            capture: self.capture.clone(),
            accession: self.accession.clone(),
            plate: self.plate.clone(),
            well: self.well.as_deref().map(canonical_well),
            grade,
            flagged: self.flagged,
            delivery: self.delivery.as_deref().map(parse_delivery).transpose()?,
            model_version: self.model_version.clone(),
            since: self
                .since
                .as_deref()
                .map(|s| parse_time("since", s, false))
                .transpose()?,
            until: self.until.as_deref().map(parse_until).transpose()?,
            limit,
            after: self.after,
        })
    }
}

/// `a01` and `A1` name the same well; anything unparsable is matched as typed (and finds nothing).
fn canonical_well(s: &str) -> String {
    let widest = PlateFormat {
        rows: 26,
        columns: 99,
    };
    Well::parse(s, widest).map_or_else(|_| s.to_string(), |w| w.to_string())
}

/// RFC 3339, or a plain date meaning midnight UTC (`next_day`: the midnight after it).
fn parse_time(key: &str, s: &str, next_day: bool) -> Result<DateTime<Utc>, AuditError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad = || AuditError::Invalid(format!("{key} {s:?} is neither RFC 3339 nor YYYY-MM-DD"));
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
    let date = if next_day {
        date.succ_opt().ok_or_else(bad)?
    } else {
        date
    };
    Ok(date.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc())
}

fn parse_until(s: &str) -> Result<(DateTime<Utc>, bool), AuditError> {
    let is_timestamp = DateTime::parse_from_rfc3339(s).is_ok();
    Ok((parse_time("until", s, true)?, is_timestamp))
}

/// One row of the list: the decision, where it came from, and where its result stands.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DecisionSummary {
    pub id: i64,
    pub decided_at: DateTime<Utc>,
    pub capture_id: String,
    pub accession: String,
    pub plate_id: String,
    pub well: String,
    pub grade: Grade,
    pub agreement: f32,
    pub confidence: f32,
    pub flags: Vec<Flag>,
    pub needs_review: bool,
    pub ensemble_name: String,
    pub ensemble_version: String,
    pub chain_seq: i64,
    /// State of the latest HL7 message about this decision; none when nothing was enqueued.
    pub delivery: Option<DeliveryState>,
    /// OBX-11 of that message.
    pub result_status: Option<ResultStatus>,
    /// Grade of the latest review, when a person has reviewed it.
    pub reviewed_grade: Option<Grade>,
}

/// One page of decisions; `next_after` is set when there may be more.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub items: Vec<DecisionSummary>,
    pub next_after: Option<i64>,
    /// With a `plate` filter: that plate's QC (none where plate QC never saw it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plate_qc: Option<PlateQc>,
}

const SELECT: &str = "SELECT d.id, d.decided_at, d.capture_id, c.accession, c.plate_id, c.well, \
    d.grade, d.agreement, d.confidence, d.flags, d.needs_review, d.ensemble_name, \
    d.ensemble_version, d.chain_seq, lm.state AS delivery, lm.result_status, \
    lr.grade AS reviewed_grade \
    FROM decisions d JOIN captures c ON c.capture_id = d.capture_id \
    LEFT JOIN LATERAL (SELECT m.state, m.result_status FROM hl7_messages m \
        WHERE m.decision_id = d.id ORDER BY m.id DESC LIMIT 1) lm ON true \
    LEFT JOIN LATERAL (SELECT r.grade FROM reviews r \
        WHERE r.decision_id = d.id ORDER BY r.id DESC LIMIT 1) lr ON true \
    WHERE true";

/// The decisions matching `filter`, in `(decided_at, id)` order.
pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page, AuditError> {
    let f = filter.parse()?;
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    push_conditions(&mut q, &f);
    q.push(" ORDER BY d.decided_at, d.id LIMIT ")
        .push_bind(f.limit);
    let items: Vec<DecisionSummary> = q.build_query_as().fetch_all(pool).await?;
    let full = i64::try_from(items.len()).is_ok_and(|n| n == f.limit);
    let next_after = if full {
        items.last().map(|d| d.id)
    } else {
        None
    };
    let plate_qc = match &f.plate {
        Some(plate) => crate::store::plates::state(pool, plate).await?,
        None => None,
    };
    Ok(Page {
        items,
        next_after,
        plate_qc,
    })
}

/// Appends one `AND …` per filter; every value goes in as a bind parameter.
fn push_conditions(q: &mut QueryBuilder<Postgres>, f: &Parsed) {
    let eq = [
        (" AND d.capture_id = ", &f.capture),
        (" AND c.accession = ", &f.accession),
        (" AND c.plate_id = ", &f.plate),
        (" AND upper(c.well) = ", &f.well),
        (
            " AND lm.state = ",
            &f.delivery.map(|d| d.as_str().to_string()),
        ),
        (" AND d.grade = ", &f.grade.map(|g| g.label().to_string())),
    ];
    for (sql, value) in eq {
        if let Some(v) = value {
            q.push(sql).push_bind(v.clone());
        }
    }
    match f.flagged {
        Some(true) => q.push(" AND cardinality(d.flags) > 0"),
        Some(false) => q.push(" AND cardinality(d.flags) = 0"),
        None => q,
    };
    if let Some(v) = &f.model_version {
        q.push(" AND (d.ensemble_version = ").push_bind(v.clone());
        q.push(
            " OR EXISTS (SELECT 1 FROM jsonb_array_elements(d.models) sm WHERE sm->>'version' = ",
        );
        q.push_bind(v.clone()).push("))");
    }
    if let Some(t) = f.since {
        q.push(" AND d.decided_at >= ").push_bind(t);
    }
    if let Some((t, inclusive)) = f.until {
        q.push(if inclusive {
            " AND d.decided_at <= "
        } else {
            " AND d.decided_at < "
        });
        q.push_bind(t);
    }
    if let Some(after) = f.after {
        // Keyset: rows strictly after the given one in the list order.
        q.push(
            " AND (d.decided_at, d.id) > (SELECT a.decided_at, a.id FROM decisions a WHERE a.id = ",
        );
        q.push_bind(after).push(")");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps() {
        let t = parse_time("since", "2026-11-26", false).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-26T00:00:00+00:00");
        let (u, inclusive) = parse_until("2026-11-26").unwrap();
        assert_eq!(
            (u.to_rfc3339().as_str(), inclusive),
            ("2026-11-27T00:00:00+00:00", false)
        );
        let (u, inclusive) = parse_until("2026-11-26T10:00:00+01:00").unwrap();
        assert_eq!(
            (u.to_rfc3339().as_str(), inclusive),
            ("2026-11-26T09:00:00+00:00", true)
        );
        assert!(parse_time("since", "26/11/2026", false).is_err());
    }

    #[test]
    fn wells_are_canonical_or_kept_as_typed() {
        assert_eq!(canonical_well("b07"), "B7");
        assert_eq!(canonical_well("'; --"), "'; --");
    }
}
