use super::*;
use image::{ImageEncoder, Rgb};

fn limits() -> ImageLimits {
    ImageLimits {
        max_bytes: 1 << 20,
        max_width: 512,
        max_height: 512,
        decode_budget: std::time::Duration::from_secs(60),
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
fn bmp_wider_than_its_decoder_allows_is_too_large_not_corrupt() {
    let mut bmp = encode(&sample(4, 4), ImageFormat::Bmp);
    bmp[18..22].copy_from_slice(&100_000i32.to_le_bytes());
    let e = decode(&bmp, &limits()).unwrap_err();
    assert!(
        matches!(e, ImageError::TooLarge(ref m) if m.contains("100000x4")),
        "{e}"
    );
}

#[test]
fn truncated_and_garbage_are_undecodable() {
    let bytes = encode(&sample(64, 64), ImageFormat::Png);
    for cut in [8, 30, bytes.len() / 2, bytes.len() - 5] {
        let e = decode(&bytes[..cut], &limits()).unwrap_err();
        assert!(matches!(e, ImageError::Undecodable(_)), "cut {cut}: {e}");
    }
    // A JPEG cut anywhere in its scan, even just before the end marker, is not a photo.
    let jpeg = encode(&sample(64, 64), ImageFormat::Jpeg);
    for cut in [jpeg.len() / 3, jpeg.len() - 8] {
        let e = decode(&jpeg[..cut], &limits()).unwrap_err();
        assert!(matches!(e, ImageError::Undecodable(_)), "cut {cut}: {e}");
    }
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

#[test]
fn png_colour_profile_is_dropped_before_decoding() {
    let img = sample(8, 8);
    let mut buf = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut buf);
    enc.set_icc_profile(vec![7u8; 1 << 20]).unwrap();
    enc.write_image(img.as_raw(), 8, 8, image::ExtendedColorType::Rgb8)
        .unwrap();
    let stripped = png_without_iccp(&buf).unwrap();
    assert!(!stripped.windows(4).any(|w| w == b"iCCP"));
    assert_eq!(decode(&buf, &limits()).unwrap().rgb, img);
    assert!(png_without_iccp(&stripped).is_none());
    // A cut inside a chunk is kept for the decoder to refuse.
    assert!(decode(&buf[..buf.len() - 20], &limits()).is_err());
}

#[test]
fn a_decode_over_its_time_budget_is_refused_as_undecodable() {
    let bytes = encode(&sample(256, 256), ImageFormat::Jpeg);
    assert!(decode(&bytes, &limits()).is_ok());
    let tight = ImageLimits {
        decode_budget: std::time::Duration::from_nanos(1),
        ..limits()
    };
    let e = decode(&bytes, &tight).unwrap_err();
    assert!(
        matches!(e, ImageError::Undecodable(ref m) if m.contains("over the budget")),
        "{e}"
    );
    assert_eq!(e.reason_code(), "image_undecodable");
}
