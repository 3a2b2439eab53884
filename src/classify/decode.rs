//! Image decoding at the edge: PNG, JPEG, TIFF and BMP to 8-bit RGB, with the byte and pixel
//! limits checked before anything is decompressed, so a decompression bomb costs nothing.

use crate::config::ImageSettings;
use image::{ImageFormat, ImageReader, RgbImage};
use std::io::Cursor;

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
}

impl From<&ImageSettings> for ImageLimits {
    fn from(s: &ImageSettings) -> Self {
        ImageLimits {
            max_bytes: s.max_bytes,
            max_width: s.max_width,
            max_height: s.max_height,
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

fn reader(bytes: &[u8]) -> Result<(MemReader<'_>, ImageFormat), ImageError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Undecodable(e.to_string()))?;
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
    if bytes.len() as u64 > limits.max_bytes {
        return Err(ImageError::TooLarge(format!(
            "{} bytes, limit {}",
            bytes.len(),
            limits.max_bytes
        )));
    }
    let (probe, format) = reader(bytes)?;
    let (w, h) = probe.into_dimensions().map_err(map_decode_error)?;
    if w > limits.max_width || h > limits.max_height {
        return Err(ImageError::TooLarge(format!(
            "{w}x{h} pixels, limit {}x{}",
            limits.max_width, limits.max_height
        )));
    }
    if w == 0 || h == 0 {
        return Err(ImageError::Undecodable(format!("empty image {w}x{h}")));
    }
    let (mut reader, _) = reader(bytes)?;
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_width);
    decoder_limits.max_image_height = Some(limits.max_height);
    decoder_limits.max_alloc = Some(limits.max_alloc());
    reader.limits(decoder_limits);
    let image = reader.decode().map_err(map_decode_error)?;
    Ok(DecodedImage {
        rgb: image.into_rgb8(),
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb};

    fn limits() -> ImageLimits {
        ImageLimits {
            max_bytes: 1 << 20,
            max_width: 512,
            max_height: 512,
        }
    }

    fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, format).unwrap();
        buf.into_inner()
    }

    fn sample(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
        })
    }

    #[test]
    fn lossless_formats_round_trip_with_media_type() {
        let img = sample(40, 30);
        for (format, media) in [
            (ImageFormat::Png, "image/png"),
            (ImageFormat::Tiff, "image/tiff"),
            (ImageFormat::Bmp, "image/bmp"),
        ] {
            let d = decode(&encode(&img, format), &limits()).unwrap();
            assert_eq!(d.media_type(), media);
            assert_eq!(d.rgb, img, "{format:?}");
        }
    }

    #[test]
    fn jpeg_decodes_to_the_right_size() {
        let d = decode(&encode(&sample(33, 17), ImageFormat::Jpeg), &limits()).unwrap();
        assert_eq!(
            (d.width(), d.height(), d.media_type()),
            (33, 17, "image/jpeg")
        );
    }

    #[test]
    fn byte_limit_is_checked_first() {
        let bytes = encode(&sample(40, 30), ImageFormat::Png);
        let l = ImageLimits {
            max_bytes: 10,
            ..limits()
        };
        let e = decode(&bytes, &l).unwrap_err();
        assert!(
            matches!(e, ImageError::TooLarge(ref m) if m.contains("bytes")),
            "{e}"
        );
        assert_eq!(e.reason_code(), "image_too_large");
    }

    #[test]
    fn dimensions_over_the_limit_are_refused_from_the_header() {
        let bytes = encode(&sample(600, 10), ImageFormat::Png);
        let e = decode(&bytes, &limits()).unwrap_err();
        assert!(
            matches!(e, ImageError::TooLarge(ref m) if m.contains("600x10")),
            "{e}"
        );
    }

    #[test]
    fn decompression_bomb_header_is_refused_without_decoding() {
        // A 1-bit grey PNG claiming 100000 x 100000 pixels compresses to a few hundred bytes.
        let mut buf = Vec::new();
        let enc = image::codecs::png::PngEncoder::new(&mut buf);
        let w = 20_000u32;
        let row = vec![0u8; w as usize];
        let data: Vec<u8> = row
            .iter()
            .cycle()
            .take((w * 50) as usize)
            .copied()
            .collect();
        enc.write_image(&data, w, 50, image::ExtendedColorType::L8)
            .unwrap();
        let e = decode(&buf, &limits()).unwrap_err();
        assert!(matches!(e, ImageError::TooLarge(_)), "{e}");
    }

    #[test]
    fn truncated_and_garbage_are_undecodable() {
        let bytes = encode(&sample(64, 64), ImageFormat::Png);
        for cut in [8, 30, bytes.len() / 2, bytes.len() - 5] {
            let e = decode(&bytes[..cut], &limits()).unwrap_err();
            assert!(matches!(e, ImageError::Undecodable(_)), "cut {cut}: {e}");
        }
        let jpeg = encode(&sample(64, 64), ImageFormat::Jpeg);
        assert!(decode(&jpeg[..jpeg.len() / 3], &limits()).is_err());
        let e = decode(b"hello, not an image", &limits()).unwrap_err();
        assert_eq!(e.reason_code(), "image_undecodable");
        assert!(decode(&[], &limits()).is_err());
    }

    #[test]
    fn grey_and_alpha_images_become_rgb() {
        let grey = image::GrayImage::from_fn(5, 4, |x, _| image::Luma([x as u8 * 40]));
        let mut buf = Cursor::new(Vec::new());
        grey.write_to(&mut buf, ImageFormat::Png).unwrap();
        let d = decode(buf.get_ref(), &limits()).unwrap();
        assert_eq!(d.rgb.get_pixel(2, 1), &Rgb([80, 80, 80]));
        let rgba = image::RgbaImage::from_pixel(3, 3, image::Rgba([10, 20, 30, 0]));
        let mut buf = Cursor::new(Vec::new());
        rgba.write_to(&mut buf, ImageFormat::Png).unwrap();
        let d = decode(buf.get_ref(), &limits()).unwrap();
        assert_eq!(d.rgb.get_pixel(0, 0), &Rgb([10, 20, 30]));
    }
}
