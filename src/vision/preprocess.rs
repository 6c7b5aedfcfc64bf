//! Image input for the vision tower: decoding with caps, and CLIP's preprocessing as
//! llava-1.5 applies it (optionally padding to a square in the mean colour first, then resizing
//! the shortest edge to the tower's size with bicubic filtering, centre-cropping, and
//! normalising with the mmproj's mean and std).

use image::{imageops, DynamicImage, ImageReader, Limits, Rgb, RgbImage};
use thiserror::Error;

/// Caps on what an image may decode to, so a small hostile file cannot claim gigabytes.
#[derive(Clone, Copy, Debug)]
pub struct ImageLimits {
    pub max_side: u32,
    pub max_bytes: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits { max_side: 8192, max_bytes: 256 << 20 }
    }
}

#[derive(Debug, Error)]
pub enum ImageError {
    #[error("the image is not a PNG or JPEG glassbox can decode: {0}")]
    Decode(String),
    #[error("the image is {width}×{height}; glassbox accepts at most {max_side} pixels a side and {max_bytes} decoded bytes")]
    TooLarge { width: u32, height: u32, max_side: u32, max_bytes: u64 },
    #[error("the image has no pixels")]
    Empty,
}

/// A PNG or JPEG as 8-bit RGB, its size checked against `limits` before any pixel is decoded.
pub fn decode(bytes: &[u8], limits: ImageLimits) -> Result<RgbImage, ImageError> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        other => return Err(ImageError::Decode(format!("format {other:?}"))),
    }
    let (width, height) = reader.into_dimensions().map_err(|e| ImageError::Decode(e.to_string()))?;
    let too_large = ImageError::TooLarge { width, height, max_side: limits.max_side, max_bytes: limits.max_bytes };
    if width > limits.max_side || height > limits.max_side || width as u64 * height as u64 * 4 > limits.max_bytes {
        return Err(too_large);
    }
    if width == 0 || height == 0 {
        return Err(ImageError::Empty);
    }
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    let mut caps = Limits::default();
    caps.max_image_width = Some(limits.max_side);
    caps.max_image_height = Some(limits.max_side);
    caps.max_alloc = Some(limits.max_bytes);
    reader.limits(caps);
    let decoded: DynamicImage = reader.decode().map_err(|e| ImageError::Decode(e.to_string()))?;
    Ok(decoded.to_rgb8())
}

/// How the vision tower wants its input (from the mmproj's `clip.vision.*` keys).
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    pub image_size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// llava-1.5's `expand2square`: pad the shorter side, centred, in the mean colour.
    pub pad_to_square: bool,
}

impl Preprocess {
    /// The tower's input, `[3, S, S]` channel-major: `(p / 255 − mean_c) / std_c`.
    pub fn apply(&self, image: &RgbImage) -> Vec<f32> {
        let padded;
        let source = if self.pad_to_square && image.width() != image.height() {
            padded = self.square(image);
            &padded
        } else {
            image
        };
        let s = self.image_size;
        let cropped = resize_and_centre_crop(source, s);
        let plane = (s * s) as usize;
        let mut out = vec![0f32; 3 * plane];
        for (i, Rgb(p)) in cropped.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (p[c] as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        out
    }

    fn square(&self, image: &RgbImage) -> RgbImage {
        let side = image.width().max(image.height());
        // LLaVA's `tuple(int(x * 255) for x in image_mean)`: truncated, (122, 116, 104) for CLIP.
        let fill = Rgb(self.mean.map(|m| (m * 255.0).clamp(0.0, 255.0) as u8));
        let mut canvas = RgbImage::from_pixel(side, side, fill);
        imageops::replace(
            &mut canvas,
            image,
            ((side - image.width()) / 2) as i64,
            ((side - image.height()) / 2) as i64,
        );
        canvas
    }
}

/// Past this ratio of the resized long side to the crop, only the band of the source that reaches
/// the crop is resized: a 1 × 8192 image would otherwise resize to 336 × 2.7 million pixels.
/// Below it (every photograph, panoramas included) the whole image is resized, as CLIP does.
const MAX_RESIZED_OVER_CROP: u32 = 16;

/// CLIP's resize and centre crop: the shortest edge to `s`, the other in proportion, truncated as
/// CLIPImageProcessor's `int(size * long / short)` does, then the central `s × s`.
fn resize_and_centre_crop(source: &RgbImage, s: u32) -> RgbImage {
    let (w, h) = (source.width(), source.height());
    let long = |long: u32, short: u32| ((s as f64 * long as f64 / short as f64) as u32).max(s);
    let (rw, rh) = if w <= h { (s, long(h, w)) } else { (long(w, h), s) };
    let filter = imageops::FilterType::CatmullRom;
    if rw.max(rh) <= MAX_RESIZED_OVER_CROP * s {
        let resized = imageops::resize(source, rw, rh, filter);
        return imageops::crop_imm(&resized, (rw - s) / 2, (rh - s) / 2, s, s).to_image();
    }
    // The band of source pixels the crop reads, widened by the filter's reach (two taps, scaled
    // when shrinking), resized to a whole number of pixels at nearly the same scale: the crop
    // lands within a fraction of a source pixel of the full resize's.
    let vertical = rh > rw;
    let (source_long, resized_long) = if vertical { (h, rh) } else { (w, rw) };
    let scale = source_long as f64 / resized_long as f64;
    let crop_start = (resized_long - s) / 2;
    let reach = 2.0 * scale.max(1.0) + 1.0;
    let first = (crop_start as f64 * scale - reach).floor().max(0.0) as u32;
    let end = ((crop_start + s) as f64 * scale + reach).ceil().min(source_long as f64) as u32;
    let band_resized = (((end - first) as f64 / scale).round() as u32).max(s);
    let offset = ((crop_start as f64 - first as f64 / scale).round().max(0.0) as u32).min(band_resized - s);
    if vertical {
        let band = imageops::crop_imm(source, 0, first, w, end - first).to_image();
        imageops::crop_imm(&imageops::resize(&band, s, band_resized, filter), 0, offset, s, s).to_image()
    } else {
        let band = imageops::crop_imm(source, first, 0, end - first, h).to_image();
        imageops::crop_imm(&imageops::resize(&band, band_resized, s, filter), offset, 0, s, s).to_image()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(image: &RgbImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
        bytes
    }

    #[test]
    fn a_flat_image_normalises_to_the_hand_value() {
        // 51/255 = 0.2: (0.2 − 0.5) / 0.25 = −1.2 in every channel at every pixel, whatever the
        // resize does to a constant image.
        let flat = RgbImage::from_pixel(40, 30, Rgb([51, 51, 51]));
        let p = Preprocess { image_size: 14, mean: [0.5; 3], std: [0.25; 3], pad_to_square: false };
        let out = p.apply(&decode(&png(&flat), ImageLimits::default()).unwrap());
        assert_eq!(out.len(), 3 * 14 * 14);
        assert!(out.iter().all(|&v| (v + 1.2).abs() < 1e-6), "{:?}", &out[..4]);
    }

    #[test]
    fn crop_is_centred_and_padding_uses_the_mean_colour() {
        // A 6×2 image, left half black, right half white. Its shortest edge is already 2, so
        // nothing is resized, and the centre crop takes columns 2 (black) and 3 (white).
        let mut image = RgbImage::from_pixel(6, 2, Rgb([0, 0, 0]));
        for x in 3..6 {
            for y in 0..2 {
                image.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        let p = Preprocess { image_size: 2, mean: [0.0; 3], std: [1.0; 3], pad_to_square: false };
        let out = p.apply(&image);
        assert_eq!(&out[..4], &[0.0, 1.0, 0.0, 1.0]);
        // Padded to 6×6 in the mean colour (0.5 → int(127.5) = 127) and kept at that size: the
        // top-left pixel is padding.
        let padded = Preprocess { image_size: 6, mean: [0.5; 3], std: [1.0; 3], pad_to_square: true }.apply(&image);
        assert!((padded[0] - (127.0 / 255.0 - 0.5)).abs() < 1e-6, "{}", padded[0]);
    }

    /// Largest |glassbox − Pillow| over the tensor. Measured 2026-11-26: 0.0146, one level. Pillow's
    /// bicubic and the image crate's Catmull-Rom are the same filter (a = −0.5, widened when
    /// shrinking), computed in different fixed-point arithmetic, so a channel can land one level
    /// (1/255/std ≈ 0.015) apart.
    const PIL_TOLERANCE: f32 = 0.016;

    #[test]
    fn preprocessing_matches_pillow_and_clip_image_processor() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let reference: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("tests/reference/preprocess-pil.json")).unwrap())
                .unwrap();
        let image =
            decode(&std::fs::read(root.join("tests/fixtures/preprocess-input.png")).unwrap(), ImageLimits::default())
                .unwrap();
        let triple = |key: &str| -> [f32; 3] { std::array::from_fn(|c| reference[key][c].as_f64().unwrap() as f32) };
        for case in reference["cases"].as_array().unwrap() {
            let p = Preprocess {
                image_size: 14,
                mean: triple("mean"),
                std: triple("std"),
                pad_to_square: case["pad_to_square"].as_bool().unwrap(),
            };
            let ours = p.apply(&image);
            let theirs: Vec<f32> =
                case["tensor"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            assert_eq!(ours.len(), theirs.len());
            let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= PIL_TOLERANCE, "pad {}: largest difference {worst}", p.pad_to_square);
        }
    }

    #[test]
    fn a_very_long_image_is_cropped_as_the_full_resize_would_crop_it() {
        // Gradients along the long side, so a misplaced band shows; both orientations, past the
        // ratio where only the band is resized. The reference is the whole image resized and then
        // cropped, as CLIPImageProcessor does; measured, they part by at most one level.
        for (w, h) in [(3u32, 160u32), (160, 3), (2, 97), (97, 2), (5, 400)] {
            let image = RgbImage::from_fn(w, h, |x, y| {
                let (along, across) = if w < h { (y * 255 / h, x) } else { (x * 255 / w, y) };
                Rgb([along as u8, (255 - along) as u8, (along / 2 + across * 40) as u8])
            });
            let s = 14;
            let long = |long: u32, short: u32| (s as f64 * long as f64 / short as f64) as u32;
            let (rw, rh) = if w <= h { (s, long(h, w)) } else { (long(w, h), s) };
            let full = imageops::resize(&image, rw, rh, imageops::FilterType::CatmullRom);
            let reference = imageops::crop_imm(&full, (rw - s) / 2, (rh - s) / 2, s, s).to_image();
            let ours = resize_and_centre_crop(&image, s);
            let worst = ours.as_raw().iter().zip(reference.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
            assert!(worst <= 1, "{w}×{h}: largest difference {worst} levels");
        }
    }

    #[test]
    fn a_one_pixel_wide_image_resizes_within_a_bounded_band() {
        let p = Preprocess { image_size: 336, mean: [0.5; 3], std: [0.25; 3], pad_to_square: false };
        let out = p.apply(&RgbImage::from_pixel(1, 8192, Rgb([51, 51, 51])));
        assert_eq!(out.len(), 3 * 336 * 336);
        assert!(out.iter().all(|&v| (v + 1.2).abs() < 1e-6));
    }

    #[test]
    fn corrupt_and_oversized_images_are_typed_errors() {
        assert!(matches!(decode(b"not an image", ImageLimits::default()), Err(ImageError::Decode(_))));
        let bytes = png(&RgbImage::new(64, 16));
        assert!(matches!(decode(&bytes[..bytes.len() / 2], ImageLimits::default()), Err(ImageError::Decode(_))));
        let small = ImageLimits { max_side: 32, max_bytes: 1 << 20 };
        assert!(matches!(decode(&bytes, small), Err(ImageError::TooLarge { width: 64, height: 16, .. })));
        assert!(decode(&bytes, ImageLimits::default()).is_ok());
    }
}
