//! The whole load of a model from the bytes of a GGUF, as the browser loads one: header,
//! hyperparameters, tokenizer and every weight onto the CPU backend, then one forward pass of two
//! tokens through the quantised kernels.
#![no_main]

use glassbox::backend::candle::CandleBackend;
use glassbox::gguf::{Gguf, TensorInfo};
use glassbox::hooks::{HookRequest, Positions};
use glassbox::model::{Config, Loaded, Model, WeightSource};
use glassbox::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

struct InMemory<'a> {
    header: Gguf,
    file: &'a [u8],
}

impl WeightSource for InMemory<'_> {
    fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }
    fn read(&self, tensor: &TensorInfo) -> glassbox::model::Result<Vec<u8>> {
        // The parser has checked that every tensor lies inside the file.
        Ok(self.file[tensor.file_offset as usize..(tensor.file_offset + tensor.byte_len) as usize].to_vec())
    }
}

fuzz_target!(|file: &[u8]| {
    let Ok(header) = Gguf::parse(file, file.len() as u64) else { return };
    // The small seeds carry weights but no vocabulary: the model loads either way, and the pair
    // is checked where there is one.
    let tokenizer = Tokenizer::from_gguf(&header).ok();
    let Ok(config) = Config::from_gguf(&header) else { return };
    let source = InMemory { header, file };
    let Ok(model) = Model::load(CandleBackend::cpu(), config, &source) else { return };
    let ids: Vec<u32> = (0..2).filter(|&id| (id as usize) < model.config().vocab_size).collect();
    if !ids.is_empty() {
        let _ = model.forward(&ids, &mut model.new_cache(), &HookRequest::new(), &[], &Positions::Last);
    }
    if let Some(tokenizer) = tokenizer {
        let _ = Loaded::new(model, tokenizer);
    }
});
