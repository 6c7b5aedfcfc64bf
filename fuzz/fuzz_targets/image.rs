//! A PNG or JPEG decoded under the product's limits and preprocessed for llava-1.5's tower
//! (336 pixels), padded to a square and not.
#![no_main]

use glassbox::vision::preprocess::{decode, ImageLimits, Preprocess};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(image) = decode(bytes, ImageLimits::default()) else { return };
    for pad_to_square in [false, true] {
        let p = Preprocess { image_size: 336, mean: [0.48, 0.46, 0.41], std: [0.27, 0.26, 0.28], pad_to_square };
        assert_eq!(p.apply(&image).len(), 3 * 336 * 336);
    }
});
