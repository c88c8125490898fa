import { describe, expect, it } from 'vitest';
import type { KeyAgreement } from '../../src/protocol/secagg-messages.js';
import {
  addGaussian,
  combineShares,
  decodeSum,
  defaultNeighbourCount,
  deviceNoiseStd,
  encodeInput,
  addInto,
  fixedPointScales,
  NOISE_BOUND_SIGMAS,
  noiseSummands,
  neighbourGraph,
  randomBytes,
  SecAggDeviceError,
  SecAggDeviceSession,
  SecAggServerSession,
  shareThreshold,
  splitSecret,
} from '../../src/secagg/index.js';

describe('Shamir sharing over GF(2^521 - 1)', () => {
  it('any threshold of the shares rebuild the secret; other subsets of that size agree', () => {
    const secret = randomBytes(32);
    const shares = splitSecret(secret, 4, [1, 2, 3, 4, 5, 6, 7]);
    expect(combineShares(shares.slice(0, 4), 4)).toEqual(secret);
    expect(combineShares([shares[6]!, shares[2]!, shares[4]!, shares[1]!], 4)).toEqual(secret);
  });

  it('fewer than the threshold are refused, and threshold - 1 shares interpolate to something else', () => {
    const secret = randomBytes(32);
    const shares = splitSecret(secret, 3, [1, 2, 3]);
    expect(() => combineShares(shares.slice(0, 2), 3)).toThrow('2 share(s), 3 needed');
    // Interpolating a degree-2 polynomial from 2 points gives a wrong value (or none that fits 32 bytes).
    let rebuilt: Uint8Array | null = null;
    try {
      rebuilt = combineShares(shares.slice(0, 2), 2);
    } catch (error) {
      expect((error as Error).message).toMatch(/does not fit/);
    }
    if (rebuilt) expect(rebuilt).not.toEqual(secret);
  });

  it('refuses index 0, duplicate indices and bad thresholds', () => {
    const secret = randomBytes(32);
    expect(() => splitSecret(secret, 2, [0, 1])).toThrow(/from 1/);
    expect(() => splitSecret(secret, 2, [1, 1])).toThrow(/twice/);
    expect(() => splitSecret(secret, 3, [1, 2])).toThrow(/threshold/);
    expect(() => splitSecret(new Uint8Array(31), 1, [1])).toThrow(/32 bytes/);
  });
});

describe('the SecAgg+ neighbour graph', () => {
  for (const [devices, k] of [
    [10, 9],
    [100, 20],
    [1000, 30],
    [7, 4],
  ] as const) {
    it(`${devices} devices, ${k} neighbours: symmetric, no self loops, every degree ${Math.min(devices - 1, k)}`, () => {
      const graph = neighbourGraph(devices, k, 42);
      expect(graph.size).toBe(devices);
      for (const [node, neighbours] of graph) {
        expect(neighbours).not.toContain(node);
        expect(neighbours).toHaveLength(Math.min(devices - 1, k));
        for (const other of neighbours) expect(graph.get(other)).toContain(node);
      }
    });
  }

  it('grows with log n, and the threshold is a strict majority of a neighbourhood', () => {
    expect(defaultNeighbourCount(10)).toBe(9);
    expect(defaultNeighbourCount(100)).toBe(20);
    expect(defaultNeighbourCount(10_000)).toBe(40);
    expect(shareThreshold(20, 0.5)).toBe(11);
    expect(shareThreshold(9, 0.5)).toBe(6);
    expect(shareThreshold(9, 1)).toBe(10);
  });
});

describe('fixed-point encoding in Z_2^32', () => {
  it('the sum of maxSummands inputs at the clip bound does not overflow', () => {
    const params = { clipNorm: 1, maxWeight: 1000, maxSummands: 50 };
    // A delta whose whole norm sits on one coordinate: the largest value an entry can take.
    const positive = encodeInput(new Float32Array([1, 0]), 1000, 100, params).encoded;
    const negative = encodeInput(new Float32Array([-1, 0]), 1000, 100, params).encoded;
    for (const [input, sign] of [
      [positive, 1],
      [negative, -1],
    ] as const) {
      const sum = new Uint32Array(4);
      for (let i = 0; i < 50; i++) addInto(sum, input);
      const decoded = decodeSum(sum, params);
      expect(decoded.weightedDeltaSum[0]).toBeCloseTo(sign * 50 * 1000, 0);
      expect(decoded.totalWeight).toBe(50_000);
      expect(decoded.weightedLossSum).toBeCloseTo(50 * 1000 * 100, -2);
    }
  });

  it('leaves room for the noise: six of its standard deviations per device; the noise is added after clipping, never clipped', () => {
    const plain = { clipNorm: 1, maxWeight: 1, maxSummands: 10 };
    const noisy = { ...plain, noiseStd: 0.5 };
    expect(fixedPointScales(noisy).delta / fixedPointScales(plain).delta).toBeCloseTo(1 / (1 + NOISE_BOUND_SIGMAS * 0.5), 12);
    // A seeded uniform source: the same draws twice give the same noise, and the decoded value is the clipped delta plus it.
    const seeded = (): (() => number) => {
      let state = 12345;
      return () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) + 0.5) / 2 ** 32;
    };
    const delta = new Float32Array([3, 4]); // norm 5: clipped to (0.6, 0.8)
    const first = encodeInput(delta, 1, 0, noisy, seeded);
    expect(first.encoded).toEqual(encodeInput(delta, 1, 0, noisy, seeded).encoded);
    const expectedNoise = addGaussian(new Float64Array(2), 0.5, seeded());
    const decoded = decodeSum(first.encoded, noisy).weightedDeltaSum;
    const precision = 1 / fixedPointScales(noisy).delta;
    expect(Math.abs(decoded[0]! - (0.6 + expectedNoise[0]!))).toBeLessThan(precision);
    expect(Math.abs(decoded[1]! - (0.8 + expectedNoise[1]!))).toBeLessThan(precision);
  });

  it('calibrates distributed noise to the fewest summands the round accepts', () => {
    expect(noiseSummands(20, 0.5, 2)).toBe(10);
    expect(noiseSummands(20, 0.5, 12)).toBe(12); // the round's minimum, when higher
    expect(noiseSummands(3, 0.5, 5)).toBe(3); // never more than advertised
    expect(deviceNoiseStd(2, 0.5, 4)).toBeCloseTo(0.5, 12); // z C / sqrt(m)
    expect(() => deviceNoiseStd(1, 1, 0)).toThrow(/summands/);
  });

  it('clips the delta to clipNorm and the weight to maxWeight; refuses round sizes whose weights overflow', () => {
    const { clipScale, weight } = encodeInput(new Float32Array([3, 4]), 5000, 1, { clipNorm: 1, maxWeight: 1000, maxSummands: 2 });
    expect(clipScale).toBeCloseTo(0.2, 10);
    expect(weight).toBe(1000);
    expect(() => encodeInput(new Float32Array([1]), 1, 1, { clipNorm: 1, maxWeight: 1_000_000, maxSummands: 5000 })).toThrow(/overflow/);
    expect(() => encodeInput(new Float32Array([Number.NaN]), 1, 1, { clipNorm: 1, maxWeight: 10, maxSummands: 2 })).toThrow(/NaN/);
  });
});

describe('the coordinator session refuses wrong, duplicate and malformed messages', () => {
  async function advertisedRound(devices: number, keyAgreement: KeyAgreement = 'P-256') {
    const server = new SecAggServerSession({
      roundId: 'r',
      modelVersion: 3,
      deltaLength: 4,
      clipNorm: 1,
      maxWeight: 10,
      thresholdFraction: 0.5,
      keyAgreement,
      graphSeed: 1,
      minDevices: 2,
    });
    const sessions = await Promise.all(Array.from({ length: devices }, () => SecAggDeviceSession.create('r', keyAgreement)));
    for (const [i, session] of sessions.entries()) await server.receiveAdvertise(`d${i}`, { roundId: 'r', modelVersion: 3, ...session.publicKeys() });
    return { server, sessions };
  }

  it('advertisements: malformed keys, another round or version, duplicates, late ones', async () => {
    const { server, sessions } = await advertisedRound(3);
    const keys = sessions[0]!.publicKeys();
    expect(await server.receiveAdvertise('x', { roundId: 'r', modelVersion: 3, encryptionKey: new Uint8Array(10), maskingKey: keys.maskingKey })).toMatchObject(
      {
        accepted: false,
        reason: 'malformed',
      },
    );
    const offCurve = new Uint8Array(65);
    offCurve[0] = 4;
    offCurve[64] = 1;
    expect(await server.receiveAdvertise('x', { roundId: 'r', modelVersion: 3, encryptionKey: offCurve, maskingKey: keys.maskingKey })).toMatchObject({
      reason: 'malformed',
      message: 'a public key is not a usable P-256 key',
    });
    expect(await server.receiveAdvertise('x', { roundId: 'other', modelVersion: 3, ...keys })).toMatchObject({ reason: 'round_not_open' });
    expect(await server.receiveAdvertise('x', { roundId: 'r', modelVersion: 2, ...keys })).toMatchObject({ reason: 'malformed' });
    expect(await server.receiveAdvertise('d0', { roundId: 'r', modelVersion: 3, ...keys })).toMatchObject({ reason: 'duplicate' });
    expect(await server.receiveAdvertise('x', 'not an object')).toMatchObject({ reason: 'malformed' });
    server.closeAdvertise(0);
    expect(await server.receiveAdvertise('late', { roundId: 'r', modelVersion: 3, ...keys })).toMatchObject({ reason: 'wrong_phase' });
  });

  it('X25519 rounds: small-order points and keys of the other curve are refused; each key is checked once at the coordinator', async () => {
    const { server, sessions } = await advertisedRound(3, 'X25519');
    const keys = sessions[0]!.publicKeys();
    expect(keys.encryptionKey).toHaveLength(32);
    // u = 0 and u = 1 are small-order points: every agreement with them is all zeros (RFC 7748 §6.1).
    const one = new Uint8Array(32);
    one[0] = 1;
    for (const smallOrder of [new Uint8Array(32), one]) {
      expect(await server.receiveAdvertise('x', { roundId: 'r', modelVersion: 3, encryptionKey: keys.encryptionKey, maskingKey: smallOrder })).toMatchObject({
        reason: 'malformed',
        message: 'a public key is not a usable X25519 key',
      });
    }
    const p256 = (await SecAggDeviceSession.create('r', 'P-256')).publicKeys();
    expect(await server.receiveAdvertise('x', { roundId: 'r', modelVersion: 3, ...p256 })).toMatchObject({
      reason: 'malformed',
      message: "the round's key agreement is X25519 (32-byte public keys)",
    });
    const closed = server.closeAdvertise(0);
    if ('failed' in closed) throw new Error(closed.failed);
    const roster = closed.rosters.get('d0')!;
    expect(roster.keyAgreement).toBe('X25519');
    expect((roster.neighboursBytes as Uint8Array).byteLength).toBe(roster.neighbours.length * 64);
    // A device refuses a roster in another key agreement than its own keys.
    await expect((await SecAggDeviceSession.create('r', 'P-256')).shareKeys(roster)).rejects.toThrow(/X25519/);
  });

  it('shares: from a non-participant, to a non-neighbour, twice; masked inputs of the wrong size or too early', async () => {
    const { server, sessions } = await advertisedRound(3);
    const closed = server.closeAdvertise(0);
    if ('failed' in closed) throw new Error(closed.failed);
    const shares = await sessions[0]!.shareKeys(closed.rosters.get('d0')!);
    expect(server.receiveShares('stranger', shares)).toMatchObject({ reason: 'not_participant' });
    const bytes = shares.recipientsBytes as Uint8Array;
    const one = bytes.byteLength / shares.recipients.length;
    expect(server.receiveShares('d0', { ...shares, recipients: shares.recipients.slice(1), recipientsBytes: bytes.subarray(one) })).toMatchObject({
      reason: 'unknown_neighbour',
    });
    expect(server.receiveShares('d0', { ...shares, recipients: [shares.recipients[0], shares.recipients[0]] })).toMatchObject({ reason: 'unknown_neighbour' });
    expect(server.receiveShares('d0', { ...shares, recipientsBytes: bytes.subarray(1) })).toMatchObject({ reason: 'malformed' });
    expect(server.receiveMasked('d0', { roundId: 'r', data: new Uint8Array(24) })).toMatchObject({ reason: 'wrong_phase' });
    expect(server.receiveShares('d0', shares)).toEqual({ accepted: true });
    expect(server.receiveShares('d0', shares)).toMatchObject({ reason: 'duplicate' });
    for (const i of [1, 2]) expect(server.receiveShares(`d${i}`, await sessions[i]!.shareKeys(closed.rosters.get(`d${i}`)!))).toEqual({ accepted: true });
    server.closeShareKeys(0);
    expect(server.receiveMasked('d0', { roundId: 'r', data: new Uint8Array(23) })).toMatchObject({ reason: 'malformed' });
    expect(server.receiveMasked('d0', { roundId: 'r', data: [1, 2, 3] })).toMatchObject({ reason: 'malformed' });
    expect(server.receiveMasked('d0', { roundId: 'r', data: new Uint8Array(24) })).toEqual({ accepted: true });
    expect(server.receiveMasked('d0', { roundId: 'r', data: new Uint8Array(24) })).toMatchObject({ reason: 'duplicate' });
  });

  it('the device refuses to reveal both shares of one device, a roster without a majority threshold, and tampered shares', async () => {
    const { server, sessions } = await advertisedRound(3);
    const closed = server.closeAdvertise(0);
    if ('failed' in closed) throw new Error(closed.failed);
    const rosters = [0, 1, 2].map((i) => closed.rosters.get(`d${i}`)!);
    const weak = await SecAggDeviceSession.create('r', 'P-256');
    await expect(weak.shareKeys({ ...rosters[0]!, threshold: 1 })).rejects.toThrow(SecAggDeviceError);
    const dealt = await Promise.all(sessions.map((session, i) => session.shareKeys(rosters[i]!)));
    for (const [i, shares] of dealt.entries()) server.receiveShares(`d${i}`, shares);
    const relayed = server.closeShareKeys(0);
    if ('failed' in relayed) throw new Error(relayed.failed);
    const relay = relayed.relays.get('d0')!;
    const tampered = new Uint8Array(relay.sendersBytes as Uint8Array);
    tampered[20]! ^= 1;
    // Tampered bytes do not open; shares sealed for d1 do not open for d2 (another key).
    await expect(sessions[0]!.maskInput({ ...relay, sendersBytes: tampered }, { delta: new Float32Array(4), numExamples: 1, trainLoss: 0 })).rejects.toThrow(
      /do not open/,
    );
    await expect(sessions[2]!.maskInput(relayed.relays.get('d1')!, { delta: new Float32Array(4), numExamples: 1, trainLoss: 0 })).rejects.toThrow(
      /not a neighbour|do not open|addressed elsewhere/,
    );
    await sessions[0]!.maskInput(relay, { delta: new Float32Array(4), numExamples: 1, trainLoss: 0 });
    const index = rosters[0]!.index;
    const other = rosters[0]!.neighbours[0]!;
    expect(() => sessions[0]!.unmask({ roundId: 'r', survivors: [index, other], dropped: [other], deadlineAt: 0 })).toThrow(/survivor and dropped/);
    expect(() => sessions[0]!.unmask({ roundId: 'r', survivors: [other], dropped: [], deadlineAt: 0 })).toThrow(/leave this device out/);
  });
});

describe('secure aggregation messages on socket.io', () => {
  /** Binary values anywhere in a message: socket.io sends each as an attachment and refuses packets with more than 10. */
  function attachments(value: unknown): number {
    if (value instanceof Uint8Array || value instanceof ArrayBuffer) return 1;
    if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + attachments(item), 0);
    if (value && typeof value === 'object') return Object.values(value).reduce((sum: number, item) => sum + attachments(item), 0);
    return 0;
  }

  it('carry at most two binary attachments whatever the number of neighbours (here 12)', async () => {
    const server = new SecAggServerSession({
      roundId: 'r',
      modelVersion: 1,
      deltaLength: 4,
      clipNorm: 1,
      maxWeight: 10,
      thresholdFraction: 0.5,
      keyAgreement: 'P-256',
      graphSeed: 1,
      minDevices: 2,
    });
    const sessions = await Promise.all(Array.from({ length: 16 }, () => SecAggDeviceSession.create('r', 'P-256')));
    for (const [i, session] of sessions.entries()) await server.receiveAdvertise(`d${i}`, { roundId: 'r', modelVersion: 1, ...session.publicKeys() });
    const rosters = server.closeAdvertise(0);
    if ('failed' in rosters) throw new Error(rosters.failed);
    const roster = rosters.rosters.get('d0')!;
    expect(roster.neighbours).toHaveLength(12);
    expect(attachments(roster)).toBe(1);
    for (const [i, session] of sessions.entries()) {
      const shares = await session.shareKeys(rosters.rosters.get(`d${i}`)!);
      expect(attachments(shares)).toBe(1);
      expect(server.receiveShares(`d${i}`, shares)).toEqual({ accepted: true });
    }
    const relays = server.closeShareKeys(0);
    if ('failed' in relays) throw new Error(relays.failed);
    expect(attachments(relays.relays.get('d0'))).toBe(1);
    for (const [i, session] of sessions.entries()) {
      const masked = await session.maskInput(relays.relays.get(`d${i}`)!, { delta: new Float32Array(4), numExamples: 1, trainLoss: 0 });
      expect(server.receiveMasked(`d${i}`, { roundId: 'r', data: new Uint8Array(masked.buffer) })).toEqual({ accepted: true });
    }
    const requests = server.closeMaskedInput(0);
    if ('failed' in requests) throw new Error(requests.failed);
    const reveal = sessions[0]!.unmask(requests.requests.get('d0')!);
    expect(attachments(reveal)).toBe(2);
  });
});
