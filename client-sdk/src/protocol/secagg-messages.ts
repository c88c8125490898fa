/**
 * Secure aggregation on the wire (Bonawitz et al. 2017 with SecAgg+'s neighbour graph, Bell et al.
 * 2020). A secure round's device, once trained, goes through four phases, each with a deadline:
 *   1. advertise   device -> `secagg:advertise` (two P-256 public keys)      coordinator -> `secagg:roster` (its index, its neighbours' keys)
 *   2. share keys  device -> `secagg:shares` (encrypted Shamir shares, one per neighbour)   coordinator -> `secagg:relay` (the shares addressed to it)
 *   3. masked input device -> `secagg:masked` (its input in Z_2^32 plus masks)    coordinator -> `secagg:unmask` (which neighbours survived, which dropped)
 *   4. unmasking   device -> `secagg:reveal` (shares of survivors' self-mask seeds, of dropped devices' mask keys)
 * Every device message is acknowledged with a SecAggAck. Keys, ciphertexts and shares travel as
 * binary attachments with fixed or bounded sizes.
 */
import { z } from 'zod';
import { modelVersionSchema } from './model-messages.js';
import { binarySchema } from './weights.js';

/** The most neighbours a device may have (SecAgg+ gives O(log n); this bounds every list). */
export const MAX_SECAGG_NEIGHBOURS = 1024;
/** The most devices one secure round may sum (fixed-point headroom and Shamir indices). */
export const MAX_SECAGG_DEVICES = 10_000;
/** MAX_UPDATE_EXAMPLES of round-messages.ts (which imports this module, so it is not imported back). */
const MAX_WEIGHT = 1_000_000;
const SHARE_BYTES = 66;

/**
 * Key agreement of a secure round, chosen by the operator per round: ECDH on P-256 (every WebCrypto)
 * or X25519 (WebCrypto in Node >= 20, Chrome >= 133, Firefox >= 130, Safari >= 17), shorter keys
 * and faster agreement where every device of the round has it.
 */
export const KEY_AGREEMENTS = ['P-256', 'X25519'] as const;
export type KeyAgreement = (typeof KEY_AGREEMENTS)[number];
/** Raw public keys: P-256 uncompressed (0x04 | x | y), X25519 the u-coordinate. */
export const PUBLIC_KEY_BYTES: Record<KeyAgreement, number> = { 'P-256': 65, X25519: 32 };
/** Bytes of one neighbour's keys in a roster: encryption key | masking key. */
export function neighbourKeysBytes(keyAgreement: KeyAgreement): number {
  return 2 * PUBLIC_KEY_BYTES[keyAgreement];
}
const publicKeySchema = binarySchema.refine(
  (data) => Object.values(PUBLIC_KEY_BYTES).includes(data.byteLength),
  `expected a raw public key (${Object.values(PUBLIC_KEY_BYTES).join(' or ')} bytes)`,
);
/** from (4) | to (4) | self-mask seed share | mask key share, sealed with AES-GCM (iv 12, tag 16). */
export const SEALED_SHARES_BYTES = 8 + 2 * SHARE_BYTES + 28;

const roundIdSchema = z.string().min(1).max(64);
const indexSchema = z.number().int().min(1).max(MAX_SECAGG_DEVICES);

/** Why the coordinator refused a secure-aggregation message (counted by reason). */
export const SECAGG_REFUSALS = [
  'malformed', // schema, sizes or a key not on the curve
  'round_not_open', // no secure round in flight with this id
  'wrong_phase', // the round is not in the phase this message belongs to (late or early)
  'not_participant', // the device is not (or no longer) in this phase's set of devices
  'duplicate', // the device already sent this phase's message
  'unknown_neighbour', // a share addressed to or about a device that is not its neighbour, or shares missing
] as const;
export type SecAggRefusal = (typeof SECAGG_REFUSALS)[number];

export const secAggAckSchema = z.discriminatedUnion('accepted', [
  z.object({ accepted: z.literal(true) }),
  z.object({ accepted: z.literal(false), reason: z.enum(SECAGG_REFUSALS), message: z.string() }),
]);
export type SecAggAck = z.infer<typeof secAggAckSchema>;

/** What a round's configuration says when the round is secure. */
export const secureAggregationPlanSchema = z.object({
  /** The L2 bound the device clips its delta to (the coordinator cannot check it). */
  clipNorm: z.number().positive().max(1e6),
  /** Share threshold as a fraction of a device's neighbours plus itself. */
  thresholdFraction: z.number().min(0.5).max(1),
  /** Absent from coordinators that predate X25519: P-256. */
  keyAgreement: z.enum(KEY_AGREEMENTS).default('P-256'),
});
export type SecureAggregationPlan = z.infer<typeof secureAggregationPlanSchema>;

/** Phase 1, device -> coordinator. */
export const secAggAdvertiseSchema = z.object({
  roundId: roundIdSchema,
  modelVersion: modelVersionSchema,
  /** Key agreement for encrypting shares to neighbours (the round's key agreement decides its length). */
  encryptionKey: publicKeySchema,
  /** Key agreement for the pairwise masks (its private half is secret-shared). */
  maskingKey: publicKeySchema,
});
export type SecAggAdvertise = z.infer<typeof secAggAdvertiseSchema>;

/** Bytes of one revealed share. */
export const REVEALED_SHARE_BYTES = SHARE_BYTES;

/*
 * Lists of keys, ciphertexts and shares travel packed into one binary each (records of a fixed
 * size, in the order of the matching index list): socket.io refuses packets with more than 10
 * binary attachments, and one attachment per neighbour would pass that at 10 neighbours.
 */
function packed(records: string, bytesPerRecord: number) {
  return (message: Record<string, unknown>): boolean =>
    (message[`${records}Bytes`] as ArrayBuffer | Uint8Array).byteLength === (message[records] as unknown[]).length * bytesPerRecord;
}

/** Phase 1, coordinator -> device: who the device is in this round and whom it works with. */
export const secAggRosterSchema = z
  .object({
    roundId: roundIdSchema,
    /** The device's index (its Shamir x-coordinate). */
    index: indexSchema,
    /** Shares needed to rebuild a secret of any device. */
    threshold: z
      .number()
      .int()
      .min(1)
      .max(MAX_SECAGG_NEIGHBOURS + 1),
    /** The fixed-point encoding every device of the round uses (fixed-point.ts). */
    clipNorm: z.number().positive().max(1e6),
    maxWeight: z.number().int().min(1).max(MAX_WEIGHT),
    maxSummands: z.number().int().min(1).max(MAX_SECAGG_DEVICES),
    /** Distributed DP: the standard deviation of the noise the device adds per coordinate before masking (absent: none). */
    noiseStd: z.number().min(0).max(1e9).optional(),
    keyAgreement: z.enum(KEY_AGREEMENTS),
    /** The neighbours' indices. */
    neighbours: z.array(indexSchema).min(1).max(MAX_SECAGG_NEIGHBOURS),
    /** Their keys, neighbourKeysBytes(keyAgreement) each, in the order of `neighbours`. */
    neighboursBytes: binarySchema,
    /** Epoch ms by which the shares must arrive. */
    deadlineAt: z.number(),
  })
  .refine(
    (roster) => roster.neighboursBytes.byteLength === roster.neighbours.length * neighbourKeysBytes(roster.keyAgreement),
    'neighboursBytes must hold the keys of each neighbour',
  );
export type SecAggRoster = z.infer<typeof secAggRosterSchema>;

/** Phase 2, device -> coordinator: one sealed pair of shares per neighbour, in the order of `recipients`. */
export const secAggSharesSchema = z
  .object({
    roundId: roundIdSchema,
    recipients: z.array(indexSchema).min(1).max(MAX_SECAGG_NEIGHBOURS),
    recipientsBytes: binarySchema,
  })
  .refine(packed('recipients', SEALED_SHARES_BYTES), 'recipientsBytes must hold one sealed share per recipient');
export type SecAggShares = z.infer<typeof secAggSharesSchema>;

/** Phase 2, coordinator -> device: the shares its neighbours sealed for it, in the order of `senders`. */
export const secAggRelaySchema = z
  .object({
    roundId: roundIdSchema,
    senders: z.array(indexSchema).max(MAX_SECAGG_NEIGHBOURS),
    sendersBytes: binarySchema,
    deadlineAt: z.number(),
  })
  .refine(packed('senders', SEALED_SHARES_BYTES), 'sendersBytes must hold one sealed share per sender');
export type SecAggRelay = z.infer<typeof secAggRelaySchema>;

/** Phase 3, device -> coordinator: its masked input, little-endian uint32 values. */
export const secAggMaskedSchema = z.object({
  roundId: roundIdSchema,
  data: binarySchema,
});
export type SecAggMasked = z.infer<typeof secAggMaskedSchema>;

/** Phase 3, coordinator -> device: of its neighbours that shared keys, who sent a masked input and who dropped. */
export const secAggUnmaskSchema = z.object({
  roundId: roundIdSchema,
  survivors: z.array(indexSchema).max(MAX_SECAGG_NEIGHBOURS + 1),
  dropped: z.array(indexSchema).max(MAX_SECAGG_NEIGHBOURS),
  deadlineAt: z.number(),
});
export type SecAggUnmask = z.infer<typeof secAggUnmaskSchema>;

/** Phase 4, device -> coordinator: shares of the devices listed, REVEALED_SHARE_BYTES each, in list order. */
export const secAggRevealSchema = z
  .object({
    roundId: roundIdSchema,
    /** Devices whose self-mask seed share is revealed (the survivors). */
    selfMask: z.array(indexSchema).max(MAX_SECAGG_NEIGHBOURS + 1),
    selfMaskBytes: binarySchema,
    /** Devices whose mask-key share is revealed (the dropped). */
    maskKey: z.array(indexSchema).max(MAX_SECAGG_NEIGHBOURS),
    maskKeyBytes: binarySchema,
  })
  .refine(packed('selfMask', REVEALED_SHARE_BYTES), 'selfMaskBytes must hold one share per device')
  .refine(packed('maskKey', REVEALED_SHARE_BYTES), 'maskKeyBytes must hold one share per device');
export type SecAggReveal = z.infer<typeof secAggRevealSchema>;

/** Record `i` of a packed list. */
export function packedRecord(bytes: ArrayBuffer | Uint8Array, bytesPerRecord: number, i: number): Uint8Array {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return view.subarray(i * bytesPerRecord, (i + 1) * bytesPerRecord);
}

/** Packs equally sized records into one binary. */
export function packRecords(records: readonly Uint8Array[], bytesPerRecord: number): Uint8Array {
  const out = new Uint8Array(records.length * bytesPerRecord);
  records.forEach((record, i) => {
    if (record.byteLength !== bytesPerRecord) throw new RangeError(`a record has ${record.byteLength} bytes, not ${bytesPerRecord}`);
    out.set(record, i * bytesPerRecord);
  });
  return out;
}
