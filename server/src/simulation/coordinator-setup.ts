/**
 * The coordinator a simulation runs against, and the version training starts from: an in-process
 * coordinator (temporary data dir, random tokens) with an untrained seeded 2NN (`init: random`) or
 * its pre-trained default as version 1; or an existing coordinator, from its current version unless
 * the operator asked to replace its live model (`init: random` + `replaceModel`, said before it is done).
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
import type { ExistingServer, ResolvedSimulationOptions } from './options.js';

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
  options: ResolvedSimulationOptions,
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
    config.privacy = { delta: options.dpDelta, budget: null };
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

/** An existing coordinator: train from its live model, or (asked for explicitly) replace it with the random 2NN, saying so first. */
async function useExisting(options: ResolvedSimulationOptions, server: ExistingServer, log: (message: string) => void): Promise<SimulationCoordinator> {
  const api = operatorClient(server);
  const live = (await api.currentModel()).version;
  if (options.init !== 'random') {
    log(`training from version ${live}, the current model of ${server.url} (it is not replaced; --init random --replace-model would)`);
    return { server, api, initialVersion: live, close: async () => undefined };
  }
  log(
    `replacing the live model of ${server.url}: an untrained 2NN (seed ${options.seed}) becomes its current version, ` +
      `devices train from it, and version ${live} stays in the history (undo: pnpm flock model rollback ${live})`,
  );
  const initialVersion = await registerInitialModel(api, await randomInitialModel(options.seed), options.seed);
  log(`registered the random 2NN as version ${initialVersion}`);
  return { server, api, initialVersion, close: async () => undefined };
}

export async function setUpCoordinator(options: ResolvedSimulationOptions, log: (message: string) => void): Promise<SimulationCoordinator> {
  if (options.server) return useExisting(options, options.server, log);
  const initial = options.init === 'random' ? await randomInitialModel(options.seed) : null;
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
