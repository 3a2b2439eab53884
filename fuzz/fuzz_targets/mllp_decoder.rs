//! MLLP decoder: the stream arrives in fuzzer-chosen chunks. Asserts: no panic, no frame over
//! the cap, no frame holding an end marker, and the same frames and the same verdict (clean end
//! or error) as a plain reading of the framing rules over the whole stream at once.
#![no_main]

use bytes::BytesMut;
use iari::deliver::mllp::{END, MllpCodec, START};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

const MAX: usize = 64;

/// Frames decoded until the first error, and whether there was one.
fn decode_chunked(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut codec = MllpCodec::new(MAX);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f.to_vec()),
                Ok(None) => break,
                Err(_) => return (frames, true),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(f)) => frames.push(f.to_vec()),
            Ok(None) => return (frames, false),
            Err(_) => return (frames, true),
        }
    }
}

/// The framing rules read directly: skip to a start byte, the frame runs to the first end
/// marker after it; a frame over MAX, or a start without an end, is an error.
fn reference(stream: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        let Some(s) = rest.iter().position(|&b| b == START) else {
            return (frames, false);
        };
        let body = &rest[s + 1..];
        let Some(e) = body.windows(2).position(|w| w == END) else {
            return (frames, true);
        };
        if e > MAX {
            return (frames, true);
        }
        frames.push(body[..e].to_vec());
        rest = &body[e + END.len()..];
    }
}

fuzz_target!(|chunks: Vec<&[u8]>| {
    let (frames, failed) = decode_chunked(&chunks);
    for f in &frames {
        assert!(f.len() <= MAX, "frame of {} bytes", f.len());
        assert!(!f.windows(2).any(|w| w == END), "end marker inside a frame");
    }
    let whole: Vec<u8> = chunks.concat();
    assert_eq!((frames, failed), reference(&whole));
});
