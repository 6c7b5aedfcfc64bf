use thiserror::Error;

/// Everything that can be wrong with a GGUF file. Every byte offset is absolute within the file.
#[derive(Debug, Error)]
pub enum GgufError {
    #[error("not a GGUF file: it starts with {found:02x?}, expected the magic bytes \"GGUF\"")]
    BadMagic { found: Vec<u8> },

    #[error("unsupported GGUF version {0}: glassbox reads versions 2 and 3")]
    UnsupportedVersion(u32),

    #[error(
        "GGUF header is cut short: {what} at byte {offset} needs {needed} bytes, \
         but only {available} of the file's {file_len} bytes are available"
    )]
    Truncated { what: &'static str, offset: u64, needed: u64, available: u64, file_len: u64 },

    #[error(
        "{what} count {count} at byte {offset} is impossible: even at the smallest encoding \
         it needs more than the {remaining} bytes left in the file"
    )]
    CountTooLarge { what: &'static str, count: u64, offset: u64, remaining: u64 },

    #[error("unknown metadata value type {type_id} at byte {offset}")]
    UnknownValueType { type_id: u32, offset: u64 },

    #[error("metadata arrays nest deeper than {max} levels at byte {offset}")]
    NestingTooDeep { max: usize, offset: u64 },

    #[error("{what} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str, offset: u64 },

    #[error("duplicate metadata key {0:?}")]
    DuplicateKey(String),

    #[error("duplicate tensor name {0:?}")]
    DuplicateTensor(String),

    #[error("general.alignment is {0}, which is not a power of two")]
    BadAlignment(u64),

    #[error("metadata key {key:?} holds a {found}, expected {expected}")]
    WrongValueType { key: String, found: &'static str, expected: &'static str },

    #[error("required metadata key {0:?} is missing")]
    MissingKey(String),

    #[error("tensor {name:?} has unknown ggml type id {type_id}")]
    UnknownTensorType { name: String, type_id: u32 },

    #[error("tensor {name:?} has {n_dims} dimensions; GGUF allows at most {max}")]
    TooManyDimensions { name: String, n_dims: u32, max: u32 },

    #[error("tensor {name:?}: its shape {shape:?} is too large to address")]
    TensorTooLarge { name: String, shape: Vec<u64> },

    #[error(
        "tensor {name:?}: first dimension {first_dim} is not a multiple of the {block_size}-element \
         block of type {ggml_type}"
    )]
    NotBlockAligned { name: String, first_dim: u64, block_size: u64, ggml_type: &'static str },

    #[error("tensor {name:?}: its data [{start}, {end}) lies outside the file, which ends at byte {file_len}")]
    TensorOutOfBounds { name: String, start: u64, end: u64, file_len: u64 },

    #[error("tensors {first:?} and {second:?} share the bytes at {offset}: each tensor needs its own data")]
    OverlappingTensors { first: String, second: String, offset: u64 },

    #[error("tensor {name:?}: data offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor { name: String, offset: u64, alignment: u64 },

    #[error("no tensor named {0:?}")]
    NoSuchTensor(String),

    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = GgufError> = std::result::Result<T, E>;
