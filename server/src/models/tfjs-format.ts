/**
 * The TensorFlow.js layers-model format (model.json + binary weight files), so that a plain
 * `tf.loadLayersModel(url)` loads a global version and `model.save(tf.io.http(url))` registers one.
 * https://www.tensorflow.org/js/guide/save_load
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { asFloat32, BYTES_PER_VALUE, totalValues, type WeightSpec } from '@flock/client-sdk/protocol';
import { z } from 'zod';
import type { ModelJson } from '../contract/index.js';

/** File name of a version's weights, next to its model.json. */
export const WEIGHTS_FILE = 'weights.bin';

/** A model as Flock stores it: Keras topology JSON, float32 weight specs and their concatenated bytes. */
export interface ModelArtifactsParts {
  topology: unknown;
  weightSpecs: WeightSpec[];
  weights: Uint8Array;
}

/** Thrown for a model that cannot become a global version; the controller answers 400. */
export class InvalidModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidModelError';
  }
}

/**
 * The model.json of a version. The weights path is relative to the model.json URL and always names
 * the concrete version (`../7/weights.bin`), so `/api/models/current/model.json` cannot be paired
 * with the weights of a version committed between the two requests.
 */
export function buildModelJson(version: number, topology: unknown, weightSpecs: readonly WeightSpec[]): ModelJson {
  return {
    format: 'layers-model',
    generatedBy: `Flock coordinator (TensorFlow.js ${tf.version.tfjs})`,
    convertedBy: null,
    modelTopology: topology,
    weightsManifest: [{ paths: [`../${version}/${WEIGHTS_FILE}`], weights: weightSpecs.map(({ name, shape, dtype }) => ({ name, shape, dtype })) }],
  };
}

const weightSpecSchema = z
  .object({
    name: z.string().min(1).max(512),
    shape: z.array(z.number().int().min(0)).max(8),
    dtype: z.string(),
    quantization: z.unknown().optional(),
  })
  .passthrough();

const modelJsonSchema = z
  .object({
    format: z.string().optional(),
    modelTopology: z.record(z.string(), z.unknown()),
    weightsManifest: z.array(z.object({ paths: z.array(z.string()), weights: z.array(weightSpecSchema) })),
  })
  .passthrough();

function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
}

/** Validates weight specs: float32 only, unquantized, unique names. */
export function parseWeightSpecs(value: unknown): WeightSpec[] {
  const parsed = z.array(weightSpecSchema).safeParse(value);
  if (!parsed.success) throw new InvalidModelError(`invalid weight specs: ${describeIssues(parsed.error)}`);
  const names = new Set<string>();
  return parsed.data.map((spec) => {
    if (spec.dtype !== 'float32') {
      throw new InvalidModelError(`weight ${spec.name} has dtype ${spec.dtype}; Flock only moves float32 weights`);
    }
    if (spec.quantization !== undefined) {
      throw new InvalidModelError(`weight ${spec.name} is quantized; Flock needs unquantized float32 weights`);
    }
    if (names.has(spec.name)) throw new InvalidModelError(`weight name ${spec.name} appears twice`);
    names.add(spec.name);
    return { name: spec.name, shape: [...spec.shape], dtype: 'float32' };
  });
}

/** Checks the bytes against the specs: exact length, and every value finite. */
export function validateWeightBytes(weightSpecs: readonly WeightSpec[], weights: Uint8Array): void {
  const values = totalValues(weightSpecs.map((spec) => spec.shape));
  if (weights.byteLength !== values * BYTES_PER_VALUE) {
    throw new InvalidModelError(
      `weight data has ${weights.byteLength} bytes; the weight specs need ${values} float32 values = ${values * BYTES_PER_VALUE} bytes`,
    );
  }
  const floats = asFloat32(weights);
  for (let i = 0; i < floats.length; i++) {
    if (!Number.isFinite(floats[i]!)) {
      throw new InvalidModelError(`weight value ${i} is ${floats[i]}; weights must be finite`);
    }
  }
}

/** Parses a model.json (already JSON-decoded): topology, weight specs in manifest order, and the weight file paths. */
export function parseModelJson(value: unknown): { topology: unknown; weightSpecs: WeightSpec[]; paths: string[] } {
  const parsed = modelJsonSchema.safeParse(value);
  if (!parsed.success) throw new InvalidModelError(`not a TensorFlow.js model.json: ${describeIssues(parsed.error)}`);
  const { format, modelTopology, weightsManifest } = parsed.data;
  if (format !== undefined && format !== 'layers-model') {
    throw new InvalidModelError(`model.json format is "${format}"; Flock needs a layers-model (tf.LayersModel), not a graph model`);
  }
  // Within a group, weights are laid out across its shards in order; groups follow each other.
  return {
    topology: modelTopology,
    weightSpecs: parseWeightSpecs(weightsManifest.flatMap((group) => group.weights)),
    paths: weightsManifest.flatMap((group) => group.paths),
  };
}

/** Reads a model.json from disk with its weight files (paths relative to the model.json's directory). */
export async function readModelFromDisk(modelJsonPath: string): Promise<ModelArtifactsParts> {
  const path = resolve(modelJsonPath);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new InvalidModelError(`cannot read ${path}: ${(error as Error).message}`);
  }
  const { topology, weightSpecs, paths } = parseModelJson(json);
  const shards: Uint8Array[] = [];
  for (const shardPath of paths) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(shardPath) || isAbsolute(shardPath)) {
      throw new InvalidModelError(`${path}: weight path "${shardPath}" must be relative to the model.json`);
    }
    const file = resolve(dirname(path), shardPath);
    try {
      shards.push(await readFile(file));
    } catch (error) {
      throw new InvalidModelError(`${path}: cannot read weight file ${file}: ${(error as Error).message}`);
    }
  }
  const weights = concatBytes(shards);
  validateWeightBytes(weightSpecs, weights);
  return { topology, weightSpecs, weights };
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

/** An ArrayBuffer holding exactly these bytes (tfjs wants whole ArrayBuffers). */
function ownBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer;
}

/** Builds a tf.LayersModel from stored parts (the caller disposes it). Throws for a topology tfjs cannot build or weights that do not match it. */
export async function loadLayersModelFromParts(parts: ModelArtifactsParts): Promise<tf.LayersModel> {
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: parts.topology as tf.io.ModelArtifacts['modelTopology'],
      weightSpecs: parts.weightSpecs,
      weightData: ownBuffer(parts.weights),
    }),
  );
}

/** Captures a model in Flock's parts through tfjs's own serializer (layer names, weight order as tfjs writes them). */
export async function modelToParts(model: tf.LayersModel): Promise<ModelArtifactsParts> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!captured?.weightSpecs || captured.weightData === undefined) throw new Error('tfjs produced no weights');
  const weightSpecs = parseWeightSpecs(captured.weightSpecs);
  const weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(captured.weightData));
  return { topology: captured.modelTopology, weightSpecs, weights };
}

/** Checks that tfjs can build the topology and that the weights fit it, as every device will have to. */
export async function assertLoadable(parts: ModelArtifactsParts): Promise<void> {
  let model: tf.LayersModel;
  try {
    model = await loadLayersModelFromParts(parts);
  } catch (error) {
    throw new InvalidModelError(`TensorFlow.js cannot load this model: ${(error as Error).message}`);
  }
  try {
    const expected = model.weights.length;
    if (expected !== parts.weightSpecs.length) {
      throw new InvalidModelError(`the topology has ${expected} weights but the manifest lists ${parts.weightSpecs.length}`);
    }
  } finally {
    model.dispose();
  }
}
