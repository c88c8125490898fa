import express from 'express';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { FlockConfig } from '../config/config.js';
import { INFERENCE_HEADER_LENGTH } from '../contract/index.js';
import { v2BodyErrorHandler } from './v2-error.filter.js';

/**
 * Bodies of the inference API, registered before the app-wide 64 KiB JSON parser (which then
 * leaves them alone): JSON up to FLOCK_INFERENCE_MAX_BODY_BYTES, and the binary tensor extension's
 * bytes (`application/octet-stream`, JSON header + tensor data) within the same bound.
 */
export function applyInferenceBodyParsers(app: NestExpressApplication, config: FlockConfig): void {
  const limit = config.serving.maxBodyBytes;
  // Binary requests are recognised by their Inference-Header-Content-Length (clients such as
  // tritonclient send it with no or a generic Content-Type), or as application/octet-stream.
  const binary = (req: { headers: Record<string, string | string[] | undefined> }): boolean => {
    const type = req.headers['content-type'];
    return req.headers[INFERENCE_HEADER_LENGTH] !== undefined || (typeof type === 'string' && type.startsWith('application/octet-stream'));
  };
  app.use('/v2', express.raw({ type: binary, limit }), express.json({ limit }), v2BodyErrorHandler);
}
