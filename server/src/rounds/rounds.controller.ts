import { BadRequestException, Body, Controller, Get, HttpCode, Inject, Param, Post, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import { StrategyConfigError } from '../aggregation/strategies.js';
import { FLOCK_CONFIG, type FlockConfig } from '../config/config.js';
import {
  errorBodySchema,
  roundDetailsSchema,
  roundIdSchema,
  roundListQuerySchema,
  roundListSchema,
  roundRecordSchema,
  startRoundRequestSchema,
  type RoundDetails,
  type RoundParams,
  type RoundRecord,
} from '../contract/index.js';
import { OperatorGuard } from '../auth/auth.js';
import { parseWithZod, ZodParamPipe, zodToOpenApi } from '../operators/zod-validation.js';
import { RoundsService } from './rounds.service.js';
import { toRoundParams } from './start-round.js';

const ROUND = zodToOpenApi(roundRecordSchema, 'output');
const ERROR = zodToOpenApi(errorBodySchema, 'output');
const ROUND_ID = { name: 'id', description: 'The round id', schema: { type: 'string', format: 'uuid' } } as const;
const query = roundListQuerySchema.shape;

@ApiTags('rounds')
@ApiBearerAuth()
@UseGuards(OperatorGuard)
@ApiResponse({ status: 401, description: 'Missing or wrong token', schema: ERROR })
@Controller('api/rounds')
export class RoundsController {
  constructor(
    private readonly rounds: RoundsService,
    @Inject(FLOCK_CONFIG) private readonly config: FlockConfig,
  ) {}

  @Post()
  @ApiOperation({
    operationId: 'startRound',
    summary: 'Start a federated round',
    description: 'Selection starts at once; poll GET /api/rounds/{id} for progress.',
  })
  @ApiBody({ schema: zodToOpenApi(startRoundRequestSchema) })
  @ApiResponse({ status: 201, description: 'The round, in state selecting', schema: ROUND })
  @ApiResponse({ status: 400, description: 'Invalid parameters', schema: ERROR })
  @ApiResponse({ status: 409, description: 'A round is already in flight', schema: ERROR })
  async start(@Body() body: unknown): Promise<RoundRecord> {
    const request = parseWithZod(startRoundRequestSchema, body ?? {});
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
  @ApiOperation({ operationId: 'listRounds', summary: 'List rounds, newest first' })
  @ApiQuery({ name: 'limit', required: false, schema: zodToOpenApi(query.limit) })
  @ApiQuery({ name: 'offset', required: false, schema: zodToOpenApi(query.offset) })
  @ApiResponse({ status: 200, description: 'Rounds, newest first', schema: zodToOpenApi(roundListSchema, 'output') })
  @ApiResponse({ status: 400, description: 'Invalid limit or offset', schema: ERROR })
  async list(@Query() query: unknown): Promise<RoundRecord[]> {
    return this.rounds.list(parseWithZod(roundListQuerySchema, query));
  }

  @Get(':id')
  @ApiOperation({ operationId: 'getRound', summary: 'One round with its live state, metrics and state transitions' })
  @ApiParam(ROUND_ID)
  @ApiResponse({ status: 200, description: 'The round', schema: zodToOpenApi(roundDetailsSchema, 'output') })
  @ApiResponse({ status: 400, description: 'Not a UUID', schema: ERROR })
  @ApiResponse({ status: 404, description: 'Unknown round', schema: ERROR })
  async get(@Param('id', new ZodParamPipe(roundIdSchema)) id: string): Promise<RoundDetails> {
    return this.rounds.get(id);
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOperation({ operationId: 'cancelRound', summary: 'Abort the round in flight; the global model is untouched' })
  @ApiParam(ROUND_ID)
  @ApiResponse({ status: 400, description: 'Not a UUID', schema: ERROR })
  @ApiResponse({ status: 404, description: 'Unknown round', schema: ERROR })
  @ApiResponse({ status: 200, description: 'The round, now aborted', schema: ROUND })
  @ApiResponse({ status: 409, description: 'The round already ended', schema: ERROR })
  async cancel(@Param('id', new ZodParamPipe(roundIdSchema)) id: string): Promise<RoundRecord> {
    return this.rounds.cancel(id);
  }
}
