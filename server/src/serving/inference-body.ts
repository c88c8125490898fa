import express from 'express';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { FlockConfig } from '../config/config.js';
import { v2BodyErrorHandler } from './v2-error.filter.js';

/**
 * Bodies of the inference API, registered before the app-wide 64 KiB JSON parser (which then
 * leaves them alone): JSON up to FLOCK_INFERENCE_MAX_BODY_BYTES, and the binary tensor extension's
 * bytes (`application/octet-stream`, JSON header + tensor data) within the same bound.
 */
export function applyInferenceBodyParsers(app: NestExpressApplication, config: FlockConfig): void {
  const limit = config.serving.maxBodyBytes;
  app.use('/v2', express.json({ limit }), express.raw({ type: 'application/octet-stream', limit }), v2BodyErrorHandler);
}
