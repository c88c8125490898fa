import { Controller, Get, Inject, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { OperatorGuard } from '../auth/auth.js';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { errorBodySchema, privacyStatusSchema, type PrivacyStatus } from '../contract/index.js';
import { zodToOpenApi } from '../operators/zod-validation.js';
import { epsilonAt } from '../privacy/ledger.js';
import { ModelsService } from './models.service.js';

/** `GET /api/privacy`: the privacy ledger as of the newest version, beside the operator's budget. */
@ApiTags('models')
@Controller('api/privacy')
export class PrivacyController {
  constructor(
    private readonly models: ModelsService,
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
  ) {}

  @Get()
  @UseGuards(OperatorGuard)
  @ApiBearerAuth()
  @ApiOperation({
    operationId: 'getPrivacy',
    summary: 'ε spent by the differentially private rounds so far, the budget, and whether the current version is covered',
  })
  @ApiResponse({ status: 200, description: 'The privacy ledger (docs/PRIVACY.md)', schema: zodToOpenApi(privacyStatusSchema, 'output') })
  @ApiResponse({ status: 401, description: 'Missing or wrong operator token', schema: zodToOpenApi(errorBodySchema, 'output') })
  async status(): Promise<PrivacyStatus> {
    const { delta, budget } = this.config.privacy;
    const current = await this.models.current();
    const account = current?.privacy ?? null;
    const spent = { epsilon: account ? epsilonAt(account, delta) : 0, dpRounds: account?.dpRounds ?? 0 };
    return {
      delta,
      budget,
      spent,
      remaining: budget ? Math.max(0, budget.epsilon - spent.epsilon) : null,
      currentVersion: current?.version ?? null,
      currentProtected: account?.protected ?? null,
    };
  }
}
