import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import type { V2Error } from '../contract/index.js';
import { moduleLogger } from '../logging/logger.js';

const log = moduleLogger('serving');

/** Errors of the inference API in the protocol's format: `{ "error": "..." }` with the HTTP status. */
@Catch()
export class V2ErrorFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    let status = 500;
    let error = 'internal error';
    if (exception instanceof HttpException) {
      status = exception.getStatus();
      const body = exception.getResponse();
      const message = typeof body === 'string' ? body : (body as { message?: unknown }).message;
      error = Array.isArray(message) ? message.join('; ') : typeof message === 'string' ? message : exception.message;
    } else {
      log.error({ err: exception }, 'inference request failed');
    }
    response.status(status).json({ error } satisfies V2Error);
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
