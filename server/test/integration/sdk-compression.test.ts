import { describe, expect, it } from 'vitest';
import { FederatedClient, ManualCondition, MemoryModelStore, splitStoredWeights, type ModelStore } from '@flock/client-sdk';
import { FileModelStore } from '@flock/client-sdk/node';
import { ClientEvent, decodeTopk, encodedDeltaBytes, encodeTopk, topkCount, type EncodedDelta } from '@flock/client-sdk/protocol';
import { CLIENT_TOKEN } from '../support/coordinator.js';
import { mnistSlice, recordingTransport, sdkTestBed } from '../support/sdk-device.js';
import { topkLayout } from '../support/topk.js';

/*
 * The SDK's compressed uploads against the real coordinator: top-k with error feedback whose
 * residual survives a restart (FileModelStore), int8, and download deltas.
 */

const VALUES = 199_210;
const MODEL_BYTES = VALUES * 4;
const INT8_BYTES = 6 * 4 + VALUES;
const FRACTION = 0.01;
const KEPT = topkCount(VALUES, FRACTION);
const TRAIN_PER_CLIENT = 100;

const bed = sdkTestBed(2 * TRAIN_PER_CLIENT);

interface Device {
  client: FederatedClient;
  sent: { event: string; args: unknown[] }[];
  /** The deltas training produced, before compression (copies), per round. */
  deltas: Map<string, Float32Array[]>;
}

function device(k: number, store: ModelStore, downloadDeltas = false): Device {
  const sent: Device['sent'] = [];
  const deltas = new Map<string, Float32Array[]>();
  const client = new FederatedClient({
    serverUrl: bed.coordinator.url,
    clientToken: CLIENT_TOKEN,
    dataSource: mnistSlice(bed.mnist, k, TRAIN_PER_CLIENT),
    conditions: [new ManualCondition('idle', 'yes'), new ManualCondition('charging', 'yes'), new ManualCondition('unmetered', 'yes')],
    store,
    downloadDeltas,
    // Records the delta as training left it; passes it on unchanged.
    transformDelta: (delta, { roundId }) => {
      deltas.set(
        roundId,
        delta.map((tensor) => new Float32Array(tensor)),
      );
      return delta;
    },
    socketOptions: { transports: ['websocket'] },
    ...recordingTransport((event, args) => sent.push({ event, args })),
  });
  bed.track(client);
  return { client, sent, deltas };
}

/** Runs a round of both devices and returns it once committed. */
async function round(devices: Device[], compression: Record<string, unknown>) {
  const uploads = devices.map((d) => d.client.next('uploaded'));
  const roundId = await bed.coordinator.startRound({
    minClients: 2,
    targetClients: 2,
    overSelection: 1,
    epochs: 1,
    batchSize: 10,
    learningRate: 0.05,
    compression,
  });
  for (const uploaded of await Promise.all(uploads)) expect(uploaded).toMatchObject({ roundId, result: { accepted: true } });
  const ended = await bed.coordinator.roundEnded(roundId, 60_000);
  expect(ended.status).toBe('committed');
  return ended;
}

const sentUpload = (d: Device, roundId: string): EncodedDelta =>
  (d.sent.find((m) => m.event === ClientEvent.update && (m.args[0] as { roundId: string }).roundId === roundId)!.args[0] as { delta: EncodedDelta }).delta;
const bytesOf = (data: ArrayBuffer | Uint8Array): Uint8Array => (data instanceof ArrayBuffer ? new Uint8Array(data) : data);
const flat = (tensors: Float32Array[]): Float32Array => Float32Array.from(tensors.flatMap((t) => Array.from(t)));

describe('SDK compressed uploads against the real bed.coordinator', () => {
  it('top-k with error feedback (residual persisted across a restart), int8, and download deltas', async () => {
    const dir = bed.tempDir('flock-sdk-residual-');
    const first = device(0, new FileModelStore(dir), true);
    const helper = device(1, new MemoryModelStore());
    await Promise.all([first.client.start(), helper.client.start()]);
    await bed.coordinator.eligible(2);

    // Round 1, top-k: the upload is the top 1% of the delta; the rest is the stored residual.
    const round1 = await round([first, helper], { kind: 'topk', topkFraction: FRACTION });
    const upload1 = sentUpload(first, round1.id);
    expect(upload1.encoding).toBe('topk');
    // 37 bytes per tensor, half a byte per kept value, at least a bit of gap each, at most encodedDeltaBytes.
    const bytes1 = bytesOf(upload1.data).byteLength;
    expect(bytes1).toBeGreaterThanOrEqual(6 * 37 + Math.ceil(KEPT / 2) + Math.ceil(KEPT / 8));
    expect(bytes1).toBeLessThanOrEqual(encodedDeltaBytes('topk', upload1.shapes, KEPT));
    const delta1 = first.deltas.get(round1.id)!;
    const sent1 = decodeTopk(bytesOf(upload1.data), upload1.shapes, KEPT);
    const kept1 = new Set(topkLayout(bytesOf(upload1.data), upload1.shapes).positions);
    expect(kept1.size).toBe(KEPT);
    expect(round1.metrics.bytesUp).toBeGreaterThanOrEqual(bytes1 + 6 * 37 + Math.ceil(KEPT / 2) + Math.ceil(KEPT / 8));
    // Both fetched version 1 whole (they held no global model).
    expect(round1.metrics.bytesDown).toBeGreaterThanOrEqual(2 * MODEL_BYTES);
    expect(round1.metrics.bytesDown % MODEL_BYTES).toBe(0);
    await bed.dispose(first.client);

    const stored1 = await new FileModelStore(dir).loadModel('residual');
    expect(stored1?.version).toBe(round1.baseVersion);
    const residual1 = flat(splitStoredWeights(stored1!));
    const input1 = flat(delta1);
    // The residual: what was left out, and the rounding of what was sent.
    for (let i = 0; i < VALUES; i++) expect(residual1[i]).toBe(kept1.has(i) ? Math.fround(input1[i]! - sent1[i]!) : input1[i]);

    // Restarted (same store): round 2's upload is top-k of (delta + the persisted residual).
    const restarted = device(0, new FileModelStore(dir), true);
    await restarted.client.start();
    await bed.coordinator.eligible(2);
    const round2 = await round([restarted, helper], { kind: 'topk', topkFraction: FRACTION });
    const delta2 = restarted.deltas.get(round2.id)!;
    const corrected = delta2.map((tensor, t) => {
      const residual = splitStoredWeights(stored1!)[t]!;
      return Float32Array.from(tensor, (v, i) => v + residual[i]!);
    });
    const upload2 = sentUpload(restarted, round2.id);
    // The same selection as top-k of (delta + residual): counts, levels, Rice parameters and gaps equal; the codes drawn anew.
    const data2 = bytesOf(upload2.data);
    const expected2 = encodeTopk(corrected, FRACTION, null).data;
    const layout2 = topkLayout(data2, upload2.shapes);
    expect(data2.byteLength).toBe(expected2.byteLength);
    expect(Buffer.from(data2.subarray(0, layout2.codesAt)).equals(Buffer.from(expected2.subarray(0, layout2.codesAt)))).toBe(true);
    expect(Buffer.from(data2.subarray(layout2.gapsAt)).equals(Buffer.from(expected2.subarray(layout2.gapsAt)))).toBe(true);
    const kept2 = new Set(layout2.positions);
    const stored2 = await new FileModelStore(dir).loadModel('residual');
    expect(stored2?.version).toBe(round2.baseVersion);
    const sent2 = decodeTopk(bytesOf(upload2.data), upload2.shapes, KEPT);
    const residual2 = flat(splitStoredWeights(stored2!));
    const input2 = flat(corrected);
    for (let i = 0; i < VALUES; i += 7) expect(residual2[i]).toBe(kept2.has(i) ? Math.fround(input2[i]! - sent2[i]!) : input2[i]);
    // It held version 1 whole and asked for version 2 as a delta from it: int8, a quarter of the bytes.
    const fetches = restarted.sent.filter((m) => m.event === ClientEvent.fetchModel).map((m) => m.args[0]);
    expect(fetches).toContainEqual({ version: round2.baseVersion, deltaFrom: round1.baseVersion });
    // The helper asks for whole models; the device (before and after its restart) for deltas.
    expect(round2.metrics.bytesDown).toBeGreaterThanOrEqual(INT8_BYTES + MODEL_BYTES);
    expect((round2.metrics.bytesDown - MODEL_BYTES) % INT8_BYTES).toBe(0);
    expect(restarted.client.modelInfo.cachedGlobalVersion).toBeGreaterThanOrEqual(round2.baseVersion);

    // Round 3, int8: 1 byte per value plus a scale per tensor; the residual is left as it was.
    const round3 = await round([restarted, helper], { kind: 'int8' });
    const upload3 = sentUpload(restarted, round3.id);
    expect(upload3.encoding).toBe('int8');
    expect(bytesOf(upload3.data).byteLength).toBe(INT8_BYTES);
    expect(round3.metrics.bytesUp).toBe(2 * INT8_BYTES);
    expect((await new FileModelStore(dir).loadModel('residual'))?.version).toBe(round2.baseVersion);
  });
});
