import { Inject, Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { bearerFromHeader, tokenMatches } from './tokens.js';

export { tokenMatches } from './tokens.js';

export function bearerToken(request: Pick<Request, 'headers'>): string | undefined {
  return bearerFromHeader(request.headers.authorization);
}

/** Operator endpoints: `Authorization: Bearer <operator token>`. */
@Injectable()
export class OperatorGuard implements CanActivate {
  constructor(@Inject(FLOCK_CONFIG) private readonly config: FlockConfig) {}
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<Request>();
    if (tokenMatches(bearerToken(request), this.config.operatorToken)) return true;
    throw new UnauthorizedException('operator token required: send Authorization: Bearer <token>');
  }
}

/**
 * Model downloads: operators, and devices with the client token, may read global model versions.
 * With enrolment on the shared client token is refused here too (enrolled devices fetch models
 * over their proven socket).
 */
@Injectable()
export class ModelReaderGuard implements CanActivate {
  constructor(@Inject(FLOCK_CONFIG) private readonly config: FlockConfig) {}
  canActivate(context: ExecutionContext): boolean {
    const token = bearerToken(context.switchToHttp().getRequest<Request>());
    if (tokenMatches(token, this.config.operatorToken)) return true;
    if (this.config.enrolment === null && tokenMatches(token, this.config.clientToken)) return true;
    throw new UnauthorizedException(
      this.config.enrolment === null ? 'client or operator token required: send Authorization: Bearer <token>' : 'operator token required',
    );
  }
}
