// Vectors are stored as little-endian float64 bytes (SQLite blob, PostgreSQL bytea): exact round
// trips, 8 bytes a dimension instead of ~19 as JSON text, and no parsing on the way in or out.

export function encodeVector(vector: readonly number[]): Buffer {
  const buffer = Buffer.allocUnsafe(vector.length * 8);
  for (let i = 0; i < vector.length; i++) buffer.writeDoubleLE(vector[i] as number, i * 8);
  return buffer;
}

export function decodeVector(bytes: Uint8Array): Float64Array {
  const out = new Float64Array(bytes.byteLength / 8);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(i * 8, true);
  return out;
}
