//! Reading GGUF files from disk without loading or memory-mapping them.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::error::{GgufError, Result};
use super::parse::{Gguf, TensorInfo};

/// An open GGUF file: its parsed header, with tensor data read on demand.
pub struct GgufFile {
    path: PathBuf,
    file: Mutex<File>,
    pub header: Gguf,
}

impl GgufFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let io = |source| GgufError::Io { path: path.display().to_string(), source };
        let mut file = File::open(&path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let header = Gguf::read_header(file_len, |len| read_at(&mut file, 0, len).map_err(io))?;
        Ok(GgufFile { path, file: Mutex::new(file), header })
    }

    /// The raw bytes of one tensor, in its GGUF block format.
    pub fn read_tensor(&self, tensor: &TensorInfo) -> Result<Vec<u8>> {
        // Offsets and lengths were bounds-checked against the file length when the header was
        // parsed, so this allocation is bounded by the file's size.
        let mut file = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        read_at(&mut file, tensor.file_offset, tensor.byte_len)
            .map_err(|source| GgufError::Io { path: self.path.display().to_string(), source })
    }
}

fn read_at(file: &mut File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; len as usize];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}
