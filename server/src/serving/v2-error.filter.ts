import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import type { V2Error } from '../contract/index.js';
import { moduleLogger } from '../logging/logger.js';

const log = moduleLogger('serving');

/**
 * An error of the inference API in the protocol's format: `{ "error": "..." }` with the HTTP status
 * (the filter's and the fast path's). Anything but an HttpException is logged and answered 500.
 */
export function v2ErrorOf(exception: unknown): { status: number; body: V2Error } {
  if (!(exception instanceof HttpException)) {
    log.error({ err: exception }, 'inference request failed');
    return { status: 500, body: { error: 'internal error' } };
  }
  const body = exception.getResponse();
  const message = typeof body === 'string' ? body : (body as { message?: unknown }).message;
  const error = Array.isArray(message) ? message.join('; ') : typeof message === 'string' ? message : exception.message;
  return { status: exception.getStatus(), body: { error } };
}

/** Errors of the inference API behind express: see v2ErrorOf. */
@Catch()
export class V2ErrorFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    const { status, body } = v2ErrorOf(exception);
    host.switchToHttp().getResponse<Response>().status(status).json(body);
  }
}

/**
 * Body-parser failures under /v2 (malformed JSON, a body over FLOCK_INFERENCE_MAX_BODY_BYTES) in the
 * same format: they happen before any controller, in express middleware.
 */
export function v2BodyErrorHandler(
  error: { status?: number; statusCode?: number; type?: string; message?: string },
  _req: unknown,
  res: Response,
  next: (error?: unknown) => void,
): void {
  const status = error.status ?? error.statusCode;
  if (typeof status !== 'number' || status < 400 || status >= 500) {
    next(error);
    return;
  }
  const message =
    error.type === 'entity.too.large'
      ? 'request body too large'
      : error.type === 'entity.parse.failed'
        ? 'request body is not valid JSON'
        : (error.message ?? 'bad request');
  res.status(status).json({ error: message } satisfies V2Error);
}
