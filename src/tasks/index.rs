//! The retrieval index (`.gbx`): labelled examples and their embeddings, built once and loaded
//! natively or in the browser.
//!
//! Layout, little-endian: `b"GBXINDEX"`, version `u32`, dims `u32`, count `u32`, metadata length
//! `u32`, the metadata as JSON (`{"embedder", "records": [...]}`), then `count × dims` f32. A file
//! is accepted only when its size is exactly what those numbers say, so no count in a hostile
//! file sizes an allocation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::embed::cosine;

const MAGIC: &[u8; 8] = b"GBXINDEX";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 * 4;
/// Wider than any sentence or LLM embedding glassbox makes (a 70B Llama's is 8192).
const MAX_DIMS: u32 = 16_384;

#[derive(Debug, Error, PartialEq)]
pub enum IndexError {
    #[error("not a glassbox index (the file does not start with GBXINDEX)")]
    BadMagic,
    #[error("index version {0} is not one this glassbox reads (it reads {VERSION})")]
    BadVersion(u32),
    #[error("the index is truncated or padded: its header implies {expected} bytes, the file has {found}")]
    BadLength { expected: u64, found: u64 },
    #[error("the index's embeddings have {0} dimensions; glassbox reads 1 to {MAX_DIMS}")]
    BadDims(u32),
    #[error("the index's metadata is not valid: {0}")]
    BadMetadata(String),
    #[error("a query of {found} dimensions does not fit this index of {expected}")]
    QueryDims { expected: usize, found: usize },
    #[error("the embeddings are {found} values but {count} records × {dims} dimensions need {expected}")]
    Shape { count: usize, dims: usize, found: usize, expected: usize },
}

/// One labelled example: its input fields (`claim`, `context`, `text`, ...) and label, its
/// domain for leave-one-domain-out retrieval, and its sentiment intensity when the index was
/// built for the affect variant.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Record {
    pub id: String,
    pub fields: BTreeMap<String, String>,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intensity: Option<f64>,
}

#[derive(Deserialize, Serialize)]
struct Metadata {
    embedder: String,
    records: Vec<Record>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Index {
    /// Which embedder made the vectors (`minilm`, or `llm:` and the model's name); queries must
    /// come from the same one.
    pub embedder: String,
    pub dims: usize,
    pub records: Vec<Record>,
    vectors: Vec<f32>,
}

/// A retrieved example and its cosine similarity to the query.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hit {
    pub record: usize,
    pub score: f32,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

impl Index {
    pub fn new(embedder: String, records: Vec<Record>, vectors: Vec<f32>) -> Result<Index, IndexError> {
        let dims = if records.is_empty() { 0 } else { vectors.len() / records.len() };
        if !records.is_empty() && (dims == 0 || dims as u64 > MAX_DIMS as u64) {
            return Err(IndexError::BadDims(dims as u32));
        }
        if dims * records.len() != vectors.len() {
            return Err(IndexError::Shape {
                count: records.len(),
                dims,
                found: vectors.len(),
                expected: dims * records.len(),
            });
        }
        Ok(Index { embedder, dims, records, vectors })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let metadata = serde_json::to_vec(&Metadata { embedder: self.embedder.clone(), records: self.records.clone() })
            .expect("records serialise");
        let mut out = Vec::with_capacity(HEADER_LEN + metadata.len() + 4 * self.vectors.len());
        out.extend_from_slice(MAGIC);
        for n in [VERSION, self.dims as u32, self.records.len() as u32, metadata.len() as u32] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&metadata);
        self.vectors.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Index, IndexError> {
        if bytes.len() < HEADER_LEN {
            return Err(if MAGIC.starts_with(bytes) || bytes.starts_with(MAGIC) {
                IndexError::BadLength { expected: HEADER_LEN as u64, found: bytes.len() as u64 }
            } else {
                IndexError::BadMagic
            });
        }
        if &bytes[..8] != MAGIC {
            return Err(IndexError::BadMagic);
        }
        let version = u32_at(bytes, 8);
        if version != VERSION {
            return Err(IndexError::BadVersion(version));
        }
        let (dims, count, metadata_len) = (u32_at(bytes, 12), u32_at(bytes, 16), u32_at(bytes, 20));
        if count > 0 && (dims == 0 || dims > MAX_DIMS) {
            return Err(IndexError::BadDims(dims));
        }
        // u64 arithmetic: u32 × u32 × 4 cannot overflow it.
        let expected = HEADER_LEN as u64 + metadata_len as u64 + 4 * dims as u64 * count as u64;
        if expected != bytes.len() as u64 {
            return Err(IndexError::BadLength { expected, found: bytes.len() as u64 });
        }
        let metadata_end = HEADER_LEN + metadata_len as usize;
        let metadata: Metadata = serde_json::from_slice(&bytes[HEADER_LEN..metadata_end])
            .map_err(|e| IndexError::BadMetadata(e.to_string()))?;
        if metadata.records.len() != count as usize {
            return Err(IndexError::BadMetadata(format!(
                "{} records listed, the header says {count}",
                metadata.records.len()
            )));
        }
        let vectors = bytes[metadata_end..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("four bytes")))
            .collect();
        Ok(Index { embedder: metadata.embedder, dims: dims as usize, records: metadata.records, vectors })
    }

    pub fn vector(&self, record: usize) -> &[f32] {
        &self.vectors[record * self.dims..(record + 1) * self.dims]
    }

    /// RAEmoLLM's retrieval: the `k` most cosine-similar records with score ≥ `min_score`,
    /// best first, skipping the query's own id and, leave-one-domain-out, every record of the
    /// query's domain.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        min_score: f32,
        own_id: Option<&str>,
        own_domain: Option<&str>,
    ) -> Result<Vec<Hit>, IndexError> {
        if query.len() != self.dims && !self.records.is_empty() {
            return Err(IndexError::QueryDims { expected: self.dims, found: query.len() });
        }
        let mut hits: Vec<Hit> = (0..self.records.len())
            .filter(|&i| {
                let r = &self.records[i];
                own_id != Some(r.id.as_str()) && (own_domain.is_none() || r.domain.as_deref() != own_domain)
            })
            .map(|i| Hit { record: i, score: cosine(query, self.vector(i)) })
            .filter(|h| h.score >= min_score)
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.record.cmp(&b.record)));
        hits.truncate(k);
        Ok(hits)
    }
}

/// The k-NN vote baseline: each label's share of the hits' summed similarity,
/// `P(label) = Σ_{hits with label} score / Σ_{hits} score`, over `labels` (in that order). With no
/// hits every label gets `None`.
pub fn vote(index: &Index, hits: &[Hit], labels: &[String]) -> Option<Vec<f64>> {
    let total: f64 = hits.iter().map(|h| h.score as f64).sum();
    if hits.is_empty() || total <= 0.0 {
        return None;
    }
    Some(
        labels
            .iter()
            .map(|label| {
                hits.iter().filter(|h| &index.records[h.record].label == label).map(|h| h.score as f64).sum::<f64>()
                    / total
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, label: &str, domain: &str) -> Record {
        Record {
            id: id.into(),
            fields: BTreeMap::from([("text".into(), id.into())]),
            label: label.into(),
            domain: Some(domain.into()),
            intensity: None,
        }
    }

    fn sample() -> Index {
        // Unit vectors at 0°, 30°, 90° and 180° from the query (1, 0): cosines 1, √3/2, 0, -1.
        let half_root3 = 3f32.sqrt() / 2.0;
        let vectors = vec![1.0, 0.0, half_root3, 0.5, 0.0, 1.0, -1.0, 0.0];
        let records = vec![record("a", "1", "x"), record("b", "0", "y"), record("c", "1", "y"), record("d", "0", "z")];
        Index::new("minilm".into(), records, vectors).unwrap()
    }

    #[test]
    fn search_ranks_by_cosine_and_applies_the_threshold_and_the_domain_rule() {
        let index = sample();
        let hits = index.search(&[2.0, 0.0], 4, 0.2, None, None).unwrap();
        let found: Vec<(usize, f32)> = hits.iter().map(|h| (h.record, h.score)).collect();
        assert_eq!(found.len(), 2, "0 and -1 fall under 0.2: {found:?}");
        assert_eq!(found[0].0, 0);
        assert!((found[0].1 - 1.0).abs() < 1e-6 && (found[1].1 - 3f32.sqrt() / 2.0).abs() < 1e-6);
        // Leave-one-domain-out drops `a` (domain x); the own id drops `b`.
        assert!(index.search(&[1.0, 0.0], 4, 0.2, None, Some("x")).unwrap().iter().all(|h| h.record != 0));
        assert!(index.search(&[1.0, 0.0], 4, 0.2, Some("b"), None).unwrap().iter().all(|h| h.record != 1));
        assert_eq!(index.search(&[1.0, 0.0], 1, -1.0, None, None).unwrap().len(), 1);
        assert!(matches!(index.search(&[1.0], 4, 0.2, None, None), Err(IndexError::QueryDims { .. })));
    }

    #[test]
    fn the_vote_splits_by_summed_similarity() {
        let index = sample();
        // Hits a (label 1, cos 1) and b (label 0, cos √3/2): P(1) = 1 / (1 + √3/2) ≈ 0.5359.
        let hits = index.search(&[1.0, 0.0], 4, 0.2, None, None).unwrap();
        let shares = vote(&index, &hits, &["0".into(), "1".into(), "2".into()]).unwrap();
        let expected_one = 1.0 / (1.0 + 3f64.sqrt() / 2.0);
        assert!(
            (shares[1] - expected_one).abs() < 1e-6
                && (shares[0] - (1.0 - expected_one)).abs() < 1e-6
                && shares[2] == 0.0
        );
        assert_eq!(vote(&index, &[], &["0".into()]), None);
    }

    #[test]
    fn a_saved_index_loads_back_and_damaged_ones_are_refused() {
        let index = sample();
        let bytes = index.to_bytes();
        assert_eq!(Index::from_bytes(&bytes).unwrap(), index);
        assert_eq!(
            Index::from_bytes(&bytes[..bytes.len() - 1]),
            Err(IndexError::BadLength { expected: bytes.len() as u64, found: bytes.len() as u64 - 1 })
        );
        assert_eq!(Index::from_bytes(b"GGUF\x03\0\0\0 and more bytes here"), Err(IndexError::BadMagic));
        assert!(matches!(Index::from_bytes(&bytes[..10]), Err(IndexError::BadLength { .. })));
        let mut version = bytes.clone();
        version[8] = 9;
        assert_eq!(Index::from_bytes(&version), Err(IndexError::BadVersion(9)));
        // A hostile count: 2³²−1 records of 16384 dims would be 256 TiB; refused by size.
        let mut count = bytes.clone();
        count[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Index::from_bytes(&count), Err(IndexError::BadLength { .. })));
        let mut dims = bytes.clone();
        dims[12..16].copy_from_slice(&(MAX_DIMS + 1).to_le_bytes());
        assert_eq!(Index::from_bytes(&dims), Err(IndexError::BadDims(MAX_DIMS + 1)));
        // Metadata listing fewer records than the header: the sizes still add up, the count not.
        let short = Index::new("minilm".into(), index.records[..3].to_vec(), vec![0.5; 6]).unwrap();
        let mut lying = short.to_bytes();
        let metadata_len = u32_at(&lying, 20) as usize;
        lying.truncate(HEADER_LEN + metadata_len);
        lying[12..16].copy_from_slice(&0u32.to_le_bytes());
        lying[16..20].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(Index::from_bytes(&lying), Err(IndexError::BadDims(0))));
    }
}
