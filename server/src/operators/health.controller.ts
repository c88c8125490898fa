import { Controller, Get, Inject, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { DEVICE_DIRECTORY, type DeviceCounts, type DeviceDirectory } from '../devices/device-directory.js';
import { ModelsService } from '../models/models.service.js';
import { RoundsService } from '../rounds/rounds.service.js';
import { OperatorGuard } from '../auth/auth.js';

export interface Health {
  status: 'ok';
  modelVersion: number | null;
  connectedClients: number;
  eligibleClients: number;
  activeRound: string | null;
  uptimeSeconds: number;
}

@ApiTags('operators')
@Controller('api')
export class HealthController {
  private readonly startedAt = Date.now();

  constructor(
    private readonly models: ModelsService,
    @Inject(DEVICE_DIRECTORY) private readonly devices: DeviceDirectory,
    private readonly rounds: RoundsService,
  ) {}

  @Get('health')
  @ApiOperation({ summary: 'Liveness and a summary (no token needed; reveals no client or model data)' })
  async health(): Promise<Health> {
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
  @ApiOperation({ summary: 'Counts of connected, eligible and participating devices' })
  counts(): Promise<DeviceCounts> {
    return this.devices.counts();
  }
}
