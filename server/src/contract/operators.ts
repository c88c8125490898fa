/** `/api/health` and `/api/clients`. */
import { z } from 'zod';

/** `GET /api/health` (no token needed; reveals no client or model data beyond counts). */
export const healthSchema = z.object({
  status: z.literal('ok'),
  modelVersion: z.number().int().min(1).nullable().describe('The current global version'),
  connectedClients: z.number().int().min(0),
  eligibleClients: z.number().int().min(0),
  activeRound: z.uuid().nullable().describe('Id of the round in flight'),
  uptimeSeconds: z.number().int().min(0),
});
export type HealthResponse = z.infer<typeof healthSchema>;

/** `GET /api/clients`. */
export const clientCountsSchema = z.object({
  connected: z.number().int().min(0),
  eligible: z.number().int().min(0),
  inRound: z.number().int().min(0).describe('Connected clients selected for the round in flight'),
});
export type ClientCountsResponse = z.infer<typeof clientCountsSchema>;
