/**
 * The Open Inference Protocol's tensors, pure: a request (JSON, or JSON followed by tensor bytes in
 * the binary tensor extension) checked against the served model's signature and turned into the
 * rows of one Float32Array; the outputs turned into the response, JSON or binary.
 */
import {
  MAX_INFER_VALUES,
  SERVED_DATATYPE,
  v2InferRequestSchema,
  validationMessages,
  type V2InferRequest,
  type V2InferResponse,
  type V2ResponseOutput,
} from '../contract/index.js';
import type { ModelSignature } from './worker-messages.js';

/** A request the protocol or the model refuses: answered 400 with this message. */
export class InferRequestError extends Error {
  override readonly name = 'InferRequestError';
}

export interface DecodedRequest {
  request: V2InferRequest;
  /** Tensor bytes of the binary extension, by input index. */
  binary: (Uint8Array | undefined)[];
}

/** A request's JSON (parsed) checked against the protocol's schema. */
function checkInferRequest(json: unknown): V2InferRequest {
  const parsed = v2InferRequestSchema.safeParse(json);
  if (!parsed.success) throw new InferRequestError(`invalid inference request: ${validationMessages(parsed.error).join('; ')}`);
  return parsed.data;
}

/** The binary extension's JSON header, parsed and checked. */
function parseInferHeader(text: string): V2InferRequest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new InferRequestError('the inference header is not valid JSON');
  }
  return checkInferRequest(json);
}

/**
 * A client of the binary extension sends the same JSON header with every request; only the tensor
 * bytes after it change. Checked headers are kept by their text, so that JSON.parse and the schema
 * run once per distinct header, not once per request (they were a tenth of the event loop's time
 * per binary request: bench/results/serving.md). Bounded: headers longer than `maxLength`
 * characters are not kept, and the cache is emptied when it holds `maxEntries`, so a client that
 * varies its header costs at most what it cost without the cache. Kept requests are frozen: every
 * request with that header shares the object.
 */
export class InferHeaderCache {
  private readonly checked = new Map<string, V2InferRequest>();

  constructor(
    private readonly maxEntries = 256,
    private readonly maxLength = 1024,
  ) {}

  parse(text: string): V2InferRequest {
    const known = this.checked.get(text);
    if (known) return known;
    const request = deepFreeze(parseInferHeader(text));
    if (text.length <= this.maxLength) {
      if (this.checked.size >= this.maxEntries) this.checked.clear();
      this.checked.set(text, request);
    }
    return request;
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}

/**
 * Reads the body: a parsed JSON object, or (binary extension) the raw bytes whose first
 * `headerLength` bytes are the JSON header and the rest the inputs' bytes in order (the header
 * checked through `headers` when given).
 */
export function decodeInferBody(body: unknown, headerLength: number | undefined, headers?: InferHeaderCache): DecodedRequest {
  let request: V2InferRequest;
  let tail: Uint8Array | null = null;
  if (body instanceof Uint8Array) {
    const length = headerLength ?? body.byteLength;
    if (!Number.isInteger(length) || length < 0 || length > body.byteLength) {
      throw new InferRequestError(`Inference-Header-Content-Length ${headerLength} does not fit a body of ${body.byteLength} bytes`);
    }
    const text = Buffer.from(body.buffer, body.byteOffset, length).toString('utf8');
    request = headers ? headers.parse(text) : parseInferHeader(text);
    tail = body.subarray(length);
  } else request = checkInferRequest(body);
  const binary: (Uint8Array | undefined)[] = [];
  let offset = 0;
  for (const input of request.inputs) {
    const size = input.parameters?.binary_data_size;
    if (size === undefined) {
      binary.push(undefined);
      continue;
    }
    if (tail === null) throw new InferRequestError(`input ${input.name}: binary_data_size needs the binary tensor extension (Inference-Header-Content-Length)`);
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || offset + size > tail.byteLength) {
      throw new InferRequestError(`input ${input.name}: binary_data_size ${String(size)} does not fit the ${tail.byteLength - offset} bytes left`);
    }
    binary.push(tail.subarray(offset, offset + size));
    offset += size;
  }
  if (tail !== null && offset !== tail.byteLength) throw new InferRequestError(`${tail.byteLength - offset} bytes after the last binary input`);
  return { request, binary };
}

/** Flattens nested JSON arrays (row-major, at most `maxDepth` deep) of numbers into `out`; returns how many values there were (stops one past the end). */
function flattenInto(name: string, data: unknown[], out: Float32Array, maxDepth: number): number {
  let at = 0;
  const stack: { items: unknown[]; index: number }[] = [{ items: data, index: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.index >= top.items.length) {
      stack.pop();
      continue;
    }
    const item = top.items[top.index++];
    if (Array.isArray(item)) {
      if (stack.length >= maxDepth) throw new InferRequestError(`input ${name}: data is nested deeper than its shape`);
      stack.push({ items: item, index: 0 });
    } else if (typeof item !== 'number') {
      throw new InferRequestError(`input ${name}: data must hold numbers only (FP32)`);
    } else {
      if (at >= out.length) return at + 1;
      out[at++] = item;
    }
  }
  return at;
}

export interface PreparedInput {
  rows: number;
  shape: number[];
  input: Float32Array;
}

/** Checks the request's one input against the signature and returns its rows as float32. */
export function prepareInput({ request, binary }: DecodedRequest, signature: ModelSignature): PreparedInput {
  const [expected, ...others] = signature.inputs;
  if (!expected || others.length > 0)
    throw new InferRequestError(`the served model has ${signature.inputs.length} inputs; only single-input models are served`);
  if (request.inputs.length !== 1) throw new InferRequestError(`the model has one input (${expected.name}); the request has ${request.inputs.length}`);
  const given = request.inputs[0]!;
  if (given.name !== expected.name) throw new InferRequestError(`unknown input "${given.name}"; the model's input is "${expected.name}"`);
  if (given.datatype !== SERVED_DATATYPE) throw new InferRequestError(`input ${given.name}: datatype ${given.datatype} is not served; send ${SERVED_DATATYPE}`);
  const shape = given.shape;
  const fits = shape.length === expected.shape.length && shape.every((d, i) => expected.shape[i] === -1 || expected.shape[i] === d);
  if (!fits) throw new InferRequestError(`input ${given.name}: shape [${shape.join(', ')}] does not match [${expected.shape.join(', ')}] (-1: any size)`);
  const values = shape.reduce((a, b) => a * b, 1);
  const rows = shape[0]!;
  if (rows === 0) throw new InferRequestError(`input ${given.name}: no rows`);
  if (values > MAX_INFER_VALUES) throw new InferRequestError(`input ${given.name}: ${values} values; at most ${MAX_INFER_VALUES} per request`);
  const bytes = binary[0];
  let input: Float32Array;
  if (bytes !== undefined) {
    if (bytes.byteLength !== values * 4)
      throw new InferRequestError(`input ${given.name}: ${bytes.byteLength} bytes for ${values} FP32 values (${values * 4} bytes)`);
    // Copied: aligned, and owned so it can be transferred to a worker.
    input = new Float32Array(values);
    new Uint8Array(input.buffer).set(bytes);
  } else {
    if (!given.data) throw new InferRequestError(`input ${given.name}: no data`);
    input = new Float32Array(values);
    const written = flattenInto(given.name, given.data, input, shape.length);
    if (written !== values)
      throw new InferRequestError(`input ${given.name}: ${written > values ? 'more' : `${written}`} values for shape [${shape.join(', ')}] (${values})`);
  }
  if (!allFinite(input)) {
    const at = input.findIndex((value) => !Number.isFinite(value));
    throw new InferRequestError(`input ${given.name}: value ${at} is not a finite number`);
  }
  return { rows, shape, input };
}

/**
 * Whether no value is NaN or infinite: x * 0 is 0 for every finite x and NaN otherwise (one
 * branch-free pass). Four sums, not one: the additions no longer wait on each other, which halved
 * the time of a 784-value row (0.8 to 0.4 µs, throwaway microbenchmark).
 */
function allFinite(values: Float32Array): boolean {
  let a = 0;
  let b = 0;
  let c = 0;
  let d = 0;
  const whole = values.length - (values.length % 4);
  let i = 0;
  for (; i < whole; i += 4) {
    a += values[i]! * 0;
    b += values[i + 1]! * 0;
    c += values[i + 2]! * 0;
    d += values[i + 3]! * 0;
  }
  for (; i < values.length; i++) a += values[i]! * 0;
  return a + b + c + d === 0;
}

/** Wants the outputs as bytes (binary extension): `binary_data_output` on the request, or `binary_data` on an output. */
export function wantsBinaryOutput(request: V2InferRequest): boolean {
  return request.parameters?.binary_data_output === true || (request.outputs ?? []).some((output) => output.parameters?.binary_data === true);
}

/** Checks requested output names; returns the indices of the outputs to send. */
export function selectOutputs(request: V2InferRequest, signature: ModelSignature): number[] {
  if (!request.outputs || request.outputs.length === 0) return signature.outputs.map((_, i) => i);
  return request.outputs.map((wanted) => {
    const index = signature.outputs.findIndex((output) => output.name === wanted.name);
    if (index < 0) throw new InferRequestError(`unknown output "${wanted.name}"; the model's outputs: ${signature.outputs.map((o) => o.name).join(', ')}`);
    return index;
  });
}

export interface EncodedResponse {
  /** JSON object, or the bytes of the binary extension. */
  body: V2InferResponse | Buffer;
  /** Set for binary: the JSON header's length. */
  headerLength: number | null;
}

export function encodeInferResponse(
  head: Omit<V2InferResponse, 'outputs'>,
  signature: ModelSignature,
  selected: number[],
  rows: number,
  outputs: Float32Array[],
  binary: boolean,
): EncodedResponse {
  const described: V2ResponseOutput[] = selected.map((index) => {
    const values = outputs[index]!;
    const shape = [rows, ...signature.outputs[index]!.shape.slice(1).map((d) => (d < 0 ? values.length / rows : d))];
    return binary
      ? { name: signature.outputs[index]!.name, shape, datatype: SERVED_DATATYPE, parameters: { binary_data_size: values.byteLength } }
      : { name: signature.outputs[index]!.name, shape, datatype: SERVED_DATATYPE, data: Array.from(values) };
  });
  // Named, not spread: JSON.stringify of a spread copy cost 0.8 µs more per answer (throwaway microbenchmark).
  const { model_name, model_version, id, parameters } = head;
  const response: V2InferResponse = { model_name, model_version, id, parameters, outputs: described };
  if (!binary) return { body: response, headerLength: null };
  const header = Buffer.from(JSON.stringify(response), 'utf8');
  const parts = [header, ...selected.map((index) => Buffer.from(outputs[index]!.buffer, outputs[index]!.byteOffset, outputs[index]!.byteLength))];
  return { body: Buffer.concat(parts), headerLength: header.byteLength };
}
