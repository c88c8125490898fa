/**
 * Compact binary encoding of a server optimizer's state (FedAvgM's velocity, FedAdam's moments),
 * persisted with each model version as `serverState` and handed back next round.
 *
 * Layout, little-endian:
 *
 * | offset | size    | field                                                        |
 * |--------|---------|--------------------------------------------------------------|
 * | 0      | 4       | magic `FLKS` (0x46 0x4c 0x4b 0x53)                           |
 * | 4      | 2       | format version (1)                                           |
 * | 6      | 1       | vector count k                                               |
 * | 7      | 1       | tag length t (1..64): the strategy that wrote the state      |
 * | 8      | 4       | values per vector n (= model parameters)                     |
 * | 12     | t, pad  | tag, ASCII, zero-padded to a multiple of 4                   |
 * | 12+T   | 4·k·n   | k float32 vectors of n values, one after the other           |
 *
 * State is stored as float32 (like the model), so FedAdam costs 2 × 4 bytes per parameter.
 */

const MAGIC = [0x46, 0x4c, 0x4b, 0x53] as const; // "FLKS"
const FORMAT_VERSION = 1;
const FIXED_HEADER_BYTES = 12;
const MAX_TAG_LENGTH = 64;

/** A `serverState` that cannot be used by the strategy that received it. */
export class ServerStateError extends Error {
  override readonly name = 'ServerStateError';
}

/** What a strategy expects to find in its state. */
export interface ServerStateSpec {
  /** The strategy that owns the state (e.g. "fedadam"). */
  tag: string;
  /** Vectors it keeps (FedAvgM 1, FedAdam 2). */
  vectors: number;
  /** Values per vector: the model's parameter count. */
  length: number;
}

function paddedTagBytes(tagLength: number): number {
  return Math.ceil(tagLength / 4) * 4;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function encodeServerState(tag: string, vectors: readonly (Float32Array | Float64Array)[]): Uint8Array {
  if (!/^[\x20-\x7e]{1,64}$/.test(tag)) throw new RangeError(`state tag must be 1..${MAX_TAG_LENGTH} printable ASCII characters`);
  if (vectors.length < 1 || vectors.length > 255) throw new RangeError(`state holds 1..255 vectors, got ${vectors.length}`);
  const length = vectors[0]!.length;
  for (const vector of vectors) {
    if (vector.length !== length) throw new RangeError(`state vectors differ in length: ${vector.length} vs ${length}`);
  }
  const dataOffset = FIXED_HEADER_BYTES + paddedTagBytes(tag.length);
  const bytes = new Uint8Array(dataOffset + 4 * vectors.length * length);
  const view = new DataView(bytes.buffer);
  bytes.set(MAGIC, 0);
  view.setUint16(4, FORMAT_VERSION, true);
  view.setUint8(6, vectors.length);
  view.setUint8(7, tag.length);
  view.setUint32(8, length, true);
  for (let i = 0; i < tag.length; i++) bytes[FIXED_HEADER_BYTES + i] = tag.charCodeAt(i);
  vectors.forEach((vector, v) => {
    const offset = dataOffset + 4 * v * length; // a multiple of 4: a Float32Array may view it
    if (LITTLE_ENDIAN_HOST) {
      new Float32Array(bytes.buffer, offset, length).set(vector);
    } else {
      for (let i = 0; i < length; i++) view.setFloat32(offset + 4 * i, vector[i]!, true);
    }
  });
  return bytes;
}

/** The tag (owning strategy) of an encoded state, or null if the bytes are not one. */
export function serverStateTag(bytes: Uint8Array): string | null {
  if (bytes.length < FIXED_HEADER_BYTES || MAGIC.some((b, i) => bytes[i] !== b)) return null;
  const tagLength = bytes[7]!;
  if (tagLength < 1 || tagLength > MAX_TAG_LENGTH || bytes.length < FIXED_HEADER_BYTES + tagLength) return null;
  return String.fromCharCode(...bytes.subarray(FIXED_HEADER_BYTES, FIXED_HEADER_BYTES + tagLength));
}

/**
 * Decodes and validates a state: magic, format version, owner, vector count and length, total size,
 * finite values. Returns fresh float32 vectors (copies: `bytes` may be a view at any alignment).
 * Throws ServerStateError saying what does not match.
 */
export function decodeServerState(bytes: Uint8Array, spec: ServerStateSpec): Float32Array[] {
  if (bytes.length < FIXED_HEADER_BYTES) throw new ServerStateError(`server state is ${bytes.length} bytes, too short for a header`);
  if (MAGIC.some((b, i) => bytes[i] !== b)) throw new ServerStateError('server state is not a Flock strategy state (bad magic)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint16(4, true);
  if (version !== FORMAT_VERSION) throw new ServerStateError(`server state format version ${version} is not supported (expected ${FORMAT_VERSION})`);
  const tag = serverStateTag(bytes);
  if (tag === null) throw new ServerStateError('server state has a malformed header');
  if (tag !== spec.tag) throw new ServerStateError(`server state belongs to strategy "${tag}", not "${spec.tag}"`);
  const vectors = view.getUint8(6);
  const length = view.getUint32(8, true);
  if (vectors !== spec.vectors || length !== spec.length) {
    throw new ServerStateError(
      `server state holds ${vectors} vector(s) of ${length} values; "${spec.tag}" needs ${spec.vectors} of ${spec.length} (the model's parameter count)`,
    );
  }
  const dataOffset = FIXED_HEADER_BYTES + paddedTagBytes(tag.length);
  const expectedBytes = dataOffset + 4 * vectors * length;
  if (bytes.length !== expectedBytes) throw new ServerStateError(`server state is ${bytes.length} bytes; its header implies ${expectedBytes}`);
  const result: Float32Array[] = [];
  for (let v = 0; v < vectors; v++) {
    const start = dataOffset + 4 * v * length;
    let vector: Float32Array;
    if (LITTLE_ENDIAN_HOST) {
      vector = new Float32Array(bytes.slice(start, start + 4 * length).buffer);
    } else {
      vector = new Float32Array(length);
      for (let i = 0; i < length; i++) vector[i] = view.getFloat32(start + 4 * i, true);
    }
    for (let i = 0; i < length; i++) {
      if (!Number.isFinite(vector[i]!)) throw new ServerStateError(`server state vector ${v} has a non-finite value at index ${i}`);
    }
    result.push(vector);
  }
  return result;
}

/**
 * Loads a strategy's state for a round: `null` bytes (first round, or the previous version was
 * made by a stateless strategy) give `vectors: null` silently; unusable bytes give `vectors: null`
 * and a warning saying why, so the strategy starts from fresh state instead of failing the round.
 */
export function loadServerState(bytes: Uint8Array | null, spec: ServerStateSpec): { vectors: Float32Array[] | null; warning: string | null } {
  if (bytes === null || bytes.length === 0) return { vectors: null, warning: null };
  try {
    return { vectors: decodeServerState(bytes, spec), warning: null };
  } catch (error) {
    if (!(error instanceof ServerStateError)) throw error;
    return { vectors: null, warning: `ignored the previous server state (${error.message}); "${spec.tag}" starts from fresh state` };
  }
}
