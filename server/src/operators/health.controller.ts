import { Controller, Get, Inject, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { OperatorGuard } from '../auth/auth.js';
import {
  clientCountsSchema,
  errorBodySchema,
  healthSchema,
  statusSchema,
  type ClientCountsResponse,
  type HealthResponse,
  type StatusResponse,
} from '../contract/index.js';
import { DEVICE_DIRECTORY, type DeviceDirectory } from '../devices/device-directory.js';
import { ModelsService } from '../models/models.service.js';
import { RoundsService } from '../rounds/rounds.service.js';
import { zodToOpenApi } from './zod-validation.js';

const UNAUTHORIZED = { status: 401, description: 'Missing or wrong token', schema: zodToOpenApi(errorBodySchema, 'output') } as const;

@ApiTags('operators')
@Controller('api')
export class HealthController {
  private readonly startedAt = Date.now();

  constructor(
    private readonly models: ModelsService,
    @Inject(DEVICE_DIRECTORY) private readonly devices: DeviceDirectory,
    private readonly rounds: RoundsService,
  ) {}

  /** Unauthenticated, so it says nothing but that the process answers (no round id, no counts). */
  @Get('health')
  @ApiOperation({ operationId: 'getHealth', summary: 'Liveness (no token needed; reveals nothing else)' })
  @ApiResponse({ status: 200, description: 'The process answers', schema: zodToOpenApi(healthSchema, 'output') })
  health(): HealthResponse {
    return { status: 'ok' };
  }

  @Get('status')
  @UseGuards(OperatorGuard)
  @ApiBearerAuth()
  @ApiOperation({ operationId: 'getStatus', summary: 'The current version, client counts, the round in flight and the uptime' })
  @ApiResponse({ status: 200, description: 'The coordinator at a glance', schema: zodToOpenApi(statusSchema, 'output') })
  @ApiResponse(UNAUTHORIZED)
  async status(): Promise<StatusResponse> {
    const counts = await this.devices.counts();
    return {
      status: 'ok',
      modelVersion: (await this.models.current())?.version ?? null,
      connectedClients: counts.connected,
      eligibleClients: counts.eligible,
      activeRound: this.rounds.activeRoundId(),
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
    };
  }

  @Get('clients')
  @UseGuards(OperatorGuard)
  @ApiBearerAuth()
  @ApiOperation({ operationId: 'getClientCounts', summary: 'Counts of connected, eligible and participating devices' })
  @ApiResponse({ status: 200, description: 'Device counts', schema: zodToOpenApi(clientCountsSchema, 'output') })
  @ApiResponse(UNAUTHORIZED)
  counts(): Promise<ClientCountsResponse> {
    return this.devices.counts();
  }
}
