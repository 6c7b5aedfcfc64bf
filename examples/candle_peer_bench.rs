//! The peer for `make bench`: candle-transformers' own `quantized_llama` on the same GGUF and
//! prompts, timed exactly as `glassbox bench` times glassbox.
//!
//! Usage: candle_peer_bench MODEL.gguf SHORT.txt LONG.txt   (threads: RAYON_NUM_THREADS)

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use glassbox::gguf::GgufFile;
use glassbox::lab::bench::{BenchReport, DECODE_STEPS, REPETITIONS};
use glassbox::tokenizer::Tokenizer;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn last_argmax(logits: &Tensor) -> Result<u32> {
    Ok(logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()?)
}

fn load(path: &str) -> Result<ModelWeights> {
    let mut file = std::fs::File::open(path)?;
    let content = candle_core::quantized::gguf_file::Content::read(&mut file)?;
    Ok(ModelWeights::from_gguf(content, &mut file, &Device::Cpu)?)
}

fn input(ids: &[u32]) -> Result<Tensor> {
    Ok(Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?)
}

fn decode_once(model: &mut ModelWeights, short: &[u32]) -> Result<f64> {
    let mut next = last_argmax(&model.forward(&input(short)?, 0)?)?;
    let start = Instant::now();
    for step in 0..DECODE_STEPS {
        next = last_argmax(&model.forward(&input(&[next])?, short.len() + step)?)?;
    }
    Ok(DECODE_STEPS as f64 / start.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model_path, short_path, long_path] = args.as_slice() else {
        return Err("usage: candle_peer_bench MODEL.gguf SHORT.txt LONG.txt".into());
    };
    let tokenizer = Tokenizer::from_gguf(&GgufFile::open(model_path)?.header)?;
    let short = tokenizer.encode(std::fs::read_to_string(short_path)?.trim(), true, false)?;
    let long = tokenizer.encode(std::fs::read_to_string(long_path)?.trim(), true, false)?;
    let start = Instant::now();
    let mut model = load(model_path)?;
    let load_s = start.elapsed().as_secs_f64();
    decode_once(&mut model, &short)?;
    let decode: Vec<f64> = (0..REPETITIONS).map(|_| decode_once(&mut model, &short)).collect::<Result<_>>()?;
    let mut prefill = Vec::new();
    for _ in 0..REPETITIONS {
        let start = Instant::now();
        model.forward(&input(&long)?, 0)?;
        prefill.push(long.len() as f64 / start.elapsed().as_secs_f64());
    }
    let threads = candle_core::utils::get_num_threads();
    let report = BenchReport::new(threads, load_s, short.len(), long.len(), decode, prefill);
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
