//! MLLP framing for tokio: `0x0B` + message + `0x1C 0x0D`. A read is not a message: frames may
//! be split across reads or arrive several per read; bytes outside a frame are skipped and
//! counted; a frame over the size cap is an error; EOF inside a frame is an error, EOF between
//! frames is a clean end.
//!
//! Some LIS end a frame with `0x1C` alone. HL7 text never holds `0x1C`, so a `0x1C` ends the
//! frame when `0x0D` follows, when the next frame's `0x0B` follows, or when it is the last byte
//! received so far (such an LIS sends nothing more until it hears from us). A `0x1C` followed by
//! other bytes is kept as data. If the `0x0D` of a normal end arrives in a later read, it is
//! skipped as a byte outside a frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

pub const START: u8 = 0x0B;
pub const END: [u8; 2] = [0x1C, 0x0D];

#[derive(Debug, thiserror::Error)]
pub enum MllpError {
    #[error("MLLP frame larger than {max} bytes")]
    FrameTooLarge { max: usize },
    #[error("connection closed inside an MLLP frame ({buffered} bytes buffered)")]
    TruncatedFrame { buffered: usize },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Codec state: whether a start byte has been seen, and how far the end marker was searched.
#[derive(Debug)]
pub struct MllpCodec {
    max_frame: usize,
    in_frame: bool,
    scanned: usize,
    junk_bytes: u64,
}

impl MllpCodec {
    pub fn new(max_frame: usize) -> MllpCodec {
        MllpCodec {
            max_frame,
            in_frame: false,
            scanned: 0,
            junk_bytes: 0,
        }
    }

    /// Bytes skipped outside frames since this codec was made.
    pub fn junk_bytes(&self) -> u64 {
        self.junk_bytes
    }

    /// Drops bytes before the next start byte; returns false when none is buffered yet.
    fn seek_start(&mut self, src: &mut BytesMut) -> bool {
        let skip = src.iter().position(|&b| b == START);
        let n = skip.unwrap_or(src.len());
        if n > 0 {
            self.junk_bytes += n as u64;
            // A line ending between frames is common and harmless; anything else is worth a look.
            if src[..n].iter().any(|b| !matches!(b, b'\r' | b'\n')) {
                tracing::warn!(bytes = n, "MLLP: skipped bytes outside a frame");
            }
            src.advance(n);
        }
        if skip.is_some() {
            src.advance(1);
            self.in_frame = true;
            self.scanned = 0;
        }
        skip.is_some()
    }
}

impl Decoder for MllpCodec {
    type Item = Bytes;
    type Error = MllpError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, MllpError> {
        if !self.in_frame && !self.seek_start(src) {
            return Ok(None);
        }
        // Resume the search one byte early: the 0x1C may have been the last byte seen.
        let from = self.scanned.saturating_sub(1);
        let end = src[from..]
            .iter()
            .enumerate()
            .find(|&(i, &b)| {
                b == END[0] && matches!(src.get(from + i + 1), None | Some(&0x0D) | Some(&START))
            })
            .map(|(i, _)| i + from);
        match end {
            Some(i) if i > self.max_frame => Err(MllpError::FrameTooLarge {
                max: self.max_frame,
            }),
            Some(i) => {
                let body = src.split_to(i).freeze();
                let marker = if src.get(1) == Some(&END[1]) { 2 } else { 1 };
                src.advance(marker);
                self.in_frame = false;
                self.scanned = 0;
                Ok(Some(body))
            }
            None if src.len() > self.max_frame + 1 => Err(MllpError::FrameTooLarge {
                max: self.max_frame,
            }),
            None => {
                self.scanned = src.len();
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, MllpError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if self.in_frame {
            return Err(MllpError::TruncatedFrame {
                buffered: src.len(),
            });
        }
        // Only junk (already counted) after the last frame: a clean end.
        src.clear();
        Ok(None)
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for MllpCodec {
    type Error = MllpError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), MllpError> {
        let body = item.as_ref();
        dst.reserve(body.len() + 3);
        dst.put_u8(START);
        dst.put_slice(body);
        dst.put_slice(&END);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &str) -> Vec<u8> {
        let mut v = vec![START];
        v.extend_from_slice(s.as_bytes());
        v.extend_from_slice(&END);
        v
    }

    fn decode_all(codec: &mut MllpCodec, buf: &mut BytesMut) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(f) = codec.decode(buf).unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn one_frame_split_across_every_byte() {
        let bytes = frame("MSH|a\rMSA|AA|1\r");
        let mut codec = MllpCodec::new(1024);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in bytes {
            buf.put_u8(b);
            got.extend(decode_all(&mut codec, &mut buf));
        }
        assert_eq!(got, vec![Bytes::from_static(b"MSH|a\rMSA|AA|1\r")]);
        assert!(buf.is_empty());
    }

    #[test]
    fn several_frames_in_one_read_with_junk_between() {
        let mut buf = BytesMut::new();
        buf.put_slice(b"xx");
        buf.put_slice(&frame("one"));
        buf.put_slice(b"\r\njunk");
        buf.put_slice(&frame("two"));
        let mut codec = MllpCodec::new(1024);
        let got = decode_all(&mut codec, &mut buf);
        assert_eq!(
            got,
            vec![Bytes::from_static(b"one"), Bytes::from_static(b"two")]
        );
        assert_eq!(codec.junk_bytes(), 8);
    }

    #[test]
    fn lone_end_byte_inside_body_is_data() {
        let mut buf = BytesMut::from(&frame("a\x1cb")[..]);
        let got = decode_all(&mut MllpCodec::new(1024), &mut buf);
        assert_eq!(got, vec![Bytes::from_static(b"a\x1cb")]);
    }

    #[test]
    fn a_frame_ended_by_0x1c_alone_is_accepted() {
        // The LIS's last frame, 0x1C and nothing after it.
        let mut buf = BytesMut::from(&b"\x0bMSH|a\rMSA|AA|1\r\x1c"[..]);
        let mut codec = MllpCodec::new(1024);
        assert_eq!(
            decode_all(&mut codec, &mut buf),
            vec![Bytes::from_static(b"MSH|a\rMSA|AA|1\r")]
        );
        // Two such frames back to back, and a normal one after them.
        let mut buf = BytesMut::from(&b"\x0bone\x1c\x0btwo\x1c\x0bthree\x1c\x0d"[..]);
        assert_eq!(
            decode_all(&mut codec, &mut buf),
            vec![
                Bytes::from_static(b"one"),
                Bytes::from_static(b"two"),
                Bytes::from_static(b"three")
            ]
        );
        assert_eq!(codec.junk_bytes(), 0);
        // A normal end split between two reads: the late 0x0D is skipped, not a frame.
        let mut buf = BytesMut::from(&b"\x0bfour\x1c"[..]);
        assert_eq!(
            decode_all(&mut codec, &mut buf),
            vec![Bytes::from_static(b"four")]
        );
        buf.put_slice(b"\x0d\x0bfive\x1c\x0d");
        assert_eq!(
            decode_all(&mut codec, &mut buf),
            vec![Bytes::from_static(b"five")]
        );
        assert_eq!(codec.junk_bytes(), 1);
    }

    #[test]
    fn oversized_frame_is_an_error_complete_or_not() {
        let big = "x".repeat(2000);
        let mut complete = BytesMut::from(&frame(&big)[..]);
        assert!(matches!(
            MllpCodec::new(1024).decode(&mut complete),
            Err(MllpError::FrameTooLarge { max: 1024 })
        ));
        let mut open = BytesMut::from(&frame(&big)[..1500]);
        assert!(matches!(
            MllpCodec::new(1024).decode(&mut open),
            Err(MllpError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn frame_of_exactly_max_is_accepted() {
        let body = "y".repeat(1024);
        let mut buf = BytesMut::from(&frame(&body)[..]);
        assert_eq!(
            decode_all(&mut MllpCodec::new(1024), &mut buf)[0].len(),
            1024
        );
    }

    #[test]
    fn eof_between_frames_is_clean_and_inside_a_frame_is_an_error() {
        let mut codec = MllpCodec::new(1024);
        let mut buf = BytesMut::from(&frame("done")[..]);
        buf.put_slice(b"trailing junk");
        assert_eq!(
            codec.decode_eof(&mut buf).unwrap(),
            Some(Bytes::from_static(b"done"))
        );
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);

        let mut codec = MllpCodec::new(1024);
        let mut buf = BytesMut::from(&b"\x0bMSH|half"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(MllpError::TruncatedFrame { buffered: 8 })
        ));
    }

    #[test]
    fn encode_wraps_the_body() {
        let mut dst = BytesMut::new();
        MllpCodec::new(1024).encode(b"MSH|x\r", &mut dst).unwrap();
        assert_eq!(&dst[..], &frame("MSH|x\r")[..]);
    }
}
