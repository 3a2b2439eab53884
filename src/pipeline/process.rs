//! One processing step, free of AMQP: message bodies in, one [`Disposition`] per message out.
//! prepare (blocking threads) → one inference batch (blocking) → one transaction → dispositions.

use super::outcome::{Disposition, fail, fail_all, settle_write, unreachable_failure};
use super::prepare::{PrepareContext, Prepared, prepare_all};
use crate::classify::Engine;
use crate::domain::Classification;
use crate::ingest::{DeadLetterReason, Failure};
use crate::metrics::metrics;
use crate::store::decisions::{
    ImageRow, NewDecision, Provenance, Timings, WriteOutcome, write_batch,
};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A message taken from the queue, as the processing step sees it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub body: Vec<u8>,
    /// Earlier deliveries of this message (`x-delivery-count`; 0 on the first).
    pub delivery_count: u32,
    pub received_at: Instant,
}

/// The stages and what they share; cheap to clone.
#[derive(Clone)]
pub struct Processor {
    pub engine: Arc<Engine>,
    pub pool: PgPool,
    pub prepare: Arc<PrepareContext>,
    pub provenance: Arc<Provenance>,
    /// Quorum queue `x-delivery-limit`: the last attempt dead-letters transient failures.
    pub delivery_limit: u32,
}

fn observe(stage: &str, since: Instant) {
    metrics()
        .stage_seconds
        .with_label_values(&[stage])
        .observe(since.elapsed().as_secs_f64());
}

/// A batch after inference, waiting for the store: failures already have their disposition.
pub struct Classified {
    out: Vec<Option<Disposition>>,
    counts: Vec<u32>,
    received: Vec<Instant>,
    ready: Vec<(usize, Prepared)>,
    /// The tensors of `ready`, packed NCHW in the same order, until inference has run.
    input: Vec<f32>,
    classes: Vec<Classification>,
    timings: Vec<Timings>,
}

impl Processor {
    /// Processes one batch: [`Processor::classify_batch`] then [`Processor::store_batch`].
    pub async fn process_batch(
        &self,
        batch: &[Incoming],
        cancel: &CancellationToken,
    ) -> Vec<Disposition> {
        let classified = self.classify_batch(batch).await;
        self.store_batch(classified, cancel).await
    }

    /// Parses, fetches, decodes and preprocesses (blocking threads), then one inference run.
    pub async fn classify_batch(&self, batch: &[Incoming]) -> Classified {
        let prepared = self.prepare_batch(batch).await;
        self.infer_batch(prepared).await
    }

    /// Parses, fetches, decodes and preprocesses on blocking threads; failures get their
    /// dispositions here, the rest wait for [`Processor::infer_batch`].
    pub async fn prepare_batch(&self, batch: &[Incoming]) -> Classified {
        metrics()
            .captures_received
            .with_label_values(&[] as &[&str])
            .inc_by(batch.len() as u64);
        let t0 = Instant::now();
        let (prepared, input) = self.prepare(batch).await;
        observe("prepare", t0);
        let mut c = Classified {
            out: vec![None; batch.len()],
            counts: batch.iter().map(|m| m.delivery_count).collect(),
            received: batch.iter().map(|m| m.received_at).collect(),
            ready: Vec::new(),
            input,
            classes: Vec::new(),
            timings: Vec::new(),
        };
        for (i, p) in prepared.into_iter().enumerate() {
            match p {
                Ok(p) => {
                    let stage = &metrics().stage_seconds;
                    stage
                        .with_label_values(&["decode"])
                        .observe(p.decode_ms / 1000.0);
                    stage
                        .with_label_values(&["preprocess"])
                        .observe(p.preprocess_ms / 1000.0);
                    c.ready.push((i, p));
                }
                Err(f) => c.out[i] = Some(fail(f, c.counts[i], self.delivery_limit)),
            }
        }
        c
    }

    /// One inference run over the prepared images of the batch.
    pub async fn infer_batch(&self, mut c: Classified) -> Classified {
        if c.ready.is_empty() {
            self.engine.recycle_input(std::mem::take(&mut c.input));
        } else {
            self.infer(&mut c).await;
        }
        c
    }

    /// Commits the classified captures in one transaction; returns every message's disposition.
    /// Store outages are retried here while the caller holds the acks; `cancel` bounds that
    /// wait (the messages are then requeued, never acked).
    pub async fn store_batch(
        &self,
        mut c: Classified,
        cancel: &CancellationToken,
    ) -> Vec<Disposition> {
        if !c.ready.is_empty() {
            let rows: Vec<NewDecision<'_>> = c
                .ready
                .iter()
                .zip(&c.classes)
                .zip(&c.timings)
                .map(|(((_, p), cl), t)| new_decision(p, cl, *t))
                .collect();
            let t1 = Instant::now();
            let written = self.write_with_retry(&rows, cancel).await;
            observe("store", t1);
            let settled: Vec<(usize, Disposition)> = match written {
                Ok(outcomes) => c
                    .ready
                    .iter()
                    .zip(&c.classes)
                    .zip(outcomes)
                    .map(|(((i, p), cl), o)| (*i, settle_write(o, p, cl)))
                    .collect(),
                Err(e) => fail_all(
                    &c.ready,
                    &c.counts,
                    self.delivery_limit,
                    DeadLetterReason::StoreFailed,
                    &e,
                ),
            };
            for (i, d) in settled {
                c.out[i] = Some(d);
            }
        }
        c.out
            .into_iter()
            .map(|d| d.unwrap_or_else(unreachable_failure))
            .collect()
    }

    /// The per-capture results and the packed input of the successful ones.
    async fn prepare(&self, batch: &[Incoming]) -> (Vec<Result<Prepared, Failure>>, Vec<f32>) {
        let bodies: Vec<Vec<u8>> = batch.iter().map(|m| m.body.clone()).collect();
        let (ctx, engine) = (self.prepare.clone(), self.engine.clone());
        let job = move || {
            let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
            let mut input = engine.input_buffer(refs.len());
            let results = prepare_all(&refs, &ctx, engine.preprocessor(), &mut input);
            (results, input)
        };
        tokio::task::spawn_blocking(job).await.unwrap_or_else(|e| {
            let f = Failure::new(
                DeadLetterReason::ClassificationFailed,
                format!("prepare: {e}"),
            );
            (
                (0..batch.len()).map(|_| Err(f.clone())).collect(),
                Vec::new(),
            )
        })
    }

    /// One inference run over the prepared images; on failure they get their dispositions.
    async fn infer(&self, c: &mut Classified) {
        let shas: Vec<_> = c.ready.iter().map(|(_, p)| p.sha256).collect();
        let input = std::mem::take(&mut c.input);
        metrics()
            .batch_size
            .with_label_values(&[] as &[&str])
            .observe(shas.len() as f64);
        let t0 = Instant::now();
        let engine = self.engine.clone();
        // The packed input goes to the engine as is (no per-image copy) and comes back for reuse.
        let result = tokio::task::spawn_blocking(move || {
            let r = engine.classify_packed(&shas, &input);
            engine.recycle_input(input);
            r
        })
        .await;
        observe("inference", t0);
        let inference_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let error = match result {
            Ok(Ok(classes)) => {
                let n = c.ready.len();
                c.timings = c
                    .ready
                    .iter()
                    .map(|(i, p)| timings(p, c.received[*i], t0, inference_ms, n))
                    .collect();
                c.classes = classes;
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        let reason = DeadLetterReason::ClassificationFailed;
        for (i, d) in fail_all(&c.ready, &c.counts, self.delivery_limit, reason, &error) {
            c.out[i] = Some(d);
        }
        c.ready.clear();
    }

    /// Retries transient database errors with backoff until they pass or `cancel` fires.
    async fn write_with_retry(
        &self,
        rows: &[NewDecision<'_>],
        cancel: &CancellationToken,
    ) -> Result<Vec<WriteOutcome>, String> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match write_batch(&self.pool, &self.provenance, rows).await {
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

fn timings(
    p: &Prepared,
    received_at: Instant,
    inference_start: Instant,
    inference_ms: f64,
    n: usize,
) -> Timings {
    Timings {
        decode_ms: p.decode_ms,
        preprocess_ms: p.preprocess_ms,
        inference_ms,
        queue_ms: inference_start
            .saturating_duration_since(received_at)
            .as_secs_f64()
            * 1000.0,
        batch_size: n,
    }
}

fn new_decision<'a>(p: &'a Prepared, c: &'a Classification, timings: Timings) -> NewDecision<'a> {
    NewDecision {
        event: &p.event,
        image: ImageRow {
            sha256: p.sha256,
            media_type: &p.media_type,
            width: p.width,
            height: p.height,
            bytes: &p.bytes,
        },
        classification: c,
        timings,
    }
}
