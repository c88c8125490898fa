import { Inject, Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import { bearerToken } from '../auth/auth.js';
import { matchesAnyKey } from '../auth/tokens.js';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';

export { matchesAnyKey } from '../auth/tokens.js';

/**
 * The inference API's credential: `Authorization: Bearer <inference key>`; operator and device
 * tokens are not inference keys. Throws the 401 otherwise (the guard's and the fast path's).
 */
export function assertInferenceKey(request: Pick<Request, 'headers'>, keys: readonly string[]): void {
  if (!matchesAnyKey(bearerToken(request), keys)) throw new UnauthorizedException('inference key required: send Authorization: Bearer <key>');
}

/** The inference API (`/v2`) behind express: see assertInferenceKey. */
@Injectable()
export class InferenceKeyGuard implements CanActivate {
  constructor(@Inject(FLOCK_CONFIG) private readonly config: FlockConfig) {}
  canActivate(context: ExecutionContext): boolean {
    assertInferenceKey(context.switchToHttp().getRequest<Request>(), this.config.serving.inferenceKeys);
    return true;
  }
}

/** Feedback on a served request: the application holding an inference key, or the operator. */
@Injectable()
export class FeedbackGuard implements CanActivate {
  constructor(@Inject(FLOCK_CONFIG) private readonly config: FlockConfig) {}
  canActivate(context: ExecutionContext): boolean {
    const token = bearerToken(context.switchToHttp().getRequest<Request>());
    if (matchesAnyKey(token, [...this.config.serving.inferenceKeys, this.config.operatorToken])) return true;
    throw new UnauthorizedException('inference key or operator token required');
  }
}
