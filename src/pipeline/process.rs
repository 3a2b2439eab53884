//! One processing step, free of AMQP: a batch in, every capture settled out. Three stages, each
//! taking the batch by value: prepare (blocking threads) → one inference run (blocking) → one
//! transaction. `run` hands batches between them on channels; tests call them in a row.

use super::batch::{Batch, Capture, Classified, Incoming, State};
use super::outcome::{Disposition, fail, settle_write};
use super::prepare::{PrepareContext, Prepared, prepare_all};
use crate::classify::{Engine, SharedInput};
use crate::config::QcSettings;
use crate::domain::{DeadLetterReason, Failure};
use crate::metrics::metrics;
use crate::qc;
use crate::release::ActivePolicy;
use crate::store::decisions::{
    ImageRow, NewDecision, Provenance, Timings, WriteOutcome, write_batch,
};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The stages and what they share; cheap to clone.
#[derive(Clone)]
pub struct Processor {
    pub engine: Arc<Engine>,
    pub pool: PgPool,
    pub prepare: Arc<PrepareContext>,
    pub provenance: Arc<Provenance>,
    /// Quorum queue `x-delivery-limit`: the last attempt dead-letters transient failures.
    pub delivery_limit: u32,
    /// Plate QC (`qc.mode = "plate"`); none when the site runs no controls.
    pub qc: Option<Arc<QcSettings>>,
    /// The release policy in force; each batch is released under one snapshot of it.
    pub policy: ActivePolicy,
}

fn observe(stage: &str, since: Instant) {
    metrics()
        .stage_seconds
        .with_label_values(&[stage])
        .observe(since.elapsed().as_secs_f64());
}

impl Processor {
    /// The three stages in a row: one disposition per message, in order.
    pub async fn process_batch(
        &self,
        messages: Vec<Incoming>,
        cancel: &CancellationToken,
    ) -> Vec<Disposition> {
        let batch = self.prepare_batch(Batch::new(messages)).await;
        let batch = self.infer_batch(batch).await;
        self.store_batch(batch, cancel).await.dispositions()
    }

    /// Parses, fetches, decodes and preprocesses the received captures on blocking threads,
    /// packing their tensors into the batch input; failures are settled here.
    pub async fn prepare_batch(&self, mut batch: Batch) -> Batch {
        metrics()
            .captures_received
            .with_label_values(&[] as &[&str])
            .inc_by(batch.len() as u64);
        let bodies: Vec<Vec<u8>> = batch
            .captures
            .iter_mut()
            .filter_map(|c| match &mut c.state {
                State::Received(body) => Some(std::mem::take(body)),
                _ => None,
            })
            .collect();
        let t0 = Instant::now();
        let (ctx, engine) = (self.prepare.clone(), self.engine.clone());
        let job = move || {
            let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
            let mut input = engine.input_buffer(refs.len());
            let results = prepare_all(&refs, &ctx, engine.preprocessor(), &mut input);
            (results, input)
        };
        let results = match tokio::task::spawn_blocking(job).await {
            Ok((results, input)) => {
                batch.input = input;
                results
            }
            Err(e) => {
                let f = Failure::new(
                    DeadLetterReason::ClassificationFailed,
                    format!("prepare: {e}"),
                );
                let n = batch.count(|s| matches!(s, State::Received(_)));
                (0..n).map(|_| Err(f.clone())).collect()
            }
        };
        observe("prepare", t0);
        let mut results = results.into_iter();
        for c in &mut batch.captures {
            if !matches!(c.state, State::Received(_)) {
                continue;
            }
            let next = match results.next() {
                Some(Ok(p)) => {
                    let stage = &metrics().stage_seconds;
                    stage
                        .with_label_values(&["decode"])
                        .observe(p.decode_ms / 1000.0);
                    stage
                        .with_label_values(&["preprocess"])
                        .observe(p.preprocess_ms / 1000.0);
                    State::Prepared(Box::new(p))
                }
                Some(Err(f)) => State::Settled(fail(f, c.delivery_count, self.delivery_limit)),
                None => continue,
            };
            c.state = next;
        }
        batch
    }

    /// One inference run over the prepared captures; on failure they are settled.
    pub async fn infer_batch(&self, mut batch: Batch) -> Batch {
        let input = std::mem::take(&mut batch.input);
        let shas: Vec<_> = batch
            .captures
            .iter()
            .filter_map(|c| match &c.state {
                State::Prepared(p) => Some(p.sha256),
                _ => None,
            })
            .collect();
        if shas.is_empty() {
            self.engine.recycle_input(input);
            return batch;
        }
        let n = shas.len();
        metrics()
            .batch_size
            .with_label_values(&[] as &[&str])
            .observe(n as f64);
        let t0 = Instant::now();
        let engine = self.engine.clone();
        // The packed input goes to the engine as is (no per-image copy) and comes back for reuse.
        let result = tokio::task::spawn_blocking(move || {
            let input = SharedInput::from(input);
            let r = engine.classify_packed(&shas, &input);
            if let Some(buf) = input.into_inner() {
                engine.recycle_input(buf);
            }
            r
        })
        .await;
        observe("inference", t0);
        let inference_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let classes = match result {
            Ok(Ok(classes)) if classes.len() == n => Ok(classes),
            Ok(Ok(classes)) => Err(format!("{} answers for {n} images", classes.len())),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let limit = self.delivery_limit;
        match classes {
            Ok(classes) => {
                let mut classes = classes.into_iter();
                for c in prepared(&mut batch) {
                    let Some(mut classification) = classes.next() else {
                        break;
                    };
                    if let State::Prepared(p) = &c.state {
                        qc::flag_reagent(&mut classification.outcome, p.event.reagent_expired());
                    }
                    let timings = timings(c, t0, inference_ms, n);
                    c.advance(|s| match s {
                        State::Prepared(p) => State::Classified(Box::new(Classified {
                            prepared: *p,
                            classification,
                            timings,
                        })),
                        other => other,
                    });
                }
            }
            Err(error) => {
                for c in prepared(&mut batch) {
                    let f = Failure::new(DeadLetterReason::ClassificationFailed, &error);
                    c.state = State::Settled(fail(f, c.delivery_count, limit));
                }
            }
        }
        batch
    }

    /// Commits the classified captures in one transaction and settles them. Store outages are
    /// retried here while the caller holds the acks; `cancel` bounds that wait (the messages are
    /// then requeued, never acked).
    pub async fn store_batch(&self, mut batch: Batch, cancel: &CancellationToken) -> Batch {
        // One policy snapshot for the whole batch: every decision of it is released, and
        // records its policy, under the same version, whatever is activated meanwhile.
        let policy = self.policy.snapshot();
        for c in batch.captures.iter_mut() {
            if let State::Classified(c) = &mut c.state {
                policy.release(&mut c.classification, &c.prepared.event.raw);
            }
        }
        let provenance = policy.provenance(&self.provenance);
        let rows: Vec<NewDecision<'_>> = batch
            .captures
            .iter()
            .filter_map(|c| match &c.state {
                State::Classified(c) => Some(new_decision(c)),
                _ => None,
            })
            .collect();
        if rows.is_empty() {
            return batch;
        }
        let t1 = Instant::now();
        let written = self.write_with_retry(&provenance, &rows, cancel).await;
        drop(rows);
        observe("store", t1);
        let limit = self.delivery_limit;
        let mut outcomes = written.map(Vec::into_iter);
        for c in batch.captures.iter_mut() {
            let State::Classified(cl) = &c.state else {
                continue;
            };
            let d = match &mut outcomes {
                Ok(o) => match o.next() {
                    Some(o) => settle_write(o, &cl.prepared, &cl.classification),
                    None => continue,
                },
                Err(e) => {
                    let f = Failure::new(DeadLetterReason::StoreFailed, e.as_str());
                    fail(f, c.delivery_count, limit)
                }
            };
            c.state = State::Settled(d);
        }
        batch
    }

    /// Retries transient database errors with backoff until they pass or `cancel` fires.
    async fn write_with_retry(
        &self,
        provenance: &Provenance,
        rows: &[NewDecision<'_>],
        cancel: &CancellationToken,
    ) -> Result<Vec<WriteOutcome>, String> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match write_batch(&self.pool, provenance, self.qc.as_deref(), rows).await {
                Ok(o) => return Ok(o),
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "database unavailable; holding the batch");
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(format!("shutting down while the database is unavailable: {e}")),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(error = %e, "database refused the batch");
                    return Err(e.to_string());
                }
            }
        }
    }
}

/// The prepared captures of the batch, in order (the order of the packed input).
fn prepared(batch: &mut Batch) -> impl Iterator<Item = &mut Capture> {
    batch
        .captures
        .iter_mut()
        .filter(|c| matches!(c.state, State::Prepared(_)))
}

fn timings(c: &Capture, inference_start: Instant, inference_ms: f64, n: usize) -> Timings {
    let (decode_ms, preprocess_ms) = match &c.state {
        State::Prepared(p) => (p.decode_ms, p.preprocess_ms),
        _ => (0.0, 0.0),
    };
    Timings {
        decode_ms,
        preprocess_ms,
        inference_ms,
        queue_ms: inference_start
            .saturating_duration_since(c.received_at)
            .as_secs_f64()
            * 1000.0,
        batch_size: n,
    }
}

fn new_decision(c: &Classified) -> NewDecision<'_> {
    let p: &Prepared = &c.prepared;
    NewDecision {
        event: &p.event,
        image: ImageRow {
            sha256: p.sha256,
            media_type: &p.media_type,
            width: p.width,
            height: p.height,
            bytes: &p.bytes,
        },
        classification: &c.classification,
        timings: c.timings,
    }
}
