/**
 * The coordinator a simulation runs against, and its version 1: an in-process coordinator (temporary
 * data dir, random tokens) or an existing one, starting from an untrained seeded 2NN (`init: random`)
 * or the coordinator's pre-trained default.
 */
import { MAX_UPDATE_EXAMPLES } from '@flock/client-sdk/protocol';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlockApiClient } from '../cli/api-client.js';
import { loadConfig } from '../config/config.js';
import { createCoordinator } from '../coordinator.js';
import { build2NN } from '../models/default-model.js';
import { modelToParts, type ModelArtifactsParts } from '../models/tfjs-format.js';
import { noKeepAliveFetch } from './http-fetch.js';
import type { ExistingServer, SimulationOptions } from './options.js';

export interface SimulationCoordinator {
  server: ExistingServer;
  api: FlockApiClient;
  initialVersion: number;
  /** Stops the in-process coordinator and deletes its data (nothing for an existing one). */
  close(): Promise<void>;
}

async function randomInitialModel(seed: number): Promise<ModelArtifactsParts> {
  const model = build2NN(seed);
  try {
    return await modelToParts(model);
  } finally {
    model.dispose();
  }
}

function operatorClient(server: ExistingServer): FlockApiClient {
  return new FlockApiClient({ baseUrl: server.url, token: server.operatorToken, timeoutMs: 60_000, fetch: noKeepAliveFetch });
}

/** A coordinator in this process, on a temporary data dir, with `initial` (if any) as version 1. */
async function startInProcess(
  options: SimulationOptions,
  initial: ModelArtifactsParts | null,
): Promise<{ server: ExistingServer; close: () => Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'flock-sim-'));
  const removeDataDir = (): void => rmSync(dataDir, { recursive: true, force: true });
  try {
    let initialModelPath: string | null = null;
    if (initial) {
      initialModelPath = join(dataDir, 'initial-model.json');
      writeFileSync(join(dataDir, 'initial-weights.bin'), initial.weights);
      writeFileSync(
        initialModelPath,
        JSON.stringify({
          format: 'layers-model',
          modelTopology: initial.topology,
          weightsManifest: [{ paths: ['initial-weights.bin'], weights: initial.weightSpecs }],
        }),
      );
    }
    const config = loadConfig(
      {},
      {
        port: 0,
        host: '127.0.0.1',
        dataDir,
        clientToken: randomBytes(18).toString('base64url'),
        operatorToken: randomBytes(18).toString('base64url'),
        initialModelPath,
        defaultModelTrainExamples: options.pretrainExamples,
        // The simulator's own evaluation thread tests every version (an existing --server too).
        testSet: 'none',
        // Every virtual device connects from loopback: no per-address cap (an existing --server keeps its own).
        maxConnectionsPerAddress: 0,
      },
    );
    if (!options.defenses) {
      config.maxExamplesPerUpdate = MAX_UPDATE_EXAMPLES;
      config.adaptiveExampleCap = false;
      config.updateBound = { ...config.updateBound, mode: 'off' };
      config.maxSelectedPerAddress = 0;
    }
    const coordinator = await createCoordinator(config);
    const server = { url: coordinator.url, clientToken: config.clientToken, operatorToken: config.operatorToken };
    return { server, close: () => coordinator.close().finally(removeDataDir) };
  } catch (error) {
    removeDataDir();
    throw error;
  }
}

/** Registers the simulation's initial model with an existing coordinator; returns its version. */
async function registerInitialModel(api: FlockApiClient, model: ModelArtifactsParts, seed: number): Promise<number> {
  const modelJson = {
    modelTopology: model.topology,
    format: 'layers-model',
    weightsManifest: [{ paths: ['./model.weights.bin'], weights: model.weightSpecs }],
  };
  try {
    const meta = await api.registerModel({ modelJson, weights: model.weights, metrics: { initialModel: 'simulation-random-2nn', seed } });
    return meta.version;
  } catch (error) {
    throw new Error(`registering the initial model failed: ${(error as Error).message}`, { cause: error });
  }
}

export async function setUpCoordinator(options: SimulationOptions, log: (message: string) => void): Promise<SimulationCoordinator> {
  const initial = options.init === 'random' ? await randomInitialModel(options.seed) : null;
  if (options.server) {
    const api = operatorClient(options.server);
    let initialVersion: number;
    if (initial) {
      initialVersion = await registerInitialModel(api, initial, options.seed);
      log(`registered a random 2NN as version ${initialVersion}`);
    } else {
      initialVersion = (await api.currentModel()).version;
    }
    return { server: options.server, api, initialVersion, close: async () => undefined };
  }
  const { server, close } = await startInProcess(options, initial);
  log(`in-process coordinator at ${server.url}`);
  try {
    const api = operatorClient(server);
    return { server, api, initialVersion: (await api.currentModel()).version, close };
  } catch (error) {
    await close();
    throw error;
  }
}
