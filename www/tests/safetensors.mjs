// The safetensors files glassbox writes (F32 tensors, string metadata), read and written by the
// browser tests independently of the Rust code: an 8-byte little-endian header length, a JSON
// header, the data.
import assert from "node:assert/strict";

/**
 * `{ tensors: { name: { shape, data: Float32Array } }, metadata }` of a file of F32 tensors, given
 * as a Buffer, a Uint8Array or an array of bytes (as a page hands one back).
 */
export function readSafetensors(bytes) {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  const headerLength = Number(buffer.readBigUInt64LE(0));
  const header = JSON.parse(buffer.subarray(8, 8 + headerLength).toString("utf8"));
  const view = new DataView(buffer.buffer, buffer.byteOffset + 8 + headerLength);
  const { __metadata__: metadata = {}, ...entries } = header;
  const tensors = {};
  for (const [name, { dtype, shape, data_offsets: [start, end] }] of Object.entries(entries)) {
    assert.equal(dtype, "F32", name);
    const data = new Float32Array((end - start) / 4);
    for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(start + 4 * i, true);
    tensors[name] = { shape, data };
  }
  return { tensors, metadata };
}

/** A file of F32 tensors (`{ name: { shape, values } }`, in order) and string `metadata`. */
export function writeSafetensors(tensors, metadata) {
  let offset = 0;
  const entries = Object.fromEntries(Object.entries(tensors).map(([name, { shape, values }]) => {
    const entry = [name, { dtype: "F32", shape, data_offsets: [offset, offset + 4 * values.length] }];
    offset += 4 * values.length;
    return entry;
  }));
  const header = Buffer.from(JSON.stringify({ __metadata__: metadata, ...entries }));
  const file = Buffer.alloc(8 + header.length + offset);
  file.writeBigUInt64LE(BigInt(header.length), 0);
  header.copy(file, 8);
  let at = 8 + header.length;
  for (const { values } of Object.values(tensors)) {
    for (const value of values) at = file.writeFloatLE(value, at);
  }
  return file;
}
