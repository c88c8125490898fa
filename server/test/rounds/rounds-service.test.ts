/**
 * RoundsService without sockets: the real engine, a real SQLite file, the real ModelsService and
 * the in-memory device directory fed the way the gateway feeds it. Covers what integration tests
 * cannot time: an operator cancel racing the commit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ConflictException } from '@nestjs/common';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { LocalRoundLeases } from '../../src/storage/round-lease.js';
import { InMemoryDeviceDirectory } from '../../src/devices/in-memory-device-directory.js';
import { FlockEventBus } from '../../src/events/event-bus.js';
import { MetricsService } from '../../src/metrics/metrics.service.js';
import { ensureTfBackend } from '../../src/models/default-model.js';
import { ModelsService } from '../../src/models/models.service.js';
import { TestSetEvaluationService } from '../../src/models/test-set-evaluation.service.js';
import { modelToParts } from '../../src/models/tfjs-format.js';
import { RoundCommitter } from '../../src/rounds/round-commit.js';
import type { RoundParams } from '../../src/contract/index.js';
import { RoundsService } from '../../src/rounds/rounds.service.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import type { Storage } from '../../src/storage/storage.js';
import { waitFor } from '../support/coordinator.js';

const PARAMS: RoundParams = {
  minClients: 2,
  targetClients: 2,
  overSelection: 1,
  selectionTimeoutMs: 5000,
  deadlineMs: 10_000,
  plan: { epochs: 1, batchSize: 10, learningRate: 0.1 },
  strategy: 'fedavg',
  strategyOptions: {},
  maxUpdateNorm: null,
  differentialPrivacy: null,
};

/** Holds one storage call until released, and says when it started. */
class Gate {
  started!: () => void;
  readonly entered = new Promise<void>((resolve) => (this.started = resolve));
  release!: () => void;
  readonly open = new Promise<void>((resolve) => (this.release = resolve));
}

let dir: string;
let storage: SqliteStorage;
let rounds: RoundsService;
let models: ModelsService;
let devices: InMemoryDeviceDirectory;
const gates: { commit?: Gate; committingTransition?: Gate } = {};

beforeAll(async () => {
  await ensureTfBackend();
});

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flock-rounds-service-'));
  const config = loadConfig({}, { dataDir: dir, operatorToken: 'operator-token-0123456789', clientToken: 'client-token-0123456789ab', testSet: 'none' });
  storage = new SqliteStorage(join(dir, 'flock.db'));
  await storage.init();
  // The real storage, with chosen calls held at a gate.
  const gated = new Proxy(storage, {
    get(target, name, receiver) {
      const value: unknown = Reflect.get(target, name, receiver);
      if (name === 'commitRound' && gates.commit) {
        const gate = gates.commit;
        return async (...args: Parameters<Storage['commitRound']>) => {
          gate.started();
          await gate.open;
          return (target as Storage).commitRound(...args);
        };
      }
      if (name === 'appendTransition' && gates.committingTransition) {
        const gate = gates.committingTransition;
        return async (...args: Parameters<Storage['appendTransition']>) => {
          if (args[0].to === 'committing') {
            gate.started();
            await gate.open;
          }
          return target.appendTransition(...args);
        };
      }
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  const metrics = new MetricsService();
  const bus = new FlockEventBus();
  models = new ModelsService(gated, config, new TestSetEvaluationService(config, gated, metrics, bus));
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 })] });
  const parts = await modelToParts(model);
  model.dispose();
  await models.register(parts.topology, parts.weightSpecs, new Float32Array(parts.weights.buffer.slice(0)));
  devices = new InMemoryDeviceDirectory(bus, metrics);
  rounds = new RoundsService(gated, config, devices, models, new RoundCommitter(gated, config, models, metrics), bus, metrics, new LocalRoundLeases());
  await rounds.onApplicationBootstrap();
  for (const id of ['a', 'b']) {
    await devices.connect(id, `socket-${id}`, { address: '127.0.0.1', userKey: null });
    await devices.setConditions(id, { eligible: true, reasons: [] });
  }
});

afterEach(async () => {
  gates.commit?.release();
  gates.committingTransition?.release();
  delete gates.commit;
  delete gates.committingTransition;
  await rounds.onApplicationShutdown();
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts a round, waits for reporting, and has both devices upload a zero delta. */
async function reportBoth(): Promise<string> {
  const { id } = await rounds.start(PARAMS);
  await waitFor(
    () => rounds.get(id),
    (view) => view.status === 'reporting',
    5000,
    'reporting',
  );
  const delta = new Float32Array(3 * 2 + 2);
  for (const clientId of ['a', 'b']) {
    const result = await rounds.handleUpload(clientId, {
      roundId: id,
      modelVersion: 1,
      numExamples: 10,
      trainLoss: 0.5,
      delta: { shapes: [[3, 2], [2]], data: delta.buffer.slice(0) },
    });
    expect(result).toEqual({ accepted: true });
  }
  return id;
}

describe('RoundsService and an operator cancel during the commit', () => {
  it('commits a round with the same persisted transitions as ever, and frees its devices', async () => {
    const id = await reportBoth();
    const view = await waitFor(
      () => rounds.get(id),
      (v) => v.status === 'committed',
      5000,
      'commit',
    );
    expect(view.transitions.map((t) => [t.from, t.to, t.note])).toEqual([
      [null, 'selecting', null],
      ['selecting', 'configuring', '2 client(s) selected'],
      ['configuring', 'reporting', null],
      ['reporting', 'committing', 'target reached'],
      ['committing', 'committed', 'target reached'],
    ]);
    expect(view.committedVersion).toBe(2);
    expect(await devices.counts()).toEqual({ connected: 2, eligible: 2, inRound: 0 });
  });

  it('aborts without writing a version when the cancel comes before the commit transaction', async () => {
    gates.committingTransition = new Gate();
    const id = await reportBoth();
    await gates.committingTransition.entered;
    const cancelled = rounds.cancel(id);
    gates.committingTransition.release();
    expect((await cancelled).status).toBe('aborted');
    const view = await rounds.get(id);
    expect(view.transitions.map((t) => t.to)).toEqual(['selecting', 'configuring', 'reporting', 'committing', 'aborted']);
    expect(view.committedVersion).toBeNull();
    expect((await models.current())?.version).toBe(1);
    expect(await storage.getRound(id)).toMatchObject({ status: 'aborted', error: 'cancelled by an operator' });
  });

  it('refuses the cancel once the commit transaction has begun, and the round stays committed', async () => {
    gates.commit = new Gate();
    const id = await reportBoth();
    await gates.commit.entered;
    const cancelled = rounds.cancel(id);
    gates.commit.release();
    await expect(cancelled).rejects.toThrow(ConflictException);
    await expect(cancelled).rejects.toThrow(/already ended \(committed\)/);
    expect((await models.current())?.version).toBe(2);
    expect(await storage.getRound(id)).toMatchObject({ status: 'committed', committedVersion: 2, error: null });
    expect((await storage.listTransitions(id)).map((t) => t.to)).toEqual(['selecting', 'configuring', 'reporting', 'committing', 'committed']);
  });
});
