//! Per-capture work before inference: parse the event, fetch the bytes, decode within the
//! limits, preprocess into the model's tensor. CPU- and file-bound: runs on blocking threads.

use crate::classify::{ImageLimits, Preprocessor, decode};
use crate::domain::Sha256Digest;
use crate::domain::{CaptureEvent, DeadLetterReason, Failure};
use crate::ingest::event::parse;
use crate::ingest::source::ImageRoot;
use crate::ingest::{EventLimits, load_image};
use std::time::Instant;

/// What prepare needs, shared by every capture of a batch.
#[derive(Debug, Clone)]
pub struct PrepareContext {
    pub events: EventLimits,
    pub images: ImageLimits,
    pub root: ImageRoot,
}

/// A capture ready for inference; its tensor is in the batch's packed input.
#[derive(Debug)]
pub struct Prepared {
    pub event: CaptureEvent,
    pub bytes: Vec<u8>,
    pub sha256: Sha256Digest,
    pub media_type: String,
    pub width: u32,
    pub height: u32,
    pub decode_ms: f64,
    pub preprocess_ms: f64,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Parses and prepares one message body, preprocessing straight into `out` (one image's slot
/// of the batch input); `rows` is the preprocessor's scratch, reused from capture to capture.
pub fn prepare_one(
    body: &[u8],
    ctx: &PrepareContext,
    pre: &Preprocessor,
    out: &mut [f32],
    rows: &mut Vec<f64>,
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
    pre.run_into_with(&decoded.rgb, out, rows);
    let preprocess_ms = ms(t1);
    let media_type = decoded.media_type().to_string();
    Ok(Prepared {
        width: decoded.width(),
        height: decoded.height(),
        event,
        bytes: loaded.bytes,
        sha256: loaded.sha256,
        media_type,
        decode_ms,
        preprocess_ms,
    })
}

/// Prepares every body, spread over the available cores; results in input order. `input`
/// holds one [`Preprocessor::tensor_len`] slot per body; on return it holds the tensors of
/// the successful captures only, packed in order (NCHW, ready for the engine).
pub fn prepare_all(
    bodies: &[&[u8]],
    ctx: &PrepareContext,
    pre: &Preprocessor,
    input: &mut Vec<f32>,
) -> Vec<Result<Prepared, Failure>> {
    let len = pre.tensor_len();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let results = run_chunked(bodies, input, len, threads, |body, out, rows| {
        prepare_one(body, ctx, pre, out, rows)
    });
    // Failed captures leave holes: close them so the input is exactly the successful ones.
    let mut kept = 0;
    for (i, r) in results.iter().enumerate() {
        if r.is_ok() {
            if kept != i {
                input.copy_within(i * len..(i + 1) * len, kept * len);
            }
            kept += 1;
        }
    }
    input.truncate(kept * len);
    results
}

/// `one` over every body, on up to `threads` scoped threads, each body writing its own
/// `len`-value slot of `input`. A panic (a decoder bug on a hostile image) fails that body
/// alone: its neighbours in the chunk are still prepared.
fn run_chunked<T: Send>(
    bodies: &[&[u8]],
    input: &mut Vec<f32>,
    len: usize,
    threads: usize,
    one: impl Fn(&[u8], &mut [f32], &mut Vec<f64>) -> Result<T, Failure> + Sync,
) -> Vec<Result<T, Failure>> {
    input.resize(bodies.len() * len, 0.0);
    let chunk = bodies.len().div_ceil(threads.max(1)).max(1);
    let run = |part: &[&[u8]], slots: &mut [f32]| {
        let mut rows = Vec::new();
        part.iter()
            .zip(slots.chunks_exact_mut(len))
            .map(|(b, out)| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| one(b, out, &mut rows)))
                    .unwrap_or_else(|_| {
                        // The scratch may be half-written; the next body starts clean.
                        rows.clear();
                        Err(Failure::new(
                            DeadLetterReason::ImageUndecodable,
                            "the decoder panicked on this image",
                        ))
                    })
            })
            .collect::<Vec<_>>()
    };
    if bodies.len() <= 1 || threads <= 1 {
        return run(bodies, input);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .chunks(chunk)
            .zip(input.chunks_mut(chunk * len))
            .map(|(part, slots)| (part.len(), s.spawn(move || run(part, slots))))
            .collect();
        handles
            .into_iter()
            .flat_map(|(n, h)| {
                // Each body's panic is caught above; this is the thread itself failing.
                h.join().unwrap_or_else(|_| {
                    let f = Failure::new(
                        DeadLetterReason::ClassificationFailed,
                        "prepare thread failed",
                    );
                    (0..n).map(|_| Err(f.clone())).collect()
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_fails_only_its_own_image() {
        for threads in [1, 2] {
            let bodies: [&[u8]; 4] = [b"a", b"boom", b"c", b"d"];
            let mut input = Vec::new();
            let out = run_chunked(&bodies, &mut input, 2, threads, |b, slot, _| {
                assert_ne!(b, b"boom", "a decoder bug");
                slot.fill(f32::from(b[0]));
                Ok(b[0])
            });
            let ok: Vec<Option<u8>> = out.iter().map(|r| r.as_ref().ok().copied()).collect();
            assert_eq!(
                ok,
                [Some(b'a'), None, Some(b'c'), Some(b'd')],
                "{threads} threads"
            );
            let f = out[1].as_ref().unwrap_err();
            assert_eq!(f.reason, DeadLetterReason::ImageUndecodable);
            assert_eq!(input[6], f32::from(b'd'));
        }
    }
}
