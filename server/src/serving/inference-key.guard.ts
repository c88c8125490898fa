import { Inject, Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import { bearerToken } from '../auth/auth.js';
import { matchesAnyKey } from '../auth/tokens.js';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';

export { matchesAnyKey } from '../auth/tokens.js';

/** The inference API (`/v2`): `Authorization: Bearer <inference key>`; operator and device tokens are not inference keys. */
@Injectable()
export class InferenceKeyGuard implements CanActivate {
  constructor(@Inject(FLOCK_CONFIG) private readonly config: FlockConfig) {}
  canActivate(context: ExecutionContext): boolean {
    if (matchesAnyKey(bearerToken(context.switchToHttp().getRequest<Request>()), this.config.serving.inferenceKeys)) return true;
    throw new UnauthorizedException('inference key required: send Authorization: Bearer <key>');
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
