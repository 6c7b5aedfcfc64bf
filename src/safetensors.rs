//! The safetensors format for the f32 tensors glassbox writes and reads back (recorded
//! activations, steering vectors) and reads (MiniLM's weights): an 8-byte little-endian header
//! length, a JSON header naming each tensor's dtype, shape and byte range, an optional
//! `__metadata__` map of strings, then the data. Files are untrusted: every length and range is checked before it is used.

use std::collections::BTreeMap;

use thiserror::Error;

/// One named f32 tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

#[derive(Debug, Error)]
pub enum SafetensorsError {
    #[error("not a safetensors file: {0}")]
    Malformed(String),
    #[error("tensor {name:?} is {dtype}; glassbox reads F32 tensors")]
    UnsupportedType { name: String, dtype: String },
}

/// The largest header read: real headers are a few kilobytes per hundred tensors.
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// A tensor to write, borrowed from where it lives.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
    pub data: &'a [f32],
}

/// `tensors` and `metadata` as a safetensors file, the data starting on an 8-byte boundary.
pub fn write(tensors: &[TensorView], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for tensor in tensors {
        let end = offset + 4 * tensor.data.len();
        header.insert(
            tensor.name.to_string(),
            serde_json::json!({ "dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::json!(metadata));
    }
    let mut header = serde_json::Value::Object(header).to_string().into_bytes();
    // Padded with spaces, as the format allows, so the data is aligned.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut bytes = Vec::with_capacity(8 + header.len() + offset);
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&header);
    for tensor in tensors {
        bytes.extend(tensor.data.iter().flat_map(|v| v.to_le_bytes()));
    }
    bytes
}

/// The F32 tensors of a safetensors file, in the order of their data, and its metadata.
pub fn read(bytes: &[u8]) -> Result<(Vec<NamedTensor>, BTreeMap<String, String>), SafetensorsError> {
    read_where(bytes, |_| true)
}

/// [`read`] for the tensors whose names `wanted` accepts; the others, of any dtype, are skipped
/// unread.
pub fn read_where(
    bytes: &[u8],
    wanted: impl Fn(&str) -> bool,
) -> Result<(Vec<NamedTensor>, BTreeMap<String, String>), SafetensorsError> {
    let malformed = |why: &str| SafetensorsError::Malformed(why.to_string());
    let length: [u8; 8] =
        bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| malformed("shorter than 8 bytes"))?;
    let header_len = u64::from_le_bytes(length);
    if header_len > MAX_HEADER_BYTES || header_len > (bytes.len() - 8) as u64 {
        return Err(malformed("its header length runs past the file"));
    }
    let data = &bytes[8 + header_len as usize..];
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + header_len as usize])
        .map_err(|e| SafetensorsError::Malformed(format!("its header is not a JSON object: {e}")))?;
    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            let map = entry.as_object().ok_or_else(|| malformed("__metadata__ is not an object"))?;
            for (key, value) in map {
                let value = value.as_str().ok_or_else(|| malformed("a metadata value is not a string"))?;
                metadata.insert(key.clone(), value.to_string());
            }
            continue;
        }
        if !wanted(&name) {
            continue;
        }
        let dtype = entry["dtype"].as_str().unwrap_or_default();
        if dtype != "F32" {
            return Err(SafetensorsError::UnsupportedType { name, dtype: dtype.to_string() });
        }
        let numbers = |key: &str| -> Option<Vec<usize>> {
            entry[key].as_array()?.iter().map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok())).collect()
        };
        let (Some(shape), Some(range)) = (numbers("shape"), numbers("data_offsets")) else {
            return Err(SafetensorsError::Malformed(format!("tensor {name:?} lacks a shape or data offsets")));
        };
        let elements = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let [start, end] = range[..] else {
            return Err(SafetensorsError::Malformed(format!("tensor {name:?} has {} data offsets", range.len())));
        };
        if start > end || end > data.len() || elements.and_then(|n| n.checked_mul(4)) != Some(end - start) {
            return Err(SafetensorsError::Malformed(format!(
                "tensor {name:?}: shape {shape:?} does not fit its data [{start}, {end}) of {}",
                data.len()
            )));
        }
        let values = data[start..end].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        tensors.push((start, NamedTensor { name, shape, data: values }));
    }
    tensors.sort_by_key(|(start, _)| *start);
    Ok((tensors.into_iter().map(|(_, tensor)| tensor).collect(), metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_and_bad_ones_are_refused() {
        let tensors = vec![
            NamedTensor { name: "b".into(), shape: vec![2, 3], data: (0..6).map(|i| i as f32 * 0.5).collect() },
            NamedTensor { name: "a".into(), shape: vec![1], data: vec![-7.25] },
        ];
        let metadata = BTreeMap::from([("layer".to_string(), "3".to_string())]);
        let views: Vec<TensorView> =
            tensors.iter().map(|t| TensorView { name: &t.name, shape: &t.shape, data: &t.data }).collect();
        let bytes = write(&views, &metadata);
        assert_eq!((bytes.len() - 8 - 4 * 7) % 8, 0);
        assert_eq!(read(&bytes).unwrap(), (tensors, metadata));

        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert!(read(&bytes[..8 + header_len + 10]).is_err(), "data cut short");
        assert!(read(&[0xff; 8]).is_err(), "header length past the file");
        let mut wrong_type = bytes.clone();
        let at = wrong_type.windows(3).position(|w| w == b"F32").unwrap();
        wrong_type[at..at + 3].copy_from_slice(b"F16");
        assert!(matches!(read(&wrong_type), Err(SafetensorsError::UnsupportedType { .. })));
    }
}
