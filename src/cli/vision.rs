//! The LLaVA commands: `vqa` (the answer and its probability), `heatmap` (the seed's patch
//! heatmap or a baseline, as JSON and a PNG overlay) and `lens-image` (the visual logit lens).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use glassbox::backend::Backend;
use glassbox::gguf::GgufFile;
use glassbox::interp::lens::Unembedding;
use glassbox::model::Model;
use glassbox::tokenizer::Tokenizer;
use glassbox::vision::clip::{ClipConfig, ClipTower};
use glassbox::vision::llava::{heatmap_by, next_token_logprobs, visual_lens, ImagePrompt, Method};
use glassbox::vision::preprocess::{decode, ImageLimits, Preprocess};
use glassbox::with_model;
use serde_json::json;

use glassbox::model::AnyLoaded;

use super::compute::Loader;
use super::{print_json, text_err, TokenizerArg, Written};

/// What every LLaVA command reads: the two GGUFs, the image and the prompt.
#[derive(Args)]
pub struct ImageArgs {
    /// The mmproj GGUF (vision tower + projector).
    mmproj: PathBuf,
    /// The language model's GGUF.
    model: PathBuf,
    /// A PNG or JPEG.
    #[arg(long)]
    image: PathBuf,
    /// With one `<image>`, e.g. "USER: <image>\nWhat is the color of the circle?\nASSISTANT:".
    #[arg(long)]
    prompt: String,
    /// Pad the image to a square in the mean colour first, as llava-1.5 does.
    #[arg(long)]
    pad: bool,
    #[command(flatten)]
    tokenizer: TokenizerArg,
}

/// The tower, its preprocessing and the image's pixels, read once.
struct Vision {
    tower_config: ClipConfig,
    mmproj: GgufFile,
    preprocess: Preprocess,
    pixels: Vec<f32>,
}

impl Vision {
    /// The prompt with its image, the tower projecting to `model`'s width.
    fn prompt<B: Backend>(&self, model: &Model<B>, tokenizer: &Tokenizer, text: &str) -> Result<ImagePrompt, String> {
        let tower = ClipTower::load(self.tower_config.clone(), &self.mmproj, model.config().width).map_err(text_err)?;
        ImagePrompt::new(&tower, model, tokenizer, text, &self.pixels).map_err(text_err)
    }
}

/// The image side read and the language model loaded.
fn open(loader: &Loader, args: &ImageArgs) -> Result<(Vision, AnyLoaded), String> {
    Ok((read_vision(args)?, loader.load(&args.model, &args.tokenizer)?))
}

fn read_vision(args: &ImageArgs) -> Result<Vision, String> {
    let mmproj = GgufFile::open(&args.mmproj).map_err(|e| format!("{}: {e}", args.mmproj.display()))?;
    let tower_config = ClipConfig::from_gguf(&mmproj.header).map_err(text_err)?;
    let preprocess = tower_config.preprocess(args.pad);
    let bytes = std::fs::read(&args.image).map_err(|e| format!("{}: {e}", args.image.display()))?;
    let image = decode(&bytes, ImageLimits::default()).map_err(|e| format!("{}: {e}", args.image.display()))?;
    let pixels = preprocess.apply(&image);
    Ok(Vision { tower_config, mmproj, preprocess, pixels })
}

#[derive(Args)]
pub struct VqaArgs {
    #[command(flatten)]
    input: ImageArgs,
    #[arg(long, default_value_t = 5)]
    top_k: usize,
}

pub fn vqa(out: &mut impl Write, loader: &Loader, args: &VqaArgs, json: bool) -> Written {
    let top_k = args.top_k;
    let args = &args.input;
    let (vision, any) = open(loader, args)?;
    with_model!(any, loaded => {
        let prompt = vision.prompt(&loaded.model, &loaded.tokenizer, &args.prompt)?;
        let logprobs = next_token_logprobs(&loaded.model, &prompt).map_err(text_err)?;
        let top = glassbox::numeric::top_k(&logprobs, top_k.max(1));
        let ids: Vec<u32> = top.iter().map(|&i| i as u32).collect();
        let tokens = loaded.tokenizer.token_texts(&ids).map_err(text_err)?;
        let answers: Vec<_> = ids.iter().zip(&tokens).map(|(&id, token)| json!({ "id": id, "token": token, "prob": logprobs[id as usize].exp() })).collect();
        if json {
            Ok(writeln!(out, "{}", json!({ "answer": answers[0], "top": answers, "image_positions": [prompt.image.start, prompt.image.end] })))
        } else {
            Ok(writeln!(out, "{:?} (p = {:.4})", tokens[0], logprobs[ids[0] as usize].exp()))
        }
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    Lpi,
    Attention,
    Occlusion,
}

#[derive(Args)]
pub struct HeatmapArgs {
    #[command(flatten)]
    input: ImageArgs,
    #[arg(long, value_enum, default_value_t = MethodArg::Lpi)]
    method: MethodArg,
    /// LPI through the top n heads (1 is the seed's method).
    #[arg(long, default_value_t = 1)]
    heads: usize,
    /// The answer token explained (default: the model's top-1).
    #[arg(long)]
    target: Option<String>,
    /// Also write the heatmap over the preprocessed image here.
    #[arg(long)]
    png: Option<PathBuf>,
    #[arg(long, default_value_t = 0.6)]
    opacity: f32,
}

pub fn heatmap(out: &mut impl Write, loader: &Loader, args: &HeatmapArgs, json: bool) -> Written {
    let (vision, any) = open(loader, &args.input)?;
    with_model!(any, loaded => {
        let prompt = vision.prompt(&loaded.model, &loaded.tokenizer, &args.input.prompt)?;
        let logprobs = next_token_logprobs(&loaded.model, &prompt).map_err(text_err)?;
        let target = match &args.target {
            Some(text) => match loaded.tokenizer.encode(text, false, false).map_err(text_err)?.as_slice() {
                [id] => *id,
                ids => return Err(format!("--target {text:?} is {} tokens; name a single token", ids.len())),
            },
            None => glassbox::numeric::argmax(&logprobs),
        };
        let method = match args.method {
            MethodArg::Lpi => Method::Lpi,
            MethodArg::Attention => Method::Attention,
            MethodArg::Occlusion => Method::Occlusion,
        };
        let map = heatmap_by(&loaded.model, &prompt, method, target, args.heads).map_err(text_err)?;
        if let Some(path) = &args.png {
            write_png(path, &map.overlay(&vision.pixels, vision.preprocess.image_size, vision.preprocess.mean, vision.preprocess.std, args.opacity))?;
        }
        let token = loaded.tokenizer.token_texts(&[target]).map_err(text_err)?.remove(0);
        if json {
            let report = json!({ "target": { "id": target, "token": token, "prob": logprobs[target as usize].exp() }, "heatmap": map });
            Ok(writeln!(out, "{report}"))
        } else {
            Ok(map.cells.chunks(map.grid).try_for_each(|row| writeln!(out, "{}", row.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(" "))))
        }
    })
}

fn write_png(path: &Path, image: &image::RgbImage) -> Result<(), String> {
    image.save_with_format(path, image::ImageFormat::Png).map_err(|e| format!("{}: {e}", path.display()))
}

#[derive(Args)]
pub struct LensImageArgs {
    #[command(flatten)]
    input: ImageArgs,
    /// Layers to project (default: all).
    #[arg(long, value_delimiter = ',')]
    layers: Option<Vec<usize>>,
    #[arg(long, default_value_t = 5)]
    top_k: usize,
}

/// The seed's projection of visual embeddings into the word-embedding space: the top tokens of
/// each image position's residual stream at each chosen layer.
pub fn lens_image(out: &mut impl Write, loader: &Loader, args: &LensImageArgs, json: bool) -> Written {
    let (vision, any) = open(loader, &args.input)?;
    with_model!(any, loaded => {
        let prompt = vision.prompt(&loaded.model, &loaded.tokenizer, &args.input.prompt)?;
        let unembedding = Unembedding::new(&loaded.model).map_err(text_err)?;
        let lens = visual_lens(&unembedding, &loaded.tokenizer, &prompt, vision.tower_config.grid(), args.layers.clone(), args.top_k).map_err(text_err)?;
        if json {
            print_json(out, &lens)
        } else {
            Ok(lens.cells.iter().try_for_each(|cell| {
                let tokens: Vec<String> = cell.tokens.iter().map(|t| format!("{:?} {:.3}", t.token, t.prob)).collect();
                writeln!(out, "layer {:>2} patch {:>3}: {}", cell.layer, cell.patch, tokens.join(", "))
            }))
        }
    })
}

#[derive(Args)]
pub struct SceneArgs {
    #[arg(long, default_value_t = 2)]
    seed: u64,
    #[arg(long, default_value_t = 0)]
    index: u64,
    /// Pixels a side (the fixture's tower takes 64).
    #[arg(long, default_value_t = 64)]
    size: u32,
    /// Where the PNG goes.
    #[arg(long)]
    png: PathBuf,
}

/// Draws scene `index` of stream `seed` of the shapes task and prints its prompt, answer and
/// shapes (JSON).
pub fn scene(out: &mut impl Write, args: &SceneArgs) -> Written {
    let drawn = glassbox::vision::shapes::scene(args.seed, args.index, args.size).map_err(text_err)?;
    write_png(&args.png, &drawn.image)?;
    Ok(writeln!(
        out,
        "{}",
        json!({ "prompt": drawn.prompt(), "answer": drawn.answer(), "target": drawn.target, "shapes": drawn.shapes })
    ))
}
