//! Image decoding at the edge: PNG, JPEG, TIFF and BMP to 8-bit RGB, with the byte and pixel
//! limits checked before anything is decompressed, so a decompression bomb costs nothing, and
//! every decoder allocation (header parsing included) capped at [`ImageLimits`]' budget.

use crate::config::ImageSettings;
use image::{ImageFormat, ImageReader, RgbImage};
use std::io::Cursor;
use std::time::{Duration, Instant};

/// Why an image cannot be classified. Both are permanent: the same bytes fail the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("image too large: {0}")]
    TooLarge(String),
    #[error("image undecodable: {0}")]
    Undecodable(String),
}

impl ImageError {
    /// The dead-letter reason code the worker records.
    pub fn reason_code(&self) -> &'static str {
        match self {
            ImageError::TooLarge(_) => "image_too_large",
            ImageError::Undecodable(_) => "image_undecodable",
        }
    }
}

/// The accepted size of an image, from `[images]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_bytes: u64,
    pub max_width: u32,
    pub max_height: u32,
    /// Longest a decode may take; longer is refused (`Undecodable`), never retried.
    pub decode_budget: Duration,
}

impl From<&ImageSettings> for ImageLimits {
    fn from(s: &ImageSettings) -> Self {
        ImageLimits {
            max_bytes: s.max_bytes,
            max_width: s.max_width,
            max_height: s.max_height,
            decode_budget: Duration::from_millis(s.decode_budget_ms),
        }
    }
}

impl ImageLimits {
    /// What the decoder may allocate: the largest accepted image at 16 bits × 4 channels,
    /// plus slack for decoder state. Anything beyond is a bomb, not a photo.
    fn max_alloc(&self) -> u64 {
        u64::from(self.max_width) * u64::from(self.max_height) * 8 + (16 << 20)
    }
}

/// A decoded image in 8-bit RGB and the format it came in.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    pub rgb: RgbImage,
    pub format: ImageFormat,
}

impl DecodedImage {
    /// IANA media type of the source format.
    pub fn media_type(&self) -> &'static str {
        media_type(self.format)
    }

    pub fn width(&self) -> u32 {
        self.rgb.width()
    }

    pub fn height(&self) -> u32 {
        self.rgb.height()
    }
}

fn media_type(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "image/png",
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Tiff => "image/tiff",
        ImageFormat::Bmp => "image/bmp",
        _ => "application/octet-stream",
    }
}

type MemReader<'a> = ImageReader<Cursor<&'a [u8]>>;

/// A reader for `bytes` whose decoder may allocate at most `max_alloc` bytes. Header parsing
/// needs the cap too: TIFF tag arrays and PNG metadata chunks are read with the header.
fn reader(bytes: &[u8], max_alloc: u64) -> Result<(MemReader<'_>, ImageFormat), ImageError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Undecodable(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_alloc);
    reader.limits(limits);
    match reader.format() {
        Some(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Tiff | ImageFormat::Bmp)) => {
            Ok((reader, f))
        }
        Some(other) => Err(ImageError::Undecodable(format!(
            "unsupported format {other:?}"
        ))),
        None => Err(ImageError::Undecodable(
            "not a PNG, JPEG, TIFF or BMP image".into(),
        )),
    }
}

fn map_decode_error(e: image::ImageError) -> ImageError {
    match e {
        image::ImageError::Limits(l) => ImageError::TooLarge(l.to_string()),
        other => ImageError::Undecodable(other.to_string()),
    }
}

/// Decodes `bytes` to RGB8: byte length first, then the header's dimensions, then the pixels
/// under decoder limits. Truncated or corrupt data is `Undecodable`, never a panic.
pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<DecodedImage, ImageError> {
    let started = Instant::now();
    let decoded = decode_within_limits(bytes, limits)?;
    // A decoder cannot be interrupted; the pixel limits bound its work, and the budget makes
    // an image that is slow anyway a permanent failure, so it is not decoded again.
    let took = started.elapsed();
    if took > limits.decode_budget {
        return Err(ImageError::Undecodable(format!(
            "decoding took {} ms, over the budget of {} ms (images.decode_budget_ms)",
            took.as_millis(),
            limits.decode_budget.as_millis()
        )));
    }
    Ok(decoded)
}

fn decode_within_limits(bytes: &[u8], limits: &ImageLimits) -> Result<DecodedImage, ImageError> {
    if bytes.len() as u64 > limits.max_bytes {
        return Err(ImageError::TooLarge(format!(
            "{} bytes, limit {}",
            bytes.len(),
            limits.max_bytes
        )));
    }
    let (_, format) = reader(bytes, limits.max_alloc())?;
    let stripped = (format == ImageFormat::Png)
        .then(|| png_without_iccp(bytes))
        .flatten();
    let bytes = stripped.as_deref().unwrap_or(bytes);
    let (probe, _) = reader(bytes, limits.max_alloc())?;
    if format == ImageFormat::Bmp
        && let Some((w, h)) = bmp_declared_size(bytes)
    {
        check_size(w, h, limits)?;
    }
    let (w, h) = probe.into_dimensions().map_err(map_decode_error)?;
    check_size(w.into(), h.into(), limits)?;
    if w == 0 || h == 0 {
        return Err(ImageError::Undecodable(format!("empty image {w}x{h}")));
    }
    let rgb = if format == ImageFormat::Jpeg {
        decode_jpeg(bytes)?
    } else {
        let (mut reader, _) = reader(bytes, limits.max_alloc())?;
        let mut decoder_limits = image::Limits::default();
        decoder_limits.max_image_width = Some(limits.max_width);
        decoder_limits.max_image_height = Some(limits.max_height);
        decoder_limits.max_alloc = Some(limits.max_alloc());
        reader.limits(decoder_limits);
        reader.decode().map_err(map_decode_error)?.into_rgb8()
    };
    Ok(DecodedImage { rgb, format })
}

fn check_size(w: u64, h: u64, limits: &ImageLimits) -> Result<(), ImageError> {
    if w > limits.max_width.into() || h > limits.max_height.into() {
        return Err(ImageError::TooLarge(format!(
            "{w}x{h} pixels, limit {}x{}",
            limits.max_width, limits.max_height
        )));
    }
    Ok(())
}

/// The PNG without its iCCP chunks, or `None` when it has none. The decoder inflates the colour
/// profile while reading the header, up to its whole allocation cap, and the profile is never
/// used (pixels are taken as they are): a small file could make every decode cost the cap.
fn png_without_iccp(bytes: &[u8]) -> Option<Vec<u8>> {
    const SIGNATURE: usize = 8;
    let mut chunks = Vec::new();
    let mut at = SIGNATURE;
    // Length, type, data, CRC; a cut or lying last chunk is kept whole for the decoder to refuse.
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let end = at.saturating_add(12).saturating_add(len).min(bytes.len());
        chunks.push((at..end, &head[4..8] == b"iCCP"));
        at = end;
    }
    if !chunks.iter().any(|(_, iccp)| *iccp) {
        return None;
    }
    let mut out = bytes[..SIGNATURE.min(bytes.len())].to_vec();
    for (range, iccp) in chunks {
        if !iccp {
            out.extend_from_slice(&bytes[range]);
        }
    }
    out.extend_from_slice(&bytes[at.min(bytes.len())..]);
    Some(out)
}

/// The size a BMP info header declares. The BMP decoder refuses more than 65535 pixels a side
/// as a format error before the size can be read back, so over-limit sizes are caught here.
fn bmp_declared_size(bytes: &[u8]) -> Option<(u64, u64)> {
    let le16 = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let le32 = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    if le32(14)? == 12 {
        // OS/2 core header: unsigned 16-bit width and height.
        return Some((le16(18)?.into(), le16(20)?.into()));
    }
    // Signed 32-bit; a negative height means top-down rows.
    let signed = |v: u32| u64::from((v as i32).unsigned_abs());
    Some((signed(le32(18)?), signed(le32(22)?)))
}

/// JPEG in strict mode: image's own JPEG decoder fills missing scan data with grey and reports
/// success, which would grade a truncated photo. Dimensions were checked by the caller.
fn decode_jpeg(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    use zune_jpeg::zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options};
    let opts = options::DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), opts);
    let pixels = decoder
        .decode()
        .map_err(|e| ImageError::Undecodable(format!("JPEG: {e}")))?;
    let info = decoder
        .info()
        .ok_or_else(|| ImageError::Undecodable("JPEG: no frame header".into()))?;
    RgbImage::from_raw(info.width.into(), info.height.into(), pixels)
        .ok_or_else(|| ImageError::Undecodable("JPEG: pixel data does not match the frame".into()))
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
