/**
 * The device's side of one secure round (Bonawitz et al. 2017, §4, with SecAgg+'s neighbours):
 * its key pairs and self-mask seed, the shares it deals to its neighbours, the masked input, and
 * what it reveals at unmasking. Every step checks what the coordinator sent before using it, and
 * refuses (throws SecAggDeviceError) what would leak its input: above all, revealing both the
 * self-mask share and the mask-key share of one device.
 */
import type { KeyAgreement, SecAggRelay, SecAggReveal, SecAggRoster, SecAggShares, SecAggUnmask } from '../protocol/secagg-messages.js';
import { neighbourKeysBytes, packedRecord, packRecords, REVEALED_SHARE_BYTES, SEALED_SHARES_BYTES } from '../protocol/secagg-messages.js';
import { encodeInput, addInto, subtractFrom, type FixedPointParams } from './fixed-point.js';
import {
  agreeKey,
  exportPrivateScalar,
  expandMask,
  generateAgreementKeyPair,
  importPublicKey,
  KeyPurpose,
  open,
  randomBytes,
  seal,
  SEED_BYTES,
  type AgreementKeyPair,
} from './primitives.js';
import { SHARE_BYTES, splitSecret } from './shamir.js';
import { utf8, type WebCryptoKey } from './webcrypto.js';

export class SecAggDeviceError extends Error {}

/** Plaintext of one sealed pair of shares: from | to | self-mask seed share | mask key share. */
function packShares(from: number, to: number, seedShare: Uint8Array, keyShare: Uint8Array): Uint8Array {
  const packed = new Uint8Array(8 + 2 * SHARE_BYTES);
  const view = new DataView(packed.buffer);
  view.setUint32(0, from);
  view.setUint32(4, to);
  packed.set(seedShare, 8);
  packed.set(keyShare, 8 + SHARE_BYTES);
  return packed;
}

function unpackShares(packed: Uint8Array): { from: number; to: number; seedShare: Uint8Array; keyShare: Uint8Array } {
  if (packed.length !== 8 + 2 * SHARE_BYTES) throw new SecAggDeviceError('a sealed share has the wrong length');
  const view = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
  return {
    from: view.getUint32(0),
    to: view.getUint32(4),
    seedShare: packed.slice(8, 8 + SHARE_BYTES),
    keyShare: packed.slice(8 + SHARE_BYTES),
  };
}

export function toBytes(data: ArrayBuffer | Uint8Array): Uint8Array {
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}

interface Neighbour {
  index: number;
  encryptionKey: WebCryptoKey;
  maskingKey: WebCryptoKey;
}

/** Adds (or subtracts) a freshly expanded mask. */
async function applyMask(target: Uint32Array, seed: Uint8Array, sign: 1 | -1): Promise<void> {
  const mask = await expandMask(seed, target.length);
  if (sign === 1) addInto(target, mask);
  else subtractFrom(target, mask);
}

export class SecAggDeviceSession {
  private roster: SecAggRoster | null = null;
  private readonly neighbours = new Map<number, Neighbour>();
  /** Shares this device holds, by the device they belong to (its own included). */
  private readonly heldSeedShares = new Map<number, Uint8Array>();
  private readonly heldKeyShares = new Map<number, Uint8Array>();
  /** Neighbours whose shares arrived: the only ones it masks with and reveals for. */
  private readonly sharing = new Set<number>();
  private masked = false;
  private revealed = false;

  private constructor(
    readonly roundId: string,
    private readonly keyAgreement: KeyAgreement,
    private readonly encryption: AgreementKeyPair,
    private readonly masking: AgreementKeyPair,
    private readonly selfMaskSeed: Uint8Array,
  ) {}

  static async create(roundId: string, keyAgreement: KeyAgreement): Promise<SecAggDeviceSession> {
    const [encryption, masking] = await Promise.all([generateAgreementKeyPair(keyAgreement), generateAgreementKeyPair(keyAgreement)]);
    return new SecAggDeviceSession(roundId, keyAgreement, encryption, masking, randomBytes(SEED_BYTES));
  }

  /** Phase 1: the two public keys to advertise. */
  publicKeys(): { encryptionKey: Uint8Array; maskingKey: Uint8Array } {
    return { encryptionKey: this.encryption.publicKey, maskingKey: this.masking.publicKey };
  }

  get index(): number | null {
    return this.roster?.index ?? null;
  }

  /** Phase 2: checks the roster, then deals shares of its self-mask seed and mask key to its neighbours (and keeps its own). */
  async shareKeys(roster: SecAggRoster): Promise<SecAggShares> {
    if (this.roster) throw new SecAggDeviceError('the roster arrived twice');
    if (roster.roundId !== this.roundId) throw new SecAggDeviceError('the roster is for another round');
    if (roster.keyAgreement !== this.keyAgreement)
      throw new SecAggDeviceError(`the roster's keys are ${roster.keyAgreement}, the plan said ${this.keyAgreement}`);
    const indices = roster.neighbours;
    if (new Set(indices).size !== indices.length || indices.includes(roster.index)) {
      throw new SecAggDeviceError('the roster lists a neighbour twice, or the device itself');
    }
    // The threshold must be a majority of the holders: fewer would let a minority rebuild secrets.
    const holders = indices.length + 1;
    if (roster.threshold * 2 <= holders || roster.threshold > holders) {
      throw new SecAggDeviceError(`threshold ${roster.threshold} is not a majority of the ${holders} share holders`);
    }
    this.roster = roster;
    const recordBytes = neighbourKeysBytes(this.keyAgreement);
    for (const [i, index] of indices.entries()) {
      const keys = packedRecord(roster.neighboursBytes, recordBytes, i);
      this.neighbours.set(index, {
        index,
        encryptionKey: await importPublicKey(keys.subarray(0, recordBytes / 2), this.keyAgreement),
        maskingKey: await importPublicKey(keys.subarray(recordBytes / 2), this.keyAgreement),
      });
    }
    const holderIndices = [roster.index, ...indices];
    const seedShares = splitSecret(this.selfMaskSeed, roster.threshold, holderIndices);
    const keyShares = splitSecret(await exportPrivateScalar(this.masking.privateKey), roster.threshold, holderIndices);
    this.heldSeedShares.set(roster.index, seedShares[0]!.y);
    this.heldKeyShares.set(roster.index, keyShares[0]!.y);
    const associated = utf8(this.roundId);
    const sealed = await Promise.all(
      indices.map(async (to, i) => {
        const key = await agreeKey(this.encryption.privateKey, this.neighbours.get(to)!.encryptionKey, this.roundId, KeyPurpose.shareEncryption);
        return seal(key, packShares(roster.index, to, seedShares[i + 1]!.y, keyShares[i + 1]!.y), associated);
      }),
    );
    return { roundId: this.roundId, recipients: [...indices], recipientsBytes: packRecords(sealed, SEALED_SHARES_BYTES) };
  }

  /**
   * Phase 3: opens the shares its neighbours sent (they are the neighbours it masks with), then
   * encodes its update (fixed-point.ts, with its share of the round's noise under distributed DP) and adds the self mask and the
   * pairwise masks: +PRG(s_uv) towards higher indices, -PRG(s_uv) towards lower ones.
   */
  async maskInput(relay: SecAggRelay, update: { delta: Float32Array; numExamples: number; trainLoss: number }): Promise<Uint32Array> {
    const roster = this.roster;
    if (!roster) throw new SecAggDeviceError('shares arrived before the roster');
    if (this.masked) throw new SecAggDeviceError('the input was already masked');
    if (relay.roundId !== this.roundId) throw new SecAggDeviceError('the shares are for another round');
    const associated = utf8(this.roundId);
    if (toBytes(relay.sendersBytes).byteLength !== relay.senders.length * SEALED_SHARES_BYTES)
      throw new SecAggDeviceError('the sealed shares have the wrong size');
    for (const [i, index] of relay.senders.entries()) {
      const neighbour = this.neighbours.get(index);
      if (!neighbour || this.sharing.has(index)) throw new SecAggDeviceError(`shares from ${index}, not a neighbour or twice`);
      const sealed = packedRecord(relay.sendersBytes, SEALED_SHARES_BYTES, i);
      const key = await agreeKey(this.encryption.privateKey, neighbour.encryptionKey, this.roundId, KeyPurpose.shareEncryption);
      let opened: ReturnType<typeof unpackShares>;
      try {
        opened = unpackShares(await open(key, sealed, associated));
      } catch {
        throw new SecAggDeviceError(`the shares from ${index} do not open`);
      }
      if (opened.from !== index || opened.to !== roster.index) throw new SecAggDeviceError(`the shares from ${index} were addressed elsewhere`);
      this.heldSeedShares.set(index, opened.seedShare);
      this.heldKeyShares.set(index, opened.keyShare);
      this.sharing.add(index);
    }
    // Fewer than threshold - 1 neighbours (plus itself) could not rebuild its own secrets: the sum would be unrecoverable.
    if (this.sharing.size + 1 < roster.threshold) {
      throw new SecAggDeviceError(`${this.sharing.size} neighbour(s) shared keys, ${roster.threshold - 1} needed`);
    }
    const params: FixedPointParams = {
      clipNorm: roster.clipNorm,
      maxWeight: roster.maxWeight,
      maxSummands: roster.maxSummands,
      ...(roster.noiseStd === undefined ? {} : { noiseStd: roster.noiseStd }),
    };
    // With distributed DP, encoding adds this device's share of the round's noise (after clipping).
    const { encoded } = encodeInput(update.delta, update.numExamples, update.trainLoss, params);
    this.masked = true;
    await applyMask(encoded, this.selfMaskSeed, 1);
    for (const index of this.sharing) {
      const seed = await agreeKey(this.masking.privateKey, this.neighbours.get(index)!.maskingKey, this.roundId, KeyPurpose.pairwiseMask);
      await applyMask(encoded, seed, index > roster.index ? 1 : -1);
    }
    return encoded;
  }

  /**
   * Phase 4: reveals, for each surviving neighbour (and itself), its share of their self-mask
   * seed, and for each dropped neighbour its share of their mask key. Refuses an answer naming a
   * device in both lists, a device that is not a neighbour that shared, fewer survivors than the
   * threshold, or a list that leaves this device out.
   */
  unmask(request: SecAggUnmask): SecAggReveal {
    const roster = this.roster;
    if (!roster || !this.masked) throw new SecAggDeviceError('unmasking asked before the input was masked');
    if (this.revealed) throw new SecAggDeviceError('unmasking asked twice');
    if (request.roundId !== this.roundId) throw new SecAggDeviceError('the unmask request is for another round');
    const survivors = new Set(request.survivors);
    const dropped = new Set(request.dropped);
    if (survivors.size !== request.survivors.length || dropped.size !== request.dropped.length) throw new SecAggDeviceError('a device is listed twice');
    if (!survivors.has(roster.index)) throw new SecAggDeviceError('the survivors leave this device out');
    for (const index of dropped) if (survivors.has(index)) throw new SecAggDeviceError(`device ${index} is listed as survivor and dropped`);
    for (const index of [...survivors, ...dropped]) {
      if (index !== roster.index && !this.sharing.has(index)) throw new SecAggDeviceError(`device ${index} is not a neighbour that shared keys`);
    }
    // The neighbours that sent shares are exactly the ones it masked with: each must be accounted for.
    if (survivors.size + dropped.size !== this.sharing.size + 1) throw new SecAggDeviceError('the lists leave out a neighbour it masked with');
    if (survivors.size < roster.threshold) throw new SecAggDeviceError(`${survivors.size} survivor(s), fewer than the threshold ${roster.threshold}`);
    this.revealed = true;
    const reveal = (held: Map<number, Uint8Array>, indices: readonly number[]): Uint8Array =>
      packRecords(
        indices.map((index) => held.get(index)!),
        REVEALED_SHARE_BYTES,
      );
    return {
      roundId: this.roundId,
      selfMask: [...request.survivors],
      selfMaskBytes: reveal(this.heldSeedShares, request.survivors),
      maskKey: [...request.dropped],
      maskKeyBytes: reveal(this.heldKeyShares, request.dropped),
    };
  }
}
