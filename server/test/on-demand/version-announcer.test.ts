/**
 * The coordinator's side of model-on-demand: each new version on the announcement exchange of a real
 * RabbitMQ, and a broker that cannot be reached never stopping the coordinator.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FlockApiClient } from '../../src/cli/api-client.js';
import { versionAnnouncementSchema } from '../../src/contract/index.js';
import { readModelFromDisk } from '../../src/models/tfjs-format.js';
import { OPERATOR_TOKEN, startTestCoordinator, waitFor } from '../support/coordinator.js';
import { writeTinyModel } from '../support/tiny-model.js';
import { AMQP_URL, brokerConnection, uniqueName } from './on-demand-helpers.js';

const modelDir = mkdtempSync(join(tmpdir(), 'flock-announcer-'));
afterAll(() => rmSync(modelDir, { recursive: true, force: true }));

async function registerTinyModel(url: string, seed: number): Promise<number> {
  const parts = await readModelFromDisk(writeTinyModel(join(modelDir, `seed-${seed}`), seed));
  const modelJson = { format: 'layers-model', modelTopology: parts.topology, weightsManifest: [{ paths: ['weights.bin'], weights: parts.weightSpecs }] };
  return (await new FlockApiClient({ baseUrl: url, token: OPERATOR_TOKEN }).registerModel({ modelJson, weights: parts.weights })).version;
}

describe('version announcements', () => {
  it('announces the current version on connecting and every new one after', async () => {
    const exchange = uniqueName('announcer');
    const broker = await brokerConnection();
    const channel = await broker.createChannel();
    await channel.assertExchange(exchange, 'fanout', { durable: true });
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, exchange, '');
    const heard: number[] = [];
    await channel.consume(queue, (message) => {
      if (message) heard.push(versionAnnouncementSchema.parse(JSON.parse(message.content.toString('utf8'))).version);
    });
    const coordinator = await startTestCoordinator({
      initialModelPath: writeTinyModel(join(modelDir, 'initial')),
      onDemand: { amqpUrl: AMQP_URL, versionsExchange: exchange },
    });
    try {
      await waitFor(
        () => heard,
        (h) => h.includes(1),
        20_000,
        'version 1 announced',
      );
      expect(await registerTinyModel(coordinator.url, 2)).toBe(2);
      await waitFor(
        () => heard,
        (h) => h.includes(2),
        20_000,
        'version 2 announced',
      );
      expect(heard).toEqual([1, 2]);
    } finally {
      await coordinator.dispose();
      await channel.deleteExchange(exchange);
      await broker.close();
    }
  });

  it('starts and serves without a reachable broker', async () => {
    const coordinator = await startTestCoordinator({ onDemand: { amqpUrl: 'amqp://guest:guest@127.0.0.1:1', versionsExchange: uniqueName('nowhere') } });
    try {
      expect((await coordinator.api('/api/health')).status).toBe(200);
      expect((await coordinator.api('/api/models')).status).toBe(200);
    } finally {
      await coordinator.dispose();
    }
  });
});
