//! The GGUF header and tensor table, the input being the whole file.
#![no_main]

use glassbox::gguf::Gguf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|file: &[u8]| {
    if let Ok(gguf) = Gguf::parse(file, file.len() as u64) {
        for tensor in &gguf.tensors {
            assert!(tensor.file_offset + tensor.byte_len <= file.len() as u64, "{tensor:?} lies outside the file");
        }
        let _ = glassbox::gguf::ModelCard::from_gguf(&gguf);
    }
});
