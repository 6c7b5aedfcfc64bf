//! The GGUF header parser. It reads from a prefix of the file and knows the file's full length,
//! so the same code serves a whole file in memory, a file read piecewise from disk, and a browser
//! `Blob` read slice by slice.
//!
//! Every count, length and offset read from the file is checked against the bytes the file could
//! still hold before it sizes an allocation, so a hostile header cannot make us allocate more than
//! a small multiple of the file's size.

use std::collections::{BTreeMap, HashSet};

use super::error::{GgufError, Result};
use super::ggml_type::GgmlType;
use super::value::{Array, Value, ValueType};

pub const MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's GGML_MAX_DIMS.
pub const MAX_DIMENSIONS: u32 = 4;
/// Real files nest arrays at most one level deep; the cap keeps recursion off the stack limit.
pub const MAX_ARRAY_NESTING: usize = 8;
/// Smallest tensor-info record: u64 name length, u32 n_dims, u32 type, u64 offset.
const MIN_TENSOR_INFO_LEN: u64 = 8 + 4 + 4 + 8;
/// Smallest metadata record: u64 key length, u32 value type, a one-byte value.
const MIN_METADATA_ENTRY_LEN: u64 = 8 + 4 + 1;

/// One tensor's entry in the GGUF tensor table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub ggml_type: GgmlType,
    /// Dimensions in ggml order: `shape[0]` is the contiguous (innermost) one.
    pub shape: Vec<u64>,
    /// Absolute byte offset of the tensor's data within the file.
    pub file_offset: u64,
    pub byte_len: u64,
}

impl TensorInfo {
    pub fn element_count(&self) -> u64 {
        // Overflow was ruled out when the entry was parsed.
        self.shape.iter().product()
    }
}

/// A parsed GGUF header: metadata and tensor table. Tensor data stays where it is.
#[derive(Clone, Debug)]
pub struct Gguf {
    pub version: u32,
    pub file_len: u64,
    pub alignment: u64,
    /// Absolute offset of the tensor-data section.
    pub data_offset: u64,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
}

/// The first read of a header; real headers are a few MiB (the vocabulary dominates), so one
/// read usually suffices and larger vocabularies take a few doublings.
const FIRST_HEADER_READ: u64 = 4 << 20;

impl Gguf {
    /// Parses the header of a `file_len`-byte file from prefixes that `read_prefix(len)` returns,
    /// starting with 4 MiB and doubling until the header fits.
    pub fn read_header(file_len: u64, mut read_prefix: impl FnMut(u64) -> Result<Vec<u8>>) -> Result<Gguf> {
        let mut prefix_len = FIRST_HEADER_READ.min(file_len);
        loop {
            let prefix = read_prefix(prefix_len)?;
            match Gguf::parse(&prefix, file_len) {
                Err(GgufError::Truncated { available, .. }) if available < file_len => {
                    prefix_len = (prefix_len * 2).min(file_len);
                }
                other => return other,
            }
        }
    }

    /// Parses the header of a GGUF file of `file_len` bytes from `prefix`, its first bytes.
    ///
    /// If `prefix` ends before the header does, the error is [`GgufError::Truncated`]; when its
    /// `available` is less than `file_len`, reading more of the file and retrying may succeed.
    pub fn parse(prefix: &[u8], file_len: u64) -> Result<Self> {
        let mut cursor = Cursor {
            bytes: &prefix[..prefix.len().min(usize::try_from(file_len).unwrap_or(usize::MAX))],
            pos: 0,
            file_len,
        };
        let magic = cursor.take(4, "magic")?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic { found: magic.to_vec() });
        }
        let version = cursor.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let tensor_count = cursor.u64("tensor count")?;
        cursor.check_count("tensor", tensor_count, MIN_TENSOR_INFO_LEN)?;
        let metadata_count = cursor.u64("metadata count")?;
        cursor.check_count("metadata entry", metadata_count, MIN_METADATA_ENTRY_LEN)?;

        let mut metadata = BTreeMap::new();
        for _ in 0..metadata_count {
            let key = cursor.string("metadata key")?;
            let value = cursor.value(0)?;
            if metadata.contains_key(&key) {
                return Err(GgufError::DuplicateKey(key));
            }
            metadata.insert(key, value);
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) => u64::from(*a),
            Some(other) => {
                return Err(GgufError::WrongValueType {
                    key: "general.alignment".into(),
                    found: other.value_type().name(),
                    expected: "u32",
                })
            }
        };
        if !alignment.is_power_of_two() {
            return Err(GgufError::BadAlignment(alignment));
        }

        let mut raw_tensors = Vec::with_capacity(to_usize(tensor_count));
        for _ in 0..tensor_count {
            raw_tensors.push(cursor.tensor_info()?);
        }
        let data_offset = (cursor.pos as u64).next_multiple_of(alignment);

        let mut seen = HashSet::with_capacity(raw_tensors.len());
        let mut tensors = Vec::with_capacity(raw_tensors.len());
        for raw in raw_tensors {
            if !seen.insert(raw.name.clone()) {
                return Err(GgufError::DuplicateTensor(raw.name));
            }
            tensors.push(raw.locate(data_offset, alignment, file_len)?);
        }
        refuse_overlaps(&tensors)?;
        Ok(Gguf { version, file_len, alignment, data_offset, metadata, tensors })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name).ok_or_else(|| GgufError::NoSuchTensor(name.to_string()))
    }
}

/// Tensors that share bytes would let a small file declare any number of weights (and the loader
/// allocate them all); with no overlap, the weights a file declares fit in the file.
fn refuse_overlaps(tensors: &[TensorInfo]) -> Result<()> {
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().filter(|t| t.byte_len > 0).collect();
    by_offset.sort_unstable_by_key(|t| t.file_offset);
    for pair in by_offset.windows(2) {
        let (first, second) = (pair[0], pair[1]);
        if first.file_offset + first.byte_len > second.file_offset {
            return Err(GgufError::OverlappingTensors {
                first: first.name.clone(),
                second: second.name.clone(),
                offset: second.file_offset,
            });
        }
    }
    Ok(())
}

fn to_usize(count: u64) -> usize {
    // Counts are validated against the file length first, so this only fails for files larger
    // than the address space, where a capacity hint of usize::MAX would just fail to allocate.
    usize::try_from(count).unwrap_or(usize::MAX)
}

struct RawTensorInfo {
    name: String,
    shape: Vec<u64>,
    type_id: u32,
    relative_offset: u64,
}

impl RawTensorInfo {
    fn locate(self, data_offset: u64, alignment: u64, file_len: u64) -> Result<TensorInfo> {
        let RawTensorInfo { name, shape, type_id, relative_offset } = self;
        let ggml_type =
            GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType { name: name.clone(), type_id })?;
        let too_large = || GgufError::TensorTooLarge { name: name.clone(), shape: shape.clone() };
        let elements = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(too_large)?;
        let first_dim = shape.first().copied().unwrap_or(1);
        if first_dim % ggml_type.block_size() != 0 {
            return Err(GgufError::NotBlockAligned {
                name,
                first_dim,
                block_size: ggml_type.block_size(),
                ggml_type: ggml_type.name(),
            });
        }
        let byte_len =
            (elements / ggml_type.block_size()).checked_mul(ggml_type.bytes_per_block()).ok_or_else(too_large)?;
        if relative_offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor { name, offset: relative_offset, alignment });
        }
        let start = data_offset.checked_add(relative_offset);
        let end = start.and_then(|s| s.checked_add(byte_len));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => {
                Ok(TensorInfo { name, ggml_type, shape, file_offset: start, byte_len })
            }
            _ => Err(GgufError::TensorOutOfBounds {
                name,
                start: start.unwrap_or(u64::MAX),
                end: end.unwrap_or(u64::MAX),
                file_len,
            }),
        }
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    file_len: u64,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: u64, what: &'static str) -> Result<&'a [u8]> {
        let available = self.bytes.len() - self.pos;
        match usize::try_from(len) {
            Ok(n) if n <= available => {
                let slice = &self.bytes[self.pos..self.pos + n];
                self.pos += n;
                Ok(slice)
            }
            _ => Err(GgufError::Truncated {
                what,
                offset: self.pos as u64,
                needed: len,
                available: self.bytes.len() as u64,
                file_len: self.file_len,
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let bytes = self.take(N as u64, what)?;
        Ok(bytes.try_into().expect("take returned exactly N bytes"))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn remaining_in_file(&self) -> u64 {
        self.file_len.saturating_sub(self.pos as u64)
    }

    /// Rejects a count of records that could not fit in the rest of the file even at
    /// `min_len` bytes each. Called before every allocation sized by a count.
    fn check_count(&self, what: &'static str, count: u64, min_len: u64) -> Result<()> {
        let remaining = self.remaining_in_file();
        if count.checked_mul(min_len).is_none_or(|needed| needed > remaining) {
            return Err(GgufError::CountTooLarge { what, count, offset: self.pos as u64, remaining });
        }
        Ok(())
    }

    fn string(&mut self, what: &'static str) -> Result<String> {
        let len = self.u64(what)?;
        let offset = self.pos as u64;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 { what, offset })
    }

    fn value_type(&mut self) -> Result<ValueType> {
        let offset = self.pos as u64;
        let type_id = self.u32("metadata value type")?;
        ValueType::from_id(type_id).ok_or(GgufError::UnknownValueType { type_id, offset })
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        let value_type = self.value_type()?;
        self.value_of(value_type, depth)
    }

    fn value_of(&mut self, value_type: ValueType, depth: usize) -> Result<Value> {
        const W: &str = "metadata value";
        Ok(match value_type {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array(W)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(W)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(W)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(W)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(W)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(W)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(W)?)),
            ValueType::Bool => Value::Bool(self.array::<1>(W)?[0] != 0),
            ValueType::String => Value::String(self.string("metadata string")?),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(W)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(W)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(W)?)),
            ValueType::Array => Value::Array(self.array_value(depth + 1)?),
        })
    }

    fn array_value(&mut self, depth: usize) -> Result<Array> {
        if depth > MAX_ARRAY_NESTING {
            return Err(GgufError::NestingTooDeep { max: MAX_ARRAY_NESTING, offset: self.pos as u64 });
        }
        let element_type = self.value_type()?;
        let len = self.u64("array length")?;
        self.check_count("array element", len, element_type.min_encoded_len())?;
        let n = to_usize(len);

        macro_rules! collect {
            ($variant:ident, $pick:ident) => {{
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    match self.value_of(element_type, depth)? {
                        Value::$pick(v) => items.push(v),
                        _ => unreachable!("value_of returns the variant of the type it was given"),
                    }
                }
                Array::$variant(items)
            }};
        }
        Ok(match element_type {
            ValueType::U8 => collect!(U8, U8),
            ValueType::I8 => collect!(I8, I8),
            ValueType::U16 => collect!(U16, U16),
            ValueType::I16 => collect!(I16, I16),
            ValueType::U32 => collect!(U32, U32),
            ValueType::I32 => collect!(I32, I32),
            ValueType::F32 => collect!(F32, F32),
            ValueType::Bool => collect!(Bool, Bool),
            ValueType::String => collect!(String, String),
            ValueType::U64 => collect!(U64, U64),
            ValueType::I64 => collect!(I64, I64),
            ValueType::F64 => collect!(F64, F64),
            ValueType::Array => collect!(Array, Array),
        })
    }

    fn tensor_info(&mut self) -> Result<RawTensorInfo> {
        let name = self.string("tensor name")?;
        let n_dims = self.u32("tensor dimension count")?;
        if n_dims > MAX_DIMENSIONS {
            return Err(GgufError::TooManyDimensions { name, n_dims, max: MAX_DIMENSIONS });
        }
        let mut shape = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            shape.push(self.u64("tensor dimension")?);
        }
        let type_id = self.u32("tensor type")?;
        let relative_offset = self.u64("tensor offset")?;
        Ok(RawTensorInfo { name, shape, type_id, relative_offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes GGUF bytes field by field, as the spec lays them out.
    #[derive(Default)]
    struct Writer(Vec<u8>);

    impl Writer {
        fn header(tensors: u64, kvs: u64) -> Self {
            let mut w = Writer::default();
            w.0.extend_from_slice(MAGIC);
            w.u32(3).u64(tensors).u64(kvs);
            w
        }
        fn u32(&mut self, v: u32) -> &mut Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn u64(&mut self, v: u64) -> &mut Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn str(&mut self, s: &str) -> &mut Self {
            self.u64(s.len() as u64);
            self.0.extend_from_slice(s.as_bytes());
            self
        }
    }

    #[test]
    fn a_hand_written_file_parses_to_its_contents() {
        let mut w = Writer::header(1, 2);
        w.str("general.architecture").u32(8).str("llama");
        w.str("general.alignment").u32(4).u32(64);
        w.str("w").u32(2).u64(64).u64(2).u32(0).u64(0);
        // Header is 4+4+8+8 + (8+20+4+8+5) + (8+17+4+4) + (8+1+4+16+4+8) = 143 bytes: data at 192.
        let header_len = w.0.len() as u64;
        assert_eq!(header_len, 143);
        let file_len = 192 + 64 * 2 * 4;
        let gguf = Gguf::parse(&w.0, file_len).unwrap();
        assert_eq!(gguf.alignment, 64);
        assert_eq!(gguf.data_offset, 192);
        assert_eq!(gguf.get("general.architecture").and_then(Value::as_str), Some("llama"));
        let t = &gguf.tensors[0];
        assert_eq!((t.file_offset, t.byte_len, t.element_count()), (192, 512, 128));
        assert_eq!(t.ggml_type, GgmlType::F32);
    }

    #[test]
    fn tensors_sharing_bytes_are_refused() {
        let table = |second_offset: u64| {
            let mut w = Writer::header(2, 0);
            w.str("a").u32(1).u64(64).u32(0).u64(0);
            w.str("b").u32(1).u64(64).u32(0).u64(second_offset);
            w.0
        };
        let file_len = 4096;
        // "a" holds bytes [0, 256) of the data section; "b" starting at 224 shares its last 32.
        match Gguf::parse(&table(224), file_len) {
            Err(GgufError::OverlappingTensors { first, second, .. }) => {
                assert_eq!((first, second), ("a".into(), "b".into()))
            }
            other => panic!("expected overlapping tensors, got {other:?}"),
        }
        assert!(matches!(Gguf::parse(&table(0), file_len), Err(GgufError::OverlappingTensors { .. })));
        let gguf = Gguf::parse(&table(256), file_len).unwrap();
        assert_eq!(gguf.tensors[1].file_offset - gguf.tensors[0].file_offset, 256);
    }

    #[test]
    fn alignment_must_be_a_u32_power_of_two() {
        let mut w = Writer::header(0, 1);
        w.str("general.alignment").u32(4).u32(24);
        assert!(matches!(Gguf::parse(&w.0, 1000), Err(GgufError::BadAlignment(24))));
        let mut w = Writer::header(0, 1);
        w.str("general.alignment").u32(10).u64(32);
        assert!(matches!(Gguf::parse(&w.0, 1000), Err(GgufError::WrongValueType { .. })));
    }

    #[test]
    fn deeply_nested_arrays_are_rejected() {
        let mut w = Writer::header(0, 1);
        w.str("nest");
        w.u32(9);
        for _ in 0..MAX_ARRAY_NESTING + 1 {
            w.u32(9).u64(1);
        }
        w.u32(0).u64(0);
        let len = w.0.len() as u64;
        assert!(matches!(Gguf::parse(&w.0, len), Err(GgufError::NestingTooDeep { .. })));
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let mut w = Writer::header(0, 2);
        w.str("k").u32(4).u32(1);
        w.str("k").u32(4).u32(2);
        let len = w.0.len() as u64;
        assert!(matches!(Gguf::parse(&w.0, len), Err(GgufError::DuplicateKey(k)) if k == "k"));
    }

    #[test]
    fn invalid_utf8_in_a_key_is_rejected() {
        let mut w = Writer::header(0, 1);
        w.u64(2);
        w.0.extend_from_slice(&[0xff, 0xfe]);
        w.u32(4).u32(1);
        let len = w.0.len() as u64;
        assert!(matches!(Gguf::parse(&w.0, len), Err(GgufError::InvalidUtf8 { offset: 32, .. })));
    }
}
