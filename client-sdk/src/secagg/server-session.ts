/**
 * The coordinator's side of one secure round: routing and unmasking only. It assigns indices and
 * neighbours, relays sealed shares it cannot open, adds up masked inputs as they arrive (one
 * running sum in Z_2^32: no masked input is kept, and no unmasked one ever exists here), and at the
 * end rebuilds from the survivors' shares the self-mask seeds of the devices in the sum and the
 * mask keys of the devices that dropped after sharing, and takes those masks off the sum.
 *
 * Pure protocol logic apart from WebCrypto: no sockets, no clocks. The round engine calls
 * `receive*` as messages arrive and `close*` when a phase's deadline passes or every device it
 * waits for answered or dropped; each close says what to send to whom, or why the round fails.
 * Sets, after Bonawitz et al.: U1 advertised, U2 shared keys, U3 sent a masked input.
 */
import { z } from 'zod';
import {
  secAggAdvertiseSchema,
  secAggMaskedSchema,
  secAggRevealSchema,
  secAggSharesSchema,
  type SecAggAck,
  type SecAggRefusal,
  type SecAggRelay,
  type SecAggRoster,
  type SecAggUnmask,
  type KeyAgreement,
  neighbourKeysBytes,
  PUBLIC_KEY_BYTES,
  packedRecord,
  packRecords,
  REVEALED_SHARE_BYTES,
  SEALED_SHARES_BYTES,
} from '../protocol/secagg-messages.js';
import { addInto, decodeSum, encodedLength, subtractFrom, type DecodedSum, type FixedPointParams, fixedPointScales } from './fixed-point.js';
import { deviceNoiseStd, noiseSummands } from './distributed-noise.js';
import { neighbourGraph, defaultNeighbourCount, shareThreshold } from './neighbours.js';
import { agreeKey, checkPeerKey, expandMask, importPrivateScalar, importPublicKey, KeyPurpose } from './primitives.js';
import { combineShares, type Share } from './shamir.js';
import { toBytes } from './device-session.js';
import type { WebCryptoKey } from './webcrypto.js';

export type SecAggPhase = 'advertise' | 'shareKeys' | 'maskedInput' | 'unmasking' | 'finished' | 'failed';

export interface SecAggServerOptions {
  roundId: string;
  modelVersion: number;
  /** Values in the model's delta (d); masked inputs have d + 2. */
  deltaLength: number;
  clipNorm: number;
  maxWeight: number;
  thresholdFraction: number;
  keyAgreement: KeyAgreement;
  /** Neighbours per device; absent: 2·ceil(1.5·log2 n). */
  neighbours?: number;
  /** Public seed of the neighbour graph's permutation. */
  graphSeed: number;
  /** Fewer devices than this in any set (and the sum) fail the round. */
  minDevices: number;
  /** Distributed DP: the round's noise multiplier z (devices add their share, distributed-noise.ts); absent: no noise. */
  noiseMultiplier?: number;
}

interface Member {
  clientId: string;
  index: number;
  encryptionKey: Uint8Array;
  maskingKey: Uint8Array;
  neighbours: number[];
}

export type Refused = { failed: string };
export type SecAggResult = { sum: DecodedSum; summed: number; params: FixedPointParams };

function refuse(reason: SecAggRefusal, message: string): SecAggAck {
  return { accepted: false, reason, message };
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || 'payload'}: ${issue.message}` : 'schema mismatch';
}

export class SecAggServerSession {
  private phaseNow: SecAggPhase = 'advertise';
  private readonly advertised = new Map<string, { encryptionKey: Uint8Array; maskingKey: Uint8Array }>();
  private readonly members = new Map<string, Member>();
  private readonly byIndex = new Map<number, Member>();
  private threshold = 0;
  private fixedPoint: FixedPointParams | null = null;
  /** Distributed DP: the fewest masked inputs that carry the round's noise (0: no noise). */
  private noiseSummands = 0;
  /** Sealed shares by recipient index. */
  private readonly inbox = new Map<number, { index: number; ciphertext: Uint8Array }[]>();
  private readonly sharedKeys = new Set<number>();
  private sum: Uint32Array | null = null;
  private readonly maskedInputs = new Set<number>();
  private readonly unmaskRequests = new Map<number, SecAggUnmask>();
  private readonly revealed = new Set<number>();
  private readonly seedShares = new Map<number, Share[]>();
  private readonly keyShares = new Map<number, Share[]>();
  private failure: string | null = null;

  constructor(private readonly options: SecAggServerOptions) {
    if (options.thresholdFraction < 0.5 || options.thresholdFraction > 1) throw new RangeError('thresholdFraction must be from 0.5 to 1');
  }

  get phase(): SecAggPhase {
    return this.phaseNow;
  }

  get failedBecause(): string | null {
    return this.failure;
  }

  /** The devices whose message the current phase still waits for. */
  awaiting(): string[] {
    switch (this.phaseNow) {
      case 'shareKeys':
        return [...this.members.values()].filter((m) => !this.sharedKeys.has(m.index)).map((m) => m.clientId);
      case 'maskedInput':
        return [...this.sharedKeys].filter((i) => !this.maskedInputs.has(i)).map((i) => this.byIndex.get(i)!.clientId);
      case 'unmasking':
        return [...this.unmaskRequests.keys()].filter((i) => !this.revealed.has(i)).map((i) => this.byIndex.get(i)!.clientId);
      default:
        return [];
    }
  }

  /** Counts of each set so far (for metrics and the round's record). */
  counts(): { advertised: number; sharedKeys: number; maskedInputs: number; revealed: number } {
    return { advertised: this.advertised.size, sharedKeys: this.sharedKeys.size, maskedInputs: this.maskedInputs.size, revealed: this.revealed.size };
  }

  private fail(message: string): Refused {
    this.phaseNow = 'failed';
    this.failure = message;
    this.sum = null;
    return { failed: message };
  }

  private checkRound(roundId: string, phase: SecAggPhase): SecAggAck | null {
    if (roundId !== this.options.roundId) return refuse('round_not_open', `round ${roundId} is not the secure round in flight`);
    if (this.phaseNow !== phase) return refuse('wrong_phase', `the round is in its ${this.phaseNow} phase, not ${phase}`);
    return null;
  }

  /** Phase 1: a participant's public keys (checked to be usable keys of the round's key agreement). */
  async receiveAdvertise(clientId: string, payload: unknown): Promise<SecAggAck> {
    const parsed = secAggAdvertiseSchema.safeParse(payload);
    if (!parsed.success) return refuse('malformed', `invalid advertisement: ${firstIssue(parsed.error)}`);
    const wrong = this.checkRound(parsed.data.roundId, 'advertise');
    if (wrong) return wrong;
    if (parsed.data.modelVersion !== this.options.modelVersion) return refuse('malformed', `the round trains version ${this.options.modelVersion}`);
    if (this.advertised.has(clientId)) return refuse('duplicate', 'keys already advertised');
    const encryptionKey = toBytes(parsed.data.encryptionKey).slice();
    const maskingKey = toBytes(parsed.data.maskingKey).slice();
    const { keyAgreement } = this.options;
    if (encryptionKey.length !== PUBLIC_KEY_BYTES[keyAgreement] || maskingKey.length !== PUBLIC_KEY_BYTES[keyAgreement]) {
      return refuse('malformed', `the round's key agreement is ${keyAgreement} (${PUBLIC_KEY_BYTES[keyAgreement]}-byte public keys)`);
    }
    try {
      await Promise.all([checkPeerKey(encryptionKey, keyAgreement), checkPeerKey(maskingKey, keyAgreement)]);
    } catch {
      return refuse('malformed', `a public key is not a usable ${keyAgreement} key`);
    }
    if (this.phaseNow !== 'advertise' || this.advertised.has(clientId)) return refuse('wrong_phase', 'the advertise phase closed meanwhile');
    this.advertised.set(clientId, { encryptionKey, maskingKey });
    return { accepted: true };
  }

  /** Ends phase 1: indices, the neighbour graph and each device's roster. */
  closeAdvertise(deadlineAt: number): { rosters: Map<string, SecAggRoster> } | Refused {
    if (this.phaseNow !== 'advertise') return this.fail(`advertise closed in phase ${this.phaseNow}`);
    const n = this.advertised.size;
    if (n < Math.max(2, this.options.minDevices)) return this.fail(`${n} device(s) advertised keys, ${Math.max(2, this.options.minDevices)} needed`);
    const graph = neighbourGraph(n, this.options.neighbours ?? defaultNeighbourCount(n), this.options.graphSeed);
    let index = 0;
    for (const [clientId, keys] of this.advertised) {
      index++;
      const member: Member = { clientId, index, ...keys, neighbours: graph.get(index)! };
      this.members.set(clientId, member);
      this.byIndex.set(index, member);
    }
    this.threshold = shareThreshold(graph.get(1)!.length, this.options.thresholdFraction);
    this.fixedPoint = { clipNorm: this.options.clipNorm, maxWeight: this.options.maxWeight, maxSummands: n };
    const { noiseMultiplier } = this.options;
    if (noiseMultiplier !== undefined) {
      this.noiseSummands = noiseSummands(n, this.options.thresholdFraction, this.options.minDevices);
      this.fixedPoint.noiseStd = deviceNoiseStd(noiseMultiplier, this.options.clipNorm, this.noiseSummands);
    }
    fixedPointScales(this.fixedPoint); // throws when the round cannot be encoded
    const rosters = new Map<string, SecAggRoster>();
    const recordBytes = neighbourKeysBytes(this.options.keyAgreement);
    for (const member of this.members.values()) {
      rosters.set(member.clientId, {
        roundId: this.options.roundId,
        index: member.index,
        threshold: this.threshold,
        ...this.fixedPoint,
        keyAgreement: this.options.keyAgreement,
        neighbours: [...member.neighbours],
        neighboursBytes: packRecords(
          member.neighbours.map((i) => {
            const neighbour = this.byIndex.get(i)!;
            const keys = new Uint8Array(recordBytes);
            keys.set(neighbour.encryptionKey);
            keys.set(neighbour.maskingKey, recordBytes / 2);
            return keys;
          }),
          recordBytes,
        ),
        deadlineAt,
      });
    }
    this.phaseNow = 'shareKeys';
    return { rosters };
  }

  /** Phase 2: one sealed share per neighbour, every neighbour once. */
  receiveShares(clientId: string, payload: unknown): SecAggAck {
    const parsed = secAggSharesSchema.safeParse(payload);
    if (!parsed.success) return refuse('malformed', `invalid shares: ${firstIssue(parsed.error)}`);
    const wrong = this.checkRound(parsed.data.roundId, 'shareKeys');
    if (wrong) return wrong;
    const member = this.members.get(clientId);
    if (!member) return refuse('not_participant', 'the device advertised no keys in this round');
    if (this.sharedKeys.has(member.index)) return refuse('duplicate', 'shares already sent');
    const { recipients, recipientsBytes } = parsed.data;
    const expected = new Set(member.neighbours);
    if (recipients.length !== expected.size || new Set(recipients).size !== recipients.length || !recipients.every((i) => expected.has(i))) {
      return refuse('unknown_neighbour', 'the shares must go to each neighbour exactly once');
    }
    for (const [i, index] of recipients.entries()) {
      const box = this.inbox.get(index) ?? [];
      box.push({ index: member.index, ciphertext: packedRecord(recipientsBytes, SEALED_SHARES_BYTES, i).slice() });
      this.inbox.set(index, box);
    }
    this.sharedKeys.add(member.index);
    return { accepted: true };
  }

  /** Ends phase 2: each device that shared gets the shares of its neighbours that shared. */
  closeShareKeys(deadlineAt: number): { relays: Map<string, SecAggRelay> } | Refused {
    if (this.phaseNow !== 'shareKeys') return this.fail(`share keys closed in phase ${this.phaseNow}`);
    if (this.sharedKeys.size < Math.max(2, this.options.minDevices)) {
      return this.fail(`${this.sharedKeys.size} device(s) shared keys, ${Math.max(2, this.options.minDevices)} needed`);
    }
    const relays = new Map<string, SecAggRelay>();
    for (const index of this.sharedKeys) {
      const shares = (this.inbox.get(index) ?? []).filter((share) => this.sharedKeys.has(share.index));
      relays.set(this.byIndex.get(index)!.clientId, {
        roundId: this.options.roundId,
        senders: shares.map((share) => share.index),
        sendersBytes: packRecords(
          shares.map((share) => share.ciphertext),
          SEALED_SHARES_BYTES,
        ),
        deadlineAt,
      });
    }
    this.inbox.clear();
    this.sum = new Uint32Array(encodedLength(this.options.deltaLength));
    this.phaseNow = 'maskedInput';
    return { relays };
  }

  /** Phase 3: a masked input, added to the running sum at once (O(d), nothing kept). */
  receiveMasked(clientId: string, payload: unknown): SecAggAck {
    const parsed = secAggMaskedSchema.safeParse(payload);
    if (!parsed.success) return refuse('malformed', `invalid masked input: ${firstIssue(parsed.error)}`);
    const wrong = this.checkRound(parsed.data.roundId, 'maskedInput');
    if (wrong) return wrong;
    const member = this.members.get(clientId);
    if (!member || !this.sharedKeys.has(member.index)) return refuse('not_participant', 'the device shared no keys in this round');
    if (this.maskedInputs.has(member.index)) return refuse('duplicate', 'masked input already sent');
    const data = toBytes(parsed.data.data);
    const expectedBytes = encodedLength(this.options.deltaLength) * 4;
    if (data.byteLength !== expectedBytes) return refuse('malformed', `a masked input has ${expectedBytes} bytes, not ${data.byteLength}`);
    const values = data.byteOffset % 4 === 0 ? new Uint32Array(data.buffer, data.byteOffset, data.byteLength / 4) : new Uint32Array(data.slice().buffer);
    addInto(this.sum!, values);
    this.maskedInputs.add(member.index);
    return { accepted: true };
  }

  /** Ends phase 3: each device in the sum is asked for the shares its neighbourhood needs. */
  closeMaskedInput(deadlineAt: number): { requests: Map<string, SecAggUnmask> } | Refused {
    if (this.phaseNow !== 'maskedInput') return this.fail(`masked input closed in phase ${this.phaseNow}`);
    if (this.maskedInputs.size < Math.max(2, this.options.minDevices)) {
      return this.fail(`${this.maskedInputs.size} masked input(s), ${Math.max(2, this.options.minDevices)} needed`);
    }
    // Fewer inputs than the noise was calibrated to would carry less than the round's noise: unmask nothing.
    if (this.maskedInputs.size < this.noiseSummands) {
      return this.fail(`${this.maskedInputs.size} masked input(s); the round's distributed noise needs ${this.noiseSummands}`);
    }
    const requests = new Map<string, SecAggUnmask>();
    for (const index of this.maskedInputs) {
      const member = this.byIndex.get(index)!;
      const sharing = member.neighbours.filter((i) => this.sharedKeys.has(i));
      const request: SecAggUnmask = {
        roundId: this.options.roundId,
        survivors: [index, ...sharing.filter((i) => this.maskedInputs.has(i))],
        dropped: sharing.filter((i) => !this.maskedInputs.has(i)),
        deadlineAt,
      };
      this.unmaskRequests.set(index, request);
      requests.set(member.clientId, request);
    }
    this.phaseNow = 'unmasking';
    return { requests };
  }

  /** Phase 4: exactly the shares asked for. */
  receiveReveal(clientId: string, payload: unknown): SecAggAck {
    const parsed = secAggRevealSchema.safeParse(payload);
    if (!parsed.success) return refuse('malformed', `invalid reveal: ${firstIssue(parsed.error)}`);
    const wrong = this.checkRound(parsed.data.roundId, 'unmasking');
    if (wrong) return wrong;
    const member = this.members.get(clientId);
    const request = member ? this.unmaskRequests.get(member.index) : undefined;
    if (!member || !request) return refuse('not_participant', 'the device sent no masked input in this round');
    if (this.revealed.has(member.index)) return refuse('duplicate', 'shares already revealed');
    const same = (indices: readonly number[], asked: readonly number[]): boolean =>
      indices.length === asked.length && new Set(indices).size === indices.length && indices.every((i) => asked.includes(i));
    const { selfMask, selfMaskBytes, maskKey, maskKeyBytes } = parsed.data;
    if (!same(selfMask, request.survivors) || !same(maskKey, request.dropped)) {
      return refuse('unknown_neighbour', 'the revealed shares must be exactly the ones asked for');
    }
    const file = (into: Map<number, Share[]>, indices: readonly number[], bytes: ArrayBuffer | Uint8Array): void => {
      for (const [i, index] of indices.entries()) {
        const list = into.get(index) ?? [];
        list.push({ x: member.index, y: packedRecord(bytes, REVEALED_SHARE_BYTES, i).slice() });
        into.set(index, list);
      }
    };
    file(this.seedShares, selfMask, selfMaskBytes);
    file(this.keyShares, maskKey, maskKeyBytes);
    this.revealed.add(member.index);
    return { accepted: true };
  }

  /**
   * Ends phase 4: rebuilds each summed device's self-mask seed and each dropped device's mask key
   * from `threshold` shares, takes their masks off the sum and decodes it. Fails (nothing is
   * learned) when any secret has fewer shares than the threshold.
   */
  async finish(): Promise<SecAggResult | Refused> {
    if (this.phaseNow !== 'unmasking') return this.fail(`unmasking finished in phase ${this.phaseNow}`);
    const sum = this.sum!;
    for (const index of this.maskedInputs) {
      const shares = this.seedShares.get(index) ?? [];
      if (shares.length < this.threshold) return this.fail(`${shares.length} share(s) of device ${index}'s self mask, threshold ${this.threshold}`);
      subtractFrom(sum, await expandMask(combineShares(shares, this.threshold), sum.length));
    }
    for (const index of this.sharedKeys) {
      if (this.maskedInputs.has(index)) continue;
      const member = this.byIndex.get(index)!;
      const summedNeighbours = member.neighbours.filter((i) => this.maskedInputs.has(i));
      if (summedNeighbours.length === 0) continue;
      const shares = this.keyShares.get(index) ?? [];
      if (shares.length < this.threshold) return this.fail(`${shares.length} share(s) of dropped device ${index}'s mask key, threshold ${this.threshold}`);
      let privateKey: WebCryptoKey;
      try {
        privateKey = await importPrivateScalar(combineShares(shares, this.threshold), member.maskingKey, this.options.keyAgreement);
      } catch {
        return this.fail(`the shares of device ${index}'s mask key do not rebuild a key`);
      }
      for (const neighbourIndex of summedNeighbours) {
        const neighbour = this.byIndex.get(neighbourIndex)!;
        const seed = await agreeKey(
          privateKey,
          await importPublicKey(neighbour.maskingKey, this.options.keyAgreement),
          this.options.roundId,
          KeyPurpose.pairwiseMask,
        );
        // The survivor added +mask towards a higher index, -mask towards a lower one: undo that.
        const mask = await expandMask(seed, sum.length);
        if (index > neighbourIndex) subtractFrom(sum, mask);
        else addInto(sum, mask);
      }
    }
    this.phaseNow = 'finished';
    const result = { sum: decodeSum(sum, this.fixedPoint!), summed: this.maskedInputs.size, params: this.fixedPoint! };
    this.sum = null;
    return result;
  }
}
