/**
 * Builds the serverless deployment package: the bundled handler as `index.js`, the tfjs-backend-wasm
 * binaries, the model (model.json + weights.bin) and the manifest, zipped; refuses a package over the
 * platform's limits (the zip is then not left behind).
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelJson, ServerlessManifest } from '../../contract/index.js';
import { MANIFEST_FILE, MODEL_DIR, WASM_FILES } from '../package-layout.js';
import { bundleHandler } from './bundle.js';
import { AWS_LAMBDA_LIMITS, limitProblems, type PackageLimits, type PackageSizes } from './limits.js';
import type { PackagedModelSource } from './model-source.js';
import { writeZip, type PackageFile } from './zip.js';

export interface PackageOptions {
  model: PackagedModelSource;
  /** Where the zip goes. */
  out: string;
  /** Default: AWS Lambda's. */
  limits?: PackageLimits;
  /** The handler module to bundle. Default: the built server/dist/serverless/handler.js. */
  entry?: string;
  now?: Date;
}

export interface PackageResult extends PackageSizes {
  path: string;
  modelVersion: number;
  files: { name: string; bytes: number }[];
}

/** The package is over a limit: the message lists what. */
export class PackageLimitError extends Error {
  override readonly name = 'PackageLimitError';
  constructor(
    readonly sizes: PackageSizes,
    readonly problems: string[],
  ) {
    super(`the serverless package is too large: ${problems.join('; ')}`);
  }
}

const here = dirname(fileURLToPath(import.meta.url));

function wasmFiles(): PackageFile[] {
  const dir = dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'));
  return WASM_FILES.map((name) => ({ name, data: readFileSync(join(dir, name)) }));
}

function modelFiles(model: PackagedModelSource): PackageFile[] {
  const json: ModelJson = {
    format: 'layers-model',
    generatedBy: `Flock serverless packager (version ${model.version})`,
    convertedBy: null,
    modelTopology: model.parts.topology,
    weightsManifest: [{ paths: ['weights.bin'], weights: model.parts.weightSpecs.map(({ name, shape, dtype }) => ({ name, shape, dtype })) }],
  };
  return [
    { name: `${MODEL_DIR}/model.json`, data: Buffer.from(JSON.stringify(json)) },
    { name: `${MODEL_DIR}/weights.bin`, data: model.parts.weights },
  ];
}

export async function buildServerlessPackage(options: PackageOptions): Promise<PackageResult> {
  const limits = options.limits ?? AWS_LAMBDA_LIMITS;
  const manifest: ServerlessManifest = {
    modelVersion: options.model.version,
    source: options.model.source,
    packagedAt: (options.now ?? new Date()).toISOString(),
    modelPath: `${MODEL_DIR}/model.json`,
  };
  const files: PackageFile[] = [
    { name: 'index.js', data: await bundleHandler(options.entry ?? join(here, '..', 'handler.js')) },
    { name: MANIFEST_FILE, data: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`) },
    ...wasmFiles(),
    ...modelFiles(options.model),
  ];
  const out = resolve(options.out);
  await mkdir(dirname(out), { recursive: true });
  const partial = `${out}.partial`;
  try {
    const sizes = await writeZip(partial, files);
    const problems = limitProblems(sizes, limits);
    if (problems.length > 0) throw new PackageLimitError(sizes, problems);
    await rename(partial, out);
    return { path: out, ...sizes, modelVersion: options.model.version, files: files.map((file) => ({ name: file.name, bytes: file.data.byteLength })) };
  } finally {
    await rm(partial, { force: true });
  }
}
