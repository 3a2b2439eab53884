//! Disagreement telemetry over the stored decisions (`iari audit stats`): how often each flag
//! is raised, how often each pair of sub-models votes differently, how often a reviewer
//! overrides the ensemble's grade, and the shift score by day and analyzer.

use super::AuditError;
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub decisions: i64,
    pub flagged: i64,
    pub by_flag: Vec<(String, i64)>,
    /// `(model a, model b, decisions where both voted and their votes differ)`.
    pub model_pair_disagreements: Vec<(String, String, i64)>,
    pub reviews: i64,
    /// Reviews whose grade differs from the ensemble's grade.
    pub overridden: i64,
    /// `overridden / reviews`, none before the first review.
    pub override_rate: Option<f64>,
    /// Per UTC day of decision and analyzer, oldest first.
    pub shift_by_day: Vec<ShiftDay>,
}

/// One analyzer's decisions of one day and how many were out of distribution.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ShiftDay {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub analyzer: String,
    pub decisions: i64,
    /// Decisions with a shift score (none before the manifest had a reference).
    pub scored: i64,
    /// Decisions flagged `out_of_distribution`.
    pub out_of_distribution: i64,
    /// `out_of_distribution / scored`; none when nothing was scored.
    pub share: Option<f64>,
    pub mean_score: Option<f64>,
    pub max_score: Option<f64>,
}

pub async fn stats(pool: &PgPool) -> Result<Stats, AuditError> {
    let totals = sqlx::query!(
        r#"SELECT count(*) AS "decisions!",
             count(*) FILTER (WHERE cardinality(flags) > 0) AS "flagged!" FROM decisions"#
    )
    .fetch_one(pool)
    .await?;
    let (decisions, flagged) = (totals.decisions, totals.flagged);
    let by_flag = sqlx::query!(
        r#"SELECT f AS "flag!", count(*) AS "n!" FROM decisions, unnest(flags) AS f
           GROUP BY f ORDER BY f"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.flag, r.n))
    .collect();
    let model_pair_disagreements = sqlx::query!(
        r#"SELECT a.m->>'name' AS "a!", b.m->>'name' AS "b!", count(*) AS "n!" FROM decisions d
           CROSS JOIN LATERAL jsonb_array_elements(d.models) WITH ORDINALITY AS a(m, i)
           CROSS JOIN LATERAL jsonb_array_elements(d.models) WITH ORDINALITY AS b(m, j)
           WHERE a.i < b.j AND a.m->>'vote' IS NOT NULL AND b.m->>'vote' IS NOT NULL
             AND a.m->>'vote' <> b.m->>'vote'
           GROUP BY 1, 2 ORDER BY 1, 2"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.a, r.b, r.n))
    .collect();
    let r = sqlx::query!(
        r#"SELECT count(*) AS "reviews!", count(*) FILTER (WHERE r.grade <> d.grade) AS "overridden!"
           FROM reviews r JOIN decisions d ON d.id = r.decision_id"#
    )
    .fetch_one(pool)
    .await?;
    let (reviews, overridden) = (r.reviews, r.overridden);
    // Counts are far below 2^52, so the conversion to f64 is exact.
    let override_rate = (reviews > 0).then(|| overridden as f64 / reviews as f64);
    let shift_by_day = sqlx::query_as!(
        ShiftDay,
        r#"SELECT to_char(d.decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS "day!",
             c.analyzer_id AS analyzer, count(*) AS "decisions!",
             count(d.shift_score) AS "scored!",
             count(*) FILTER (WHERE 'out_of_distribution' = ANY(d.flags)) AS "out_of_distribution!",
             (count(*) FILTER (WHERE 'out_of_distribution' = ANY(d.flags)))::float8
               / nullif(count(d.shift_score), 0) AS share,
             avg(d.shift_score) AS mean_score, max(d.shift_score) AS max_score
           FROM decisions d JOIN captures c ON c.capture_id = d.capture_id
           GROUP BY 1, 2 ORDER BY 1, 2"#
    )
    .fetch_all(pool)
    .await?;
    Ok(Stats {
        decisions,
        flagged,
        by_flag,
        model_pair_disagreements,
        reviews,
        overridden,
        override_rate,
        shift_by_day,
    })
}
