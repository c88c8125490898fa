/** `/api/health`, `/api/status` and `/api/clients`. */
import { z } from 'zod';

/** `GET /api/health` (no token): only that the service is alive. */
export const healthSchema = z.object({ status: z.literal('ok') });
export type HealthResponse = z.infer<typeof healthSchema>;

/** `GET /api/status` (operator token): the coordinator at a glance. */
export const statusSchema = z.object({
  status: z.literal('ok'),
  modelVersion: z.number().int().min(1).nullable().describe('The current global version'),
  connectedClients: z.number().int().min(0),
  eligibleClients: z.number().int().min(0),
  activeRound: z.uuid().nullable().describe('Id of the round in flight'),
  uptimeSeconds: z.number().int().min(0),
});
export type StatusResponse = z.infer<typeof statusSchema>;

/** `GET /api/clients`. */
export const clientCountsSchema = z.object({
  connected: z.number().int().min(0),
  eligible: z.number().int().min(0),
  inRound: z.number().int().min(0).describe('Connected clients selected for the round in flight'),
});
export type ClientCountsResponse = z.infer<typeof clientCountsSchema>;

/** Handshake `auth` of the dashboard's `/operators` socket.io namespace. */
export const operatorSocketAuthSchema = z.object({ token: z.string().min(1).max(4096) });

/** `GET /dashboard/assets/{file}`: a plain file name (the controller serves only the ones it knows). */
export const dashboardAssetNameSchema = z.string().max(64);
