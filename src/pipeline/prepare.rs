//! Per-capture work before inference: parse the event, fetch the bytes, decode within the
//! limits, preprocess into the model's tensor. CPU- and file-bound: runs on blocking threads.

use crate::classify::{ImageLimits, Preprocessor, decode};
use crate::domain::Sha256Digest;
use crate::ingest::event::parse;
use crate::ingest::source::ImageRoot;
use crate::ingest::{CaptureEvent, DeadLetterReason, EventLimits, Failure, load_image};
use std::time::Instant;

/// What prepare needs, shared by every capture of a batch.
#[derive(Debug, Clone)]
pub struct PrepareContext {
    pub events: EventLimits,
    pub images: ImageLimits,
    pub root: ImageRoot,
}

/// A capture ready for inference.
#[derive(Debug)]
pub struct Prepared {
    pub event: CaptureEvent,
    pub bytes: Vec<u8>,
    pub sha256: Sha256Digest,
    pub media_type: String,
    pub width: u32,
    pub height: u32,
    pub tensor: Vec<f32>,
    pub decode_ms: f64,
    pub preprocess_ms: f64,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Parses and prepares one message body.
pub fn prepare_one(
    body: &[u8],
    ctx: &PrepareContext,
    pre: &Preprocessor,
) -> Result<Prepared, Failure> {
    let event = parse(body, &ctx.events)?;
    let t0 = Instant::now();
    let loaded = load_image(&event.image, &ctx.root)?;
    let decoded = decode(&loaded.bytes, &ctx.images).map_err(|e| {
        let reason = match e {
            crate::classify::ImageError::TooLarge(_) => DeadLetterReason::ImageTooLarge,
            crate::classify::ImageError::Undecodable(_) => DeadLetterReason::ImageUndecodable,
        };
        Failure::new(reason, e.to_string())
    })?;
    // The format is read from the bytes; an inline image's declared type must agree with it.
    if let Some(declared) = &loaded.media_type
        && declared != decoded.media_type()
    {
        return Err(Failure::new(
            DeadLetterReason::ImageUndecodable,
            format!(
                "image.media_type is {declared} but the bytes are {}",
                decoded.media_type()
            ),
        ));
    }
    let decode_ms = ms(t0);
    let t1 = Instant::now();
    let tensor = pre.run(&decoded.rgb);
    let preprocess_ms = ms(t1);
    let media_type = decoded.media_type().to_string();
    Ok(Prepared {
        width: decoded.width(),
        height: decoded.height(),
        event,
        bytes: loaded.bytes,
        sha256: loaded.sha256,
        media_type,
        tensor,
        decode_ms,
        preprocess_ms,
    })
}

/// Prepares every body, spread over the available cores; results in input order.
pub fn prepare_all(
    bodies: &[&[u8]],
    ctx: &PrepareContext,
    pre: &Preprocessor,
) -> Vec<Result<Prepared, Failure>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = bodies.len().div_ceil(threads).max(1);
    if bodies.len() <= 1 || threads == 1 {
        return bodies.iter().map(|b| prepare_one(b, ctx, pre)).collect();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .chunks(chunk)
            .map(|part| {
                let work = move || {
                    part.iter()
                        .map(|b| prepare_one(b, ctx, pre))
                        .collect::<Vec<_>>()
                };
                (part.len(), s.spawn(work))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(n, h)| {
                // A panic in a decoder is a bug; fail those captures, keep the worker.
                h.join().unwrap_or_else(|_| {
                    let f = Failure::new(DeadLetterReason::ImageUndecodable, "decoder panicked");
                    (0..n).map(|_| Err(f.clone())).collect()
                })
            })
            .collect()
    })
}
