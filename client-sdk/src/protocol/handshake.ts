/**
 * Opening a session: what a device sends in the socket.io handshake (`io(url, { auth })`) and the
 * coordinator's `server:welcome` once it accepted it. Refusals arrive as `connect_error` with one
 * of CONNECT_ERRORS (reasons.ts) as the message.
 */
import { z } from 'zod';
import { modelVersionSchema } from './model-messages.js';

export const PROTOCOL_VERSION = 1;

/** Client ids are chosen by the device (random UUID, persisted) and must be opaque. */
export const clientIdSchema = z.string().regex(/^[A-Za-z0-9_-]{8,128}$/, 'client id must be 8-128 of [A-Za-z0-9_-]');

/** Handshake `auth` object: `io(url, { auth })`. */
export const handshakeAuthSchema = z.object({
  token: z.string().min(1).max(512),
  clientId: clientIdSchema,
  protocolVersion: z.number().int(),
  sdkVersion: z.string().max(64).optional(),
});
export type HandshakeAuth = z.infer<typeof handshakeAuthSchema>;

export const welcomeSchema = z.object({
  clientId: z.string(),
  protocolVersion: z.number().int(),
  /** Latest committed global model version, or null before the first one exists. */
  currentModelVersion: modelVersionSchema.nullable(),
  /** Largest upload the coordinator accepts, in bytes of weight data. */
  maxUploadBytes: z.number().positive(),
});
export type Welcome = z.infer<typeof welcomeSchema>;
