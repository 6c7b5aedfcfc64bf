//! Record named activations of SmolLM2 at chosen positions and print their shapes.
//!
//! `cargo run --release --example record_hooks [MODEL.gguf] [PROMPT]`, after `make setup` put the
//! default model in models/. Hook names are TransformerLens's (`blocks.3.hook_resid_post`,
//! `blocks.5.attn.hook_pattern`, ...).

use glassbox::backend::candle::CandleBackend;
use glassbox::hooks::{HookPoint, HookRequest, Positions};
use glassbox::model::Model;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "models/SmolLM2-135M-Instruct.Q4_1.gguf".to_string());
    let prompt = args.next().unwrap_or_else(|| "The capital of France is".to_string());

    let loaded = Model::open(&path, CandleBackend::cpu())?;
    let ids = loaded.tokenizer.encode(&prompt, true, false)?;

    let mut hooks = HookRequest::new();
    for (name, positions) in [
        ("hook_embed", Positions::All),
        ("blocks.3.hook_resid_post", Positions::Last),
        ("blocks.5.attn.hook_pattern", Positions::Last),
        ("blocks.5.mlp.hook_post", Positions::Only(vec![0, ids.len() - 1])),
    ] {
        let point = HookPoint::parse(name).ok_or_else(|| format!("{name} is not a hook name"))?;
        hooks = hooks.with(point, positions);
    }
    let out = loaded.model.forward(&ids, &mut loaded.model.new_cache(), &hooks, &[], &Positions::Last)?;

    println!("{} tokens of {prompt:?}", ids.len());
    for (point, activation) in &out.recording.activations {
        let first = activation.data.first().copied().unwrap_or(f32::NAN);
        println!(
            "{point:<28} positions {:?} shape {:?} first value {first:+.5}",
            activation.positions, activation.shape
        );
    }
    Ok(())
}
