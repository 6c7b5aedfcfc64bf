//! A GGUF v3 writer: metadata, tensor table, then each tensor's data at an aligned offset. It
//! writes what the reader in this module reads, and what llama.cpp's `gguf` package reads.

use std::io::{self, Write};

use super::{Array, GgmlType, Value, DEFAULT_ALIGNMENT, MAGIC};

/// Metadata entries in the order they are written.
pub type Metadata = Vec<(String, Value)>;

/// One tensor to write: `shape` in GGUF order (the contiguous dimension first) and its encoded
/// bytes, whose length must match the shape and type.
pub struct NewTensor {
    pub name: String,
    pub ggml_type: GgmlType,
    pub shape: Vec<u64>,
    pub data: Vec<u8>,
}

impl NewTensor {
    fn expected_len(&self) -> Option<u64> {
        let elements = self.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d))?;
        let blocks = elements / self.ggml_type.block_size();
        (elements % self.ggml_type.block_size() == 0).then(|| blocks * self.ggml_type.bytes_per_block())
    }
}

fn write_string(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(&(s.len() as u64).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

fn write_array(out: &mut impl Write, array: &Array) -> io::Result<()> {
    macro_rules! items {
        ($values:expr, $id:expr, |$v:ident| $write:expr) => {{
            out.write_all(&($id as u32).to_le_bytes())?;
            out.write_all(&($values.len() as u64).to_le_bytes())?;
            for $v in $values {
                $write;
            }
        }};
    }
    match array {
        Array::U8(v) => items!(v, 0, |x| out.write_all(&[*x])?),
        Array::I8(v) => items!(v, 1, |x| out.write_all(&x.to_le_bytes())?),
        Array::U16(v) => items!(v, 2, |x| out.write_all(&x.to_le_bytes())?),
        Array::I16(v) => items!(v, 3, |x| out.write_all(&x.to_le_bytes())?),
        Array::U32(v) => items!(v, 4, |x| out.write_all(&x.to_le_bytes())?),
        Array::I32(v) => items!(v, 5, |x| out.write_all(&x.to_le_bytes())?),
        Array::F32(v) => items!(v, 6, |x| out.write_all(&x.to_le_bytes())?),
        Array::Bool(v) => items!(v, 7, |x| out.write_all(&[u8::from(*x)])?),
        Array::String(v) => items!(v, 8, |x| write_string(out, x)?),
        Array::Array(v) => items!(v, 9, |x| write_array(out, x)?),
        Array::U64(v) => items!(v, 10, |x| out.write_all(&x.to_le_bytes())?),
        Array::I64(v) => items!(v, 11, |x| out.write_all(&x.to_le_bytes())?),
        Array::F64(v) => items!(v, 12, |x| out.write_all(&x.to_le_bytes())?),
    }
    Ok(())
}

fn write_value(out: &mut impl Write, value: &Value) -> io::Result<()> {
    out.write_all(&(value.value_type() as u32).to_le_bytes())?;
    match value {
        Value::U8(x) => out.write_all(&[*x]),
        Value::I8(x) => out.write_all(&x.to_le_bytes()),
        Value::U16(x) => out.write_all(&x.to_le_bytes()),
        Value::I16(x) => out.write_all(&x.to_le_bytes()),
        Value::U32(x) => out.write_all(&x.to_le_bytes()),
        Value::I32(x) => out.write_all(&x.to_le_bytes()),
        Value::F32(x) => out.write_all(&x.to_le_bytes()),
        Value::Bool(x) => out.write_all(&[u8::from(*x)]),
        Value::String(s) => write_string(out, s),
        Value::Array(a) => write_array(out, a),
        Value::U64(x) => out.write_all(&x.to_le_bytes()),
        Value::I64(x) => out.write_all(&x.to_le_bytes()),
        Value::F64(x) => out.write_all(&x.to_le_bytes()),
    }
}

fn padding(len: u64) -> usize {
    ((DEFAULT_ALIGNMENT - len % DEFAULT_ALIGNMENT) % DEFAULT_ALIGNMENT) as usize
}

/// [`write_gguf`] into a new file at `path`.
pub fn write_gguf_file(path: &std::path::Path, metadata: &[(String, Value)], tensors: &[NewTensor]) -> io::Result<()> {
    let mut writer = io::BufWriter::new(std::fs::File::create(path)?);
    write_gguf(&mut writer, metadata, tensors)?;
    writer.flush()
}

/// Writes a GGUF v3 file with the default alignment (32 bytes). A tensor whose data does not
/// match its shape and type is an `InvalidInput` error, before anything is written.
pub fn write_gguf(out: &mut impl Write, metadata: &[(String, Value)], tensors: &[NewTensor]) -> io::Result<()> {
    for t in tensors {
        if t.expected_len() != Some(t.data.len() as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "tensor {}: {} bytes do not hold {:?} values of type {}",
                    t.name,
                    t.data.len(),
                    t.shape,
                    t.ggml_type
                ),
            ));
        }
    }
    let mut header = Vec::new();
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&3u32.to_le_bytes());
    header.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    header.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        write_string(&mut header, key)?;
        write_value(&mut header, value)?;
    }
    let mut offset = 0u64;
    for t in tensors {
        write_string(&mut header, &t.name)?;
        header.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
        for d in &t.shape {
            header.extend_from_slice(&d.to_le_bytes());
        }
        header.extend_from_slice(&t.ggml_type.id().to_le_bytes());
        header.extend_from_slice(&offset.to_le_bytes());
        offset += t.data.len() as u64;
        offset += padding(offset) as u64;
    }
    header.resize(header.len() + padding(header.len() as u64), 0);
    out.write_all(&header)?;
    for t in tensors {
        out.write_all(&t.data)?;
        out.write_all(&vec![0; padding(t.data.len() as u64)])?;
    }
    Ok(())
}
