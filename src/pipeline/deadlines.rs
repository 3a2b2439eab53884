//! Plate QC deadlines: once a second, plates whose controls did not all arrive within
//! `qc.wait_s` are settled `missing` and their held results released preliminary
//! (`store::plates::expire_due`). Every worker runs it; the rows are locked with SKIP LOCKED, so
//! each plate is settled once, and a restart loses nothing: the deadline is in the database.

use crate::store::plates;
use sqlx::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TICK: Duration = Duration::from_secs(1);

/// Runs until `cancel`; a pass in progress finishes (it is one transaction).
pub async fn run(pool: PgPool, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        match plates::expire_due(&pool).await {
            Ok(settled) => settled.iter().for_each(plates::Settled::record),
            // Transient or not, the plates stay waiting and the next tick tries again.
            Err(e) => tracing::warn!(error = %e, "plate QC deadlines not checked"),
        }
    }
}
