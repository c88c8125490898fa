import { BadRequestException, Body, Controller, Get, HttpCode, Inject, Param, ParseUUIDPipe, Post, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import { OperatorGuard } from '../auth/auth.js';
import { parseWithZod, zodToOpenApi } from '../operators/zod-validation.js';
import { StrategyConfigError } from '../aggregation/strategies.js';
import type { RoundParams, RoundRecord } from './round-types.js';
import { RoundsService, type RoundView } from './rounds.service.js';
import { startRoundSchema, toRoundParams } from './start-round.js';

const listQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(50),
  offset: z.coerce.number().int().min(0).default(0),
});

@ApiTags('rounds')
@ApiBearerAuth()
@UseGuards(OperatorGuard)
@Controller('api/rounds')
export class RoundsController {
  constructor(
    private readonly rounds: RoundsService,
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
  ) {}

  @Post()
  @ApiOperation({ summary: 'Start a federated round', description: 'Selection starts at once; poll GET /api/rounds/{id} for progress.' })
  @ApiBody({ schema: zodToOpenApi(startRoundSchema) })
  @ApiResponse({ status: 201, description: 'The round, in state selecting' })
  @ApiResponse({ status: 400, description: 'Invalid parameters' })
  @ApiResponse({ status: 409, description: 'A round is already in flight' })
  async start(@Body() body: unknown): Promise<RoundRecord> {
    const request = parseWithZod(startRoundSchema, body ?? {});
    let params: RoundParams;
    try {
      params = toRoundParams(request, this.config.overSelection);
    } catch (error) {
      if (error instanceof StrategyConfigError) throw new BadRequestException([error.message]);
      throw error;
    }
    return this.rounds.start(params);
  }

  @Get()
  @ApiOperation({ summary: 'List rounds, newest first' })
  @ApiQuery({ name: 'limit', required: false, type: Number })
  @ApiQuery({ name: 'offset', required: false, type: Number })
  async list(@Query() query: unknown): Promise<RoundRecord[]> {
    return this.rounds.list(parseWithZod(listQuerySchema, query));
  }

  @Get(':id')
  @ApiOperation({ summary: 'One round with its live state, metrics and state transitions' })
  @ApiResponse({ status: 404, description: 'Unknown round' })
  async get(@Param('id', new ParseUUIDPipe({ exceptionFactory: () => new BadRequestException('round id must be a UUID') })) id: string): Promise<RoundView> {
    return this.rounds.get(id);
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOperation({ summary: 'Abort the round in flight; the global model is untouched' })
  @ApiResponse({ status: 409, description: 'The round already ended' })
  async cancel(@Param('id', new ParseUUIDPipe({ exceptionFactory: () => new BadRequestException('round id must be a UUID') })) id: string): Promise<RoundRecord> {
    return this.rounds.cancel(id);
  }
}
