/**
 * Runs one secure round in memory: real device sessions and a real server session, the messages
 * passed between them as the coordinator would relay them, with chosen devices dropping out at a
 * chosen phase. What the server session receives is recorded, to check what it could see.
 */
import type { KeyAgreement } from '../../src/protocol/secagg-messages.js';
import { SecAggDeviceSession, SecAggServerSession, encodeInput, type SecAggResult } from '../../src/secagg/index.js';

export type DropPhase = 'advertise' | 'shareKeys' | 'maskedInput' | 'unmasking';

export interface SimulatedUpdate {
  delta: Float32Array;
  numExamples: number;
  trainLoss: number;
}

export interface SimulationOptions {
  devices: number;
  deltaLength: number;
  /** How many devices drop, and in which phase (they send nothing from that phase on). */
  drop?: { phase: DropPhase; count: number };
  clipNorm?: number;
  maxWeight?: number;
  thresholdFraction?: number;
  neighbours?: number;
  minDevices?: number;
  seed?: number;
  /** Default P-256. */
  keyAgreement?: KeyAgreement;
  /** Distributed DP: the round's noise multiplier (devices add their share of the noise). */
  noiseMultiplier?: number;
}

export interface SimulationOutcome {
  result: SecAggResult | { failed: string };
  updates: SimulatedUpdate[];
  /** Indices (0-based, in device order) of the devices whose inputs should be in the sum. */
  summed: number[];
  /** Every masked input the server received, with the sender's own encoding of its input. */
  seen: { masked: Uint32Array; plain: Uint32Array }[];
}

/** A deterministic pseudo-random delta (mulberry32), values in [-scale, scale). */
export function pseudoRandomDelta(length: number, seed: number, scale = 0.05): Float32Array {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Float32Array.from({ length }, () => (next() * 2 - 1) * scale);
}

function expectAccepted(ack: { accepted: boolean; message?: string }, what: string): void {
  if (!ack.accepted) throw new Error(`${what} refused: ${ack.message}`);
}

export async function simulateSecureRound(options: SimulationOptions): Promise<SimulationOutcome> {
  const { devices, deltaLength } = options;
  const clipNorm = options.clipNorm ?? 10;
  const maxWeight = options.maxWeight ?? 1000;
  const roundId = 'round-1';
  const keyAgreement = options.keyAgreement ?? 'P-256';
  const server = new SecAggServerSession({
    roundId,
    modelVersion: 1,
    deltaLength,
    clipNorm,
    maxWeight,
    thresholdFraction: options.thresholdFraction ?? 0.5,
    ...(options.neighbours !== undefined ? { neighbours: options.neighbours } : {}),
    keyAgreement,
    graphSeed: options.seed ?? 7,
    minDevices: options.minDevices ?? 2,
    ...(options.noiseMultiplier !== undefined ? { noiseMultiplier: options.noiseMultiplier } : {}),
  });
  const updates = Array.from({ length: devices }, (_, i) => ({
    delta: pseudoRandomDelta(deltaLength, 1000 + i),
    numExamples: 50 + ((i * 37) % 400),
    trainLoss: 0.5 + i / devices,
  }));
  // The last `count` devices drop (device order is the index order the server assigns).
  const dropped = new Set<number>();
  if (options.drop) for (let i = devices - options.drop.count; i < devices; i++) dropped.add(i);
  const active = (i: number, phase: DropPhase): boolean => !(options.drop?.phase === phase && dropped.has(i)) && !dropsBefore(i, phase);
  const order: DropPhase[] = ['advertise', 'shareKeys', 'maskedInput', 'unmasking'];
  const dropsBefore = (i: number, phase: DropPhase): boolean =>
    options.drop !== undefined && dropped.has(i) && order.indexOf(options.drop.phase) < order.indexOf(phase);

  const sessions = await Promise.all(updates.map(() => SecAggDeviceSession.create(roundId, keyAgreement)));
  const ids = sessions.map((_, i) => `device-${i}`);
  for (const [i, session] of sessions.entries()) {
    if (!active(i, 'advertise')) continue;
    expectAccepted(await server.receiveAdvertise(ids[i]!, { roundId, modelVersion: 1, ...session.publicKeys() }), 'advertise');
  }
  const failed = (result: object): result is { failed: string } => 'failed' in result;
  const roster = server.closeAdvertise(Date.now() + 1000);
  const seen: SimulationOutcome['seen'] = [];
  const summed = updates.map((_, i) => i).filter((i) => active(i, 'maskedInput') && active(i, 'shareKeys') && active(i, 'advertise'));
  if (failed(roster)) return { result: roster, updates, summed, seen };
  for (const [i, session] of sessions.entries()) {
    if (!active(i, 'shareKeys') || !roster.rosters.has(ids[i]!)) continue;
    expectAccepted(server.receiveShares(ids[i]!, await session.shareKeys(roster.rosters.get(ids[i]!)!)), 'shares');
  }
  const relayed = server.closeShareKeys(Date.now() + 1000);
  if (failed(relayed)) return { result: relayed, updates, summed, seen };
  for (const [i, session] of sessions.entries()) {
    const relay = relayed.relays.get(ids[i]!);
    if (!active(i, 'maskedInput') || !relay) continue;
    const masked = await session.maskInput(relay, updates[i]!);
    seen.push({
      masked: masked.slice(),
      plain: encodeInput(updates[i]!.delta, updates[i]!.numExamples, updates[i]!.trainLoss, { clipNorm, maxWeight, maxSummands: roster.rosters.size }).encoded,
    });
    expectAccepted(server.receiveMasked(ids[i]!, { roundId, data: new Uint8Array(masked.buffer) }), 'masked input');
  }
  const asked = server.closeMaskedInput(Date.now() + 1000);
  if (failed(asked)) return { result: asked, updates, summed, seen };
  for (const [i, session] of sessions.entries()) {
    const request = asked.requests.get(ids[i]!);
    if (!active(i, 'unmasking') || !request) continue;
    expectAccepted(server.receiveReveal(ids[i]!, session.unmask(request)), 'reveal');
  }
  return { result: await server.finish(), updates, summed, seen };
}
