/**
 * The serverless function: the inference API (Open Inference Protocol, V2) of one packaged model
 * version, as an AWS Lambda handler for API Gateway proxy events (`handler`) and as a WHATWG fetch
 * handler (`fetch`, `(Request) => Promise<Response>`) for the other platforms. The packager bundles
 * this module into the zip's `index.js`, next to `flock-serverless.json`, the model and the .wasm files.
 *
 * Configuration (read once per instance, on the first call): FLOCK_INFERENCE_KEYS (required) and
 * FLOCK_INFERENCE_MAX_BODY_BYTES, checked by the coordinator's own environment schema.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseInferenceKeys } from '../config/config.js';
import { parseEnvironment } from '../config/environment.js';
import { serverlessManifestSchema, validationMessages, type ApiGatewayResult } from '../contract/index.js';
import { isServerlessResponse, requestFromEvent, resultFromResponse } from './aws-proxy.js';
import { fetchResponseOf, requestFromFetch } from './fetch-adapter.js';
import { v2ErrorResponse, type ServerlessResponse } from './http.js';
import { MANIFEST_FILE } from './package-layout.js';
import { loadServedModel, type ServedModel } from './served-model.js';
import { initServerlessBackend } from './tfjs-backend.js';
import { createV2Router, type ServerlessHandler } from './v2-router.js';

export interface HandlerOptions {
  /** Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where the manifest, the model and the .wasm files are. Default: this module's directory (the zip's root once bundled). */
  packageDir?: string;
}

export interface Handlers {
  /** AWS Lambda: an API Gateway proxy event (payload format 1.0 or 2.0) in, a proxy result out. */
  handler(event: unknown): Promise<ApiGatewayResult>;
  /** Any platform with the fetch API's Request and Response. */
  fetch(request: Request): Promise<Response>;
}

interface Instance {
  route: ServerlessHandler;
  maxBodyBytes: number;
}

/** Reads the manifest and loads its model (on the backend picked first). */
async function loadPackagedModel(packageDir: string): Promise<ServedModel> {
  const manifest = serverlessManifestSchema.safeParse(JSON.parse(await readFile(join(packageDir, MANIFEST_FILE), 'utf8')));
  if (!manifest.success) throw new Error(`${MANIFEST_FILE}: ${validationMessages(manifest.error).join('; ')}`);
  const modelPath = resolve(packageDir, manifest.data.modelPath);
  if (!modelPath.startsWith(resolve(packageDir) + sep)) throw new Error(`${MANIFEST_FILE}: modelPath leaves the package`);
  const backend = await initServerlessBackend(packageDir);
  const model = await loadServedModel(modelPath, manifest.data.modelVersion);
  console.log(JSON.stringify({ level: 'info', msg: 'model loaded', version: model.version, backend }));
  return model;
}

/** The configuration, or the error every request is answered with (a misconfigured function must say so, not crash-loop). */
function configure(env: NodeJS.ProcessEnv): { inferenceKeys: string[]; maxBodyBytes: number } | string {
  try {
    const parsed = parseEnvironment(env);
    if (parsed.FLOCK_INFERENCE_KEYS === undefined) return 'FLOCK_INFERENCE_KEYS is not set: the function needs at least one inference key';
    return { inferenceKeys: parseInferenceKeys(parsed.FLOCK_INFERENCE_KEYS), maxBodyBytes: parsed.FLOCK_INFERENCE_MAX_BODY_BYTES };
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** Handlers over one instance: configuration and model are loaded once, on the first call. */
export function createHandlers(options: HandlerOptions = {}): Handlers {
  const packageDir = options.packageDir ?? dirname(fileURLToPath(import.meta.url));
  let instance: Instance | string | null = null;
  const get = (): Instance | string => {
    if (instance !== null) return instance;
    const config = configure(options.env ?? process.env);
    if (typeof config === 'string') {
      console.error(JSON.stringify({ level: 'error', msg: 'misconfigured', err: config }));
      instance = config;
      return instance;
    }
    let model: ServedModel | null = null;
    const loading = loadPackagedModel(packageDir).then((loaded) => (model = loaded));
    loading.catch((error: unknown) => console.error(JSON.stringify({ level: 'error', msg: 'loading the model failed', err: String(error) })));
    instance = { route: createV2Router({ ...config, model: () => loading, loaded: () => model !== null }), maxBodyBytes: config.maxBodyBytes };
    return instance;
  };
  const misconfigured = (message: string): ServerlessResponse => v2ErrorResponse(500, `the function is misconfigured: ${message}`);
  return {
    async handler(event) {
      const current = get();
      if (typeof current === 'string') return resultFromResponse(misconfigured(current));
      const request = requestFromEvent(event, current.maxBodyBytes);
      return resultFromResponse(isServerlessResponse(request) ? request : await current.route(request));
    },
    async fetch(request) {
      const current = get();
      if (typeof current === 'string') return fetchResponseOf(misconfigured(current));
      const converted = await requestFromFetch(request, current.maxBodyBytes);
      return fetchResponseOf(isServerlessResponse(converted) ? converted : await current.route(converted));
    },
  };
}

const instance = createHandlers();

/** AWS Lambda's entry point (`index.handler`). */
export const handler = (event: unknown): Promise<ApiGatewayResult> => instance.handler(event);

/** The fetch form (`export default { fetch }` on Workers-style platforms). */
export const fetch = (request: Request): Promise<Response> => instance.fetch(request);
export default { fetch };
