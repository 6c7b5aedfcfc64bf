//! The synthetic VQA task glassbox's own LLaVA-architecture fixture is trained and checked on:
//! 1–3 coloured shapes on a plain or noisy background, "What is the color of the {shape}?",
//! answered by a colour word. Every scene is a pure function of (seed, index), so a test, the
//! trainer and the browser draw the same images.

use image::{Rgb, RgbImage};
use serde::Serialize;

use crate::numeric::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
}

pub const SHAPES: [Shape; 3] = [Shape::Circle, Shape::Square, Shape::Triangle];

impl Shape {
    /// The shape's place in [`SHAPES`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn word(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
        }
    }

    /// The seed's prompt form for a question about this shape.
    pub fn prompt(self) -> String {
        let shape = self.word();
        format!("USER: <image>\nWhat is the color of the {shape}?\nASSISTANT: The color of the {shape} is")
    }

    /// Whether the point (x, y), relative to the shape's box of side `side`, is inside it.
    fn covers(self, x: f32, y: f32, side: f32) -> bool {
        let half = side / 2.0;
        match self {
            Shape::Square => (0.0..side).contains(&x) && (0.0..side).contains(&y),
            Shape::Circle => (x - half).powi(2) + (y - half).powi(2) <= half * half,
            // Apex at the top centre, base along the bottom edge.
            Shape::Triangle => (0.0..side).contains(&y) && (x - half).abs() <= half * y / side,
        }
    }
}

/// Colour words that are single tokens in SmolLM2's vocabulary after a space, and far apart
/// in RGB so that noise never turns one into another.
pub const COLOURS: [(&str, [u8; 3]); 6] = [
    ("red", [220, 30, 30]),
    ("green", [30, 170, 50]),
    ("blue", [40, 60, 220]),
    ("yellow", [235, 215, 30]),
    ("purple", [140, 40, 170]),
    ("orange", [245, 130, 20]),
];

/// A shape in a scene: its kind, its colour (an index into [`COLOURS`]) and its box in pixels,
/// `[x0, y0, x1, y1)`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Placed {
    pub shape: Shape,
    pub colour: usize,
    pub bbox: [u32; 4],
}

#[derive(Clone, Debug)]
pub struct Scene {
    pub image: RgbImage,
    pub shapes: Vec<Placed>,
    /// The shape the question asks about.
    pub target: usize,
}

impl Scene {
    /// The seed's prompt form, whose next token is the answer.
    pub fn prompt(&self) -> String {
        self.shapes[self.target].shape.prompt()
    }

    pub fn answer(&self) -> &'static str {
        COLOURS[self.shapes[self.target].colour].0
    }
}

fn below(rng: &mut Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

/// The sides a scene may have: below 32 pixels three shapes two pixels apart may not fit (the
/// placement would search forever), and above 1024 the image alone is megabytes for nothing.
pub const SCENE_SIDES: std::ops::RangeInclusive<u32> = 32..=1024;

#[derive(Debug, thiserror::Error)]
#[error("a scene of {0} pixels a side: the generator draws 32 to 1024")]
pub struct BadSceneSize(pub u32);

/// Scene `index` of the stream `seed`, `size` × `size` pixels. Shapes differ in kind and in
/// colour (so the question has one answer and the others are distractors) and do not overlap.
pub fn scene(seed: u64, index: u64, size: u32) -> Result<Scene, BadSceneSize> {
    if !SCENE_SIDES.contains(&size) {
        return Err(BadSceneSize(size));
    }
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03));
    let background =
        [200 + below(&mut rng, 56) as u8, 200 + below(&mut rng, 56) as u8, 200 + below(&mut rng, 56) as u8];
    let noise = if below(&mut rng, 2) == 0 { 0 } else { 24 };
    let mut image = RgbImage::from_fn(size, size, |_, _| {
        let jitter = |c: u8| (c as i32 + below(&mut rng, noise as u64 * 2 + 1) as i32 - noise).clamp(0, 255) as u8;
        Rgb(background.map(jitter))
    });
    let count = 1 + below(&mut rng, 3) as usize;
    let mut kinds = SHAPES.to_vec();
    let mut colours: Vec<usize> = (0..COLOURS.len()).collect();
    let mut shapes: Vec<Placed> = Vec::new();
    let (min_side, max_side) = (size / 5, size * 2 / 5);
    while shapes.len() < count {
        let shape = kinds.remove(below(&mut rng, kinds.len() as u64) as usize);
        let colour = colours.remove(below(&mut rng, colours.len() as u64) as usize);
        // Rejection sampling of a free spot; three shapes of at most 2/5 of the side always fit.
        let bbox = loop {
            let side = min_side + below(&mut rng, (max_side - min_side + 1) as u64) as u32;
            let (x0, y0) =
                (below(&mut rng, (size - side + 1) as u64) as u32, below(&mut rng, (size - side + 1) as u64) as u32);
            let candidate = [x0, y0, x0 + side, y0 + side];
            let apart = |b: &[u32; 4]| {
                candidate[2] + 2 <= b[0]
                    || b[2] + 2 <= candidate[0]
                    || candidate[3] + 2 <= b[1]
                    || b[3] + 2 <= candidate[1]
            };
            if shapes.iter().all(|s| apart(&s.bbox)) {
                break candidate;
            }
        };
        let side = (bbox[2] - bbox[0]) as f32;
        for y in bbox[1]..bbox[3] {
            for x in bbox[0]..bbox[2] {
                if shape.covers((x - bbox[0]) as f32 + 0.5, (y - bbox[1]) as f32 + 0.5, side) {
                    image.put_pixel(x, y, Rgb(COLOURS[colour].1));
                }
            }
        }
        shapes.push(Placed { shape, colour, bbox });
    }
    let target = below(&mut rng, shapes.len() as u64) as usize;
    Ok(Scene { image, shapes, target })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_s_index_is_its_place_in_shapes() {
        for (i, shape) in SHAPES.iter().enumerate() {
            assert_eq!(shape.index(), i);
        }
    }

    #[test]
    fn a_side_outside_the_range_is_refused() {
        for size in [0, 1, 31, 1025, 100_000] {
            assert!(matches!(scene(1, 0, size), Err(BadSceneSize(s)) if s == size));
        }
        assert!(scene(1, 0, 32).is_ok() && scene(1, 0, 1024).is_ok());
    }

    #[test]
    fn a_scene_is_a_function_of_seed_and_index() {
        let (a, b) = (scene(7, 3, 112).unwrap(), scene(7, 3, 112).unwrap());
        assert_eq!(a.image, b.image);
        assert_eq!(a.shapes, b.shapes);
        assert_ne!(scene(7, 4, 112).unwrap().image, a.image);
        assert_ne!(scene(8, 3, 112).unwrap().image, a.image);
    }

    #[test]
    fn shapes_are_distinct_apart_and_drawn_in_their_boxes() {
        for index in 0..200 {
            let s = scene(1, index, 112).unwrap();
            assert!((1..=3).contains(&s.shapes.len()));
            for (i, p) in s.shapes.iter().enumerate() {
                for q in &s.shapes[i + 1..] {
                    assert_ne!(p.shape, q.shape);
                    assert_ne!(p.colour, q.colour);
                }
                // Every pixel of the shape's colour lies in its box, and a point two thirds down its
                // middle (inside all three kinds) has it.
                let colour = Rgb(COLOURS[p.colour].1);
                let inside =
                    |x: u32, y: u32| (p.bbox[0]..p.bbox[2]).contains(&x) && (p.bbox[1]..p.bbox[3]).contains(&y);
                assert!(s.image.enumerate_pixels().all(|(x, y, px)| *px != colour || inside(x, y)));
                let centre = ((p.bbox[0] + p.bbox[2]) / 2, p.bbox[1] + (p.bbox[3] - p.bbox[1]) * 2 / 3);
                assert_eq!(*s.image.get_pixel(centre.0, centre.1), colour, "scene {index} shape {i}");
            }
            assert!(s.prompt().ends_with(&format!(
                "{}?\nASSISTANT: The color of the {} is",
                s.shapes[s.target].shape.word(),
                s.shapes[s.target].shape.word()
            )));
        }
    }
}
