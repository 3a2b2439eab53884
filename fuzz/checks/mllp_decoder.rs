//! MLLP decoder check, shared by the cargo-fuzz target and the bounded stable run
//! (`tests/fuzz`): the stream arrives in chunks (reads). Asserts: no panic, no frame over the
//! cap, no frame holding an end marker, and the same frames and the same verdict (clean end or
//! error) as a plain reading of the framing rules over the whole stream and where its reads
//! ended. Where the reads end matters only for a `0x1C` alone at the end of a read, which the
//! codec takes as a frame's end (some LIS end frames so and wait).

use bytes::BytesMut;
use iari::deliver::mllp::{END, MllpCodec, START};
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

/// The framing rules (`deliver::mllp`'s) read directly over the whole stream, given where the
/// reads ended: skip to a start byte; the frame runs to the first `0x1C` that is followed by
/// `0x0D` or by the next frame's `0x0B`, or that is the last byte of a read (an LIS that ends its
/// frame with `0x1C` alone and waits); a `0x0D` right after it belongs to the end marker. A frame
/// over MAX, or a start without an end, is an error.
fn reference(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let stream: Vec<u8> = chunks.concat();
    let mut read_ends = std::collections::HashSet::new();
    let mut at = 0;
    for c in chunks {
        at += c.len();
        read_ends.insert(at);
    }
    let ends_frame = |i: usize| {
        stream[i] == END[0]
            && (read_ends.contains(&(i + 1))
                || matches!(stream.get(i + 1), Some(&0x0D) | Some(&START)))
    };
    let mut frames = Vec::new();
    let mut pos = 0;
    loop {
        let Some(s) = stream[pos..].iter().position(|&b| b == START) else {
            return (frames, false);
        };
        let body = pos + s + 1;
        let Some(e) = (body..stream.len()).find(|&i| ends_frame(i)) else {
            return (frames, true);
        };
        if e - body > MAX {
            return (frames, true);
        }
        frames.push(stream[body..e].to_vec());
        pos = e + if stream.get(e + 1) == Some(&END[1]) {
            2
        } else {
            1
        };
    }
}

/// The check on one chunked stream.
pub fn check(chunks: &[&[u8]]) {
    let (frames, failed) = decode_chunked(chunks);
    for f in &frames {
        assert!(f.len() <= MAX, "frame of {} bytes", f.len());
        assert!(!f.windows(2).any(|w| w == END), "end marker inside a frame");
    }
    assert_eq!((frames, failed), reference(chunks));
}
