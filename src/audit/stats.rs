//! Disagreement telemetry over the stored decisions (`iari audit stats`): how often each flag
//! is raised, how often each pair of sub-models votes differently, and how often a reviewer
//! overrides the ensemble's grade.

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
}

pub async fn stats(pool: &PgPool) -> Result<Stats, AuditError> {
    let (decisions, flagged): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE cardinality(flags) > 0) FROM decisions",
    )
    .fetch_one(pool)
    .await?;
    let by_flag = sqlx::query_as(
        "SELECT f, count(*) FROM decisions, unnest(flags) AS f GROUP BY f ORDER BY f",
    )
    .fetch_all(pool)
    .await?;
    let model_pair_disagreements = sqlx::query_as(
        "SELECT a.m->>'name', b.m->>'name', count(*) FROM decisions d \
         CROSS JOIN LATERAL jsonb_array_elements(d.models) WITH ORDINALITY AS a(m, i) \
         CROSS JOIN LATERAL jsonb_array_elements(d.models) WITH ORDINALITY AS b(m, j) \
         WHERE a.i < b.j AND a.m->>'vote' IS NOT NULL AND b.m->>'vote' IS NOT NULL \
           AND a.m->>'vote' <> b.m->>'vote' \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    let (reviews, overridden): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE r.grade <> d.grade) \
         FROM reviews r JOIN decisions d ON d.id = r.decision_id",
    )
    .fetch_one(pool)
    .await?;
    // Counts are far below 2^52, so the conversion to f64 is exact.
    let override_rate = (reviews > 0).then(|| overridden as f64 / reviews as f64);
    Ok(Stats {
        decisions,
        flagged,
        by_flag,
        model_pair_disagreements,
        reviews,
        overridden,
        override_rate,
    })
}
