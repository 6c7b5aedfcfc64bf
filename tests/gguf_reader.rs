//! The GGUF reader against the PyPI `gguf` package's reading of the same file, and against
//! corrupted copies of that file.

use crate::common;

use glassbox::gguf::{Gguf, GgufError, GgufFile, ModelCard};
use serde_json::json;

fn smollm2_header() -> (Vec<u8>, u64) {
    let reference = common::reference("smollm2-135m-instruct-q4_1.json");
    let data_offset = reference["data_offset"].as_u64().unwrap();
    let bytes = std::fs::read(common::model_path(common::SMOLLM2)).unwrap();
    let file_len = bytes.len() as u64;
    (bytes[..data_offset as usize].to_vec(), file_len)
}

#[test]
fn card_and_tensor_table_match_the_gguf_package() {
    let reference = common::reference("smollm2-135m-instruct-q4_1.json");
    let file = GgufFile::open(common::model_path(common::SMOLLM2)).unwrap();
    let card = ModelCard::from_gguf(&file.header).unwrap();
    assert_eq!(serde_json::to_value(&card).unwrap(), reference["card"]);
    assert_eq!(serde_json::to_value(&file.header.tensors).unwrap(), reference["tensors"]);
    assert_eq!(json!(file.header.data_offset), reference["data_offset"]);
    assert_eq!(json!(file.header.alignment), reference["alignment"]);
}

#[test]
fn tensor_bytes_are_read_from_their_offset() {
    let file = GgufFile::open(common::model_path(common::SMOLLM2)).unwrap();
    let norm = file.header.tensor("output_norm.weight").unwrap();
    let bytes = file.read_tensor(norm).unwrap();
    let whole = std::fs::read(common::model_path(common::SMOLLM2)).unwrap();
    let start = norm.file_offset as usize;
    assert_eq!(bytes, whole[start..start + 576 * 4]);
    assert!(matches!(file.header.tensor("output.weight"), Err(GgufError::NoSuchTensor(_))));
}

#[test]
fn every_truncation_of_the_header_is_a_typed_error() {
    let (header, _) = smollm2_header();
    let mut cuts: Vec<usize> = (0..256).collect();
    cuts.extend((1..400).map(|i| i * header.len() / 400));
    cuts.extend((1..64).map(|i| header.len() - i));
    for cut in cuts {
        let result = Gguf::parse(&header[..cut], cut as u64);
        assert!(
            matches!(
                result,
                Err(GgufError::Truncated { .. }
                    | GgufError::BadMagic { .. }
                    | GgufError::CountTooLarge { .. }
                    | GgufError::TensorOutOfBounds { .. })
            ),
            "cut at {cut}: {result:?}"
        );
    }
}

#[test]
fn a_prefix_of_a_longer_file_asks_for_more_bytes() {
    let (header, file_len) = smollm2_header();
    match Gguf::parse(&header[..100_000], file_len) {
        Err(GgufError::Truncated { available, file_len: len, .. }) => {
            assert_eq!(available, 100_000);
            assert_eq!(len, file_len);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(Gguf::parse(&header, file_len).is_ok());
}

#[test]
fn truncated_tensor_data_is_out_of_bounds() {
    let (header, _) = smollm2_header();
    let short_len = header.len() as u64 + 1000;
    let err = Gguf::parse(&header, short_len).unwrap_err();
    assert!(matches!(err, GgufError::TensorOutOfBounds { .. }), "{err:?}");
}

fn patched(header: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut copy = header.to_vec();
    copy[at..at + bytes.len()].copy_from_slice(bytes);
    copy
}

fn parse_err(bytes: &[u8], file_len: u64) -> GgufError {
    Gguf::parse(bytes, file_len).expect_err("corrupted header must not parse")
}

/// Offset of the u64 length that precedes the first occurrence of `text` in the header.
fn find_length_prefixed(header: &[u8], text: &str) -> usize {
    let mut needle = (text.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(text.as_bytes());
    header
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap_or_else(|| panic!("{text:?} not in header"))
}

#[test]
fn bad_magic_and_versions_are_rejected() {
    let (header, file_len) = smollm2_header();
    assert!(matches!(parse_err(&patched(&header, 0, b"GGML"), file_len), GgufError::BadMagic { .. }));
    for version in [0u32, 1, 4, 0x0300_0000] {
        let bytes = patched(&header, 4, &version.to_le_bytes());
        assert!(matches!(parse_err(&bytes, file_len), GgufError::UnsupportedVersion(v) if v == version));
    }
}

#[test]
fn huge_counts_and_lengths_are_rejected_before_allocating() {
    let (header, file_len) = smollm2_header();
    for huge in [u64::MAX, 1 << 62, file_len] {
        let tensors = patched(&header, 8, &huge.to_le_bytes());
        assert!(matches!(parse_err(&tensors, file_len), GgufError::CountTooLarge { what: "tensor", .. }));
        let metadata = patched(&header, 16, &huge.to_le_bytes());
        assert!(matches!(parse_err(&metadata, file_len), GgufError::CountTooLarge { what: "metadata entry", .. }));
        let key_len = patched(&header, 24, &huge.to_le_bytes());
        assert!(matches!(parse_err(&key_len, file_len), GgufError::Truncated { what: "metadata key", .. }));

        // tokenizer.ggml.tokens: key, then u32 value type (array), u32 element type, u64 length.
        let key = find_length_prefixed(&header, "tokenizer.ggml.tokens");
        let array_len_at = key + 8 + "tokenizer.ggml.tokens".len() + 4 + 4;
        let array = patched(&header, array_len_at, &huge.to_le_bytes());
        assert!(matches!(parse_err(&array, file_len), GgufError::CountTooLarge { what: "array element", .. }));
        let first_token_len = patched(&header, array_len_at + 8, &huge.to_le_bytes());
        assert!(matches!(parse_err(&first_token_len, file_len), GgufError::Truncated { .. }));
    }
}

#[test]
fn unknown_value_types_are_rejected() {
    let (header, file_len) = smollm2_header();
    let key = find_length_prefixed(&header, "general.architecture");
    let type_at = key + 8 + "general.architecture".len();
    for bad in [13u32, 99, u32::MAX] {
        let bytes = patched(&header, type_at, &bad.to_le_bytes());
        assert!(matches!(parse_err(&bytes, file_len), GgufError::UnknownValueType { type_id, .. } if type_id == bad));
    }
}

#[test]
fn corrupt_tensor_infos_are_rejected() {
    let (header, file_len) = smollm2_header();
    let name = "token_embd.weight";
    let record = find_length_prefixed(&header, name);
    let n_dims_at = record + 8 + name.len();
    let dims_at = n_dims_at + 4;
    let type_at = dims_at + 2 * 8;
    let offset_at = type_at + 4;

    let bytes = patched(&header, n_dims_at, &5u32.to_le_bytes());
    assert!(matches!(parse_err(&bytes, file_len), GgufError::TooManyDimensions { n_dims: 5, .. }));
    let bytes = patched(&header, type_at, &99u32.to_le_bytes());
    assert!(matches!(parse_err(&bytes, file_len), GgufError::UnknownTensorType { type_id: 99, .. }));
    let bytes = patched(&header, offset_at, &1u64.to_le_bytes());
    assert!(matches!(parse_err(&bytes, file_len), GgufError::MisalignedTensor { offset: 1, .. }));
    let bytes = patched(&header, offset_at, &(file_len / 32 * 32).to_le_bytes());
    assert!(matches!(parse_err(&bytes, file_len), GgufError::TensorOutOfBounds { .. }));
    let bytes = patched(&header, offset_at, &(u64::MAX / 32 * 32).to_le_bytes());
    assert!(matches!(parse_err(&bytes, file_len), GgufError::TensorOutOfBounds { .. }));
    let bytes = patched(&header, dims_at + 8, &u64::MAX.to_le_bytes());
    assert!(matches!(parse_err(&bytes, file_len), GgufError::TensorTooLarge { .. }));
    let bytes = patched(&header, dims_at, &33u64.to_le_bytes());
    assert!(matches!(parse_err(&bytes, file_len), GgufError::NotBlockAligned { first_dim: 33, .. }));
    let bytes = patched(&header, dims_at + 8, &1_000_000u64.to_le_bytes());
    assert!(matches!(parse_err(&bytes, file_len), GgufError::TensorOutOfBounds { .. }));
}

#[test]
fn renaming_a_tensor_to_its_neighbour_is_a_duplicate() {
    let (header, file_len) = smollm2_header();
    // "blk.0.ffn_up.weight" and "blk.0.ffn_gate.weight" differ in length, so rename within a layer
    // to a same-length name that also exists: blk.1.* -> blk.0.*.
    let record = find_length_prefixed(&header, "blk.1.attn_norm.weight");
    let bytes = patched(&header, record + 8, b"blk.0.attn_norm.weight");
    assert!(
        matches!(parse_err(&bytes, file_len), GgufError::DuplicateTensor(name) if name == "blk.0.attn_norm.weight")
    );
}

/// Thousands of random byte overwrites in the header: each parse returns, Ok or a typed error.
#[test]
fn random_corruption_never_panics() {
    let (header, file_len) = smollm2_header();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Most of the header is vocabulary; aim half the hits at the first 4 KiB, where the counts
    // and small keys live, and at the tensor table at the end.
    for round in 0..600 {
        let region = match round % 3 {
            0 => 4096,
            1 => header.len(),
            _ => header.len() - 20_000,
        };
        let at = if round % 3 == 2 { region + (next() % 19_990) as usize } else { (next() % region as u64) as usize };
        let mut bytes = header.clone();
        for i in 0..(1 + next() % 8) as usize {
            if at + i < bytes.len() {
                bytes[at + i] = next() as u8;
            }
        }
        let _ = Gguf::parse(&bytes, file_len);
    }
}

/// 150,000 tensors of 2^26 floats over a 64 TiB (sparse) file: all at one offset they declare
/// 38 TB of weights and are refused; laid end to end they fit, and the card's parameter count is
/// their exact sum, 150,000 × 2^26.
#[test]
fn a_huge_tensor_table_over_a_sparse_file_is_bounded_by_the_file() {
    let count: u64 = 150_000;
    let elements: u64 = 1 << 26;
    let table = |offset_of: &dyn Fn(u64) -> u64| {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"GGUF");
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        let key = b"general.architecture";
        bytes.extend_from_slice(&(key.len() as u64).to_le_bytes());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(&8u32.to_le_bytes());
        bytes.extend_from_slice(&5u64.to_le_bytes());
        bytes.extend_from_slice(b"llama");
        for i in 0..count {
            let name = format!("t{i}");
            bytes.extend_from_slice(&(name.len() as u64).to_le_bytes());
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(&elements.to_le_bytes());
            bytes.extend_from_slice(&0u32.to_le_bytes()); // F32
            bytes.extend_from_slice(&offset_of(i).to_le_bytes());
        }
        bytes
    };
    let file_len = 1u64 << 46;
    let shared = table(&|_| 0);
    assert!(matches!(Gguf::parse(&shared, file_len), Err(GgufError::OverlappingTensors { .. })));
    let end_to_end = table(&|i| i * elements * 4);
    let gguf = Gguf::parse(&end_to_end, file_len).unwrap();
    assert_eq!(ModelCard::from_gguf(&gguf).unwrap().parameter_count, count * elements);
}
