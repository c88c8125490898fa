import { Controller, Get, HttpCode, Param, Post, Query, Req, UnsupportedMediaTypeException, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiConsumes, ApiOperation, ApiParam, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import { OperatorGuard } from '../auth/auth.js';
import {
  DATASET_NAME_PATTERN,
  datasetNameSchema,
  errorBodySchema,
  PRECOMPUTE_FORMATS,
  precomputeJobIdSchema,
  precomputeJobListQuerySchema,
  precomputeJobListSchema,
  precomputeJobSchema,
  precomputeStartQuerySchema,
  predictionKeySchema,
  predictionQuerySchema,
  predictionSchema,
  type PrecomputeFormat,
  type PrecomputeJob,
  type Prediction,
} from '../contract/index.js';
import { parseWithZod, ZodParamPipe, zodToOpenApi } from '../operators/zod-validation.js';
import { FeedbackGuard } from '../serving/inference-key.guard.js';
import { PrecomputeService } from './precompute.service.js';

const ERROR = zodToOpenApi(errorBodySchema, 'output');
const JOB = zodToOpenApi(precomputeJobSchema, 'output');

/** The input's format: the `format` query, else the Content-Type (text/csv: csv; anything else but JSON: ndjson). */
function formatOf(request: Request, asked: PrecomputeFormat | undefined): PrecomputeFormat {
  const type = (request.headers['content-type'] ?? '').toLowerCase();
  // The app-wide JSON parser has consumed (and bounded to 64 KiB) an application/json body already.
  if (type.startsWith('application/json')) throw new UnsupportedMediaTypeException('send NDJSON as application/x-ndjson and CSV as text/csv');
  return asked ?? (type.startsWith('text/csv') ? 'csv' : 'ndjson');
}

function declaredLength(request: Request): number | null {
  const header = request.headers['content-length'];
  const length = header === undefined ? Number.NaN : Number(header);
  return Number.isSafeInteger(length) && length >= 0 ? length : null;
}

/** Precompute jobs (operator token) and precomputed predictions (inference key or operator token). */
@ApiTags('precompute')
@ApiBearerAuth()
@ApiResponse({ status: 401, description: 'Missing or wrong token', schema: ERROR })
@Controller('api')
export class PrecomputeController {
  constructor(private readonly precompute: PrecomputeService) {}

  @Post('precompute/:dataset')
  @HttpCode(202)
  @UseGuards(OperatorGuard)
  @ApiOperation({
    operationId: 'startPrecompute',
    summary: 'Predict a dataset ahead of time: the body is the input (NDJSON lines {"id": ..., "input": [...]}, or CSV with a header)',
  })
  @ApiParam({ name: 'dataset', schema: { type: 'string', pattern: `^${DATASET_NAME_PATTERN}$` } })
  @ApiQuery({ name: 'format', required: false, schema: { type: 'string', enum: [...PRECOMPUTE_FORMATS] } })
  @ApiQuery({ name: 'keyField', required: false, schema: { type: 'string', default: 'id' } })
  @ApiQuery({ name: 'version', required: false, schema: { type: 'integer', minimum: 1 } })
  @ApiQuery({ name: 'follow', required: false, schema: { type: 'boolean' } })
  @ApiConsumes('application/x-ndjson', 'text/csv')
  @ApiBody({ schema: { type: 'string', format: 'binary' } })
  @ApiResponse({ status: 202, description: 'The job, queued', schema: JOB })
  @ApiResponse({ status: 400, schema: ERROR })
  @ApiResponse({ status: 404, description: 'No such model version', schema: ERROR })
  @ApiResponse({ status: 413, description: 'Over FLOCK_PRECOMPUTE_MAX_UPLOAD_BYTES', schema: ERROR })
  @ApiResponse({ status: 415, description: 'application/json bodies are refused', schema: ERROR })
  start(@Param('dataset', new ZodParamPipe(datasetNameSchema)) dataset: string, @Query() query: unknown, @Req() request: Request): Promise<PrecomputeJob> {
    const parsed = parseWithZod(precomputeStartQuerySchema, query);
    return this.precompute.start(dataset, parsed, formatOf(request, parsed.format), request, declaredLength(request));
  }

  @Get('precompute/jobs')
  @UseGuards(OperatorGuard)
  @ApiOperation({ operationId: 'listPrecomputeJobs', summary: 'Precompute jobs, newest first' })
  @ApiQuery({ name: 'dataset', required: false, schema: { type: 'string' } })
  @ApiQuery({ name: 'limit', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } })
  @ApiResponse({ status: 200, schema: zodToOpenApi(precomputeJobListSchema, 'output') })
  @ApiResponse({ status: 400, schema: ERROR })
  list(@Query() query: unknown): Promise<PrecomputeJob[]> {
    return this.precompute.listJobs(parseWithZod(precomputeJobListQuerySchema, query));
  }

  @Get('precompute/jobs/:id')
  @UseGuards(OperatorGuard)
  @ApiOperation({ operationId: 'getPrecomputeJob', summary: "A precompute job's progress, counts and rejections" })
  @ApiParam({ name: 'id', schema: { type: 'string', format: 'uuid' } })
  @ApiResponse({ status: 200, schema: JOB })
  @ApiResponse({ status: 400, schema: ERROR })
  @ApiResponse({ status: 404, schema: ERROR })
  get(@Param('id', new ZodParamPipe(precomputeJobIdSchema)) id: string): Promise<PrecomputeJob> {
    return this.precompute.getJob(id);
  }

  @Post('precompute/jobs/:id/resume')
  @HttpCode(202)
  @UseGuards(OperatorGuard)
  @ApiOperation({ operationId: 'resumePrecomputeJob', summary: 'Run a failed job again from its checkpoint' })
  @ApiParam({ name: 'id', schema: { type: 'string', format: 'uuid' } })
  @ApiResponse({ status: 202, schema: JOB })
  @ApiResponse({ status: 400, schema: ERROR })
  @ApiResponse({ status: 404, schema: ERROR })
  @ApiResponse({ status: 409, description: 'The job is completed', schema: ERROR })
  resume(@Param('id', new ZodParamPipe(precomputeJobIdSchema)) id: string): Promise<PrecomputeJob> {
    return this.precompute.resume(id);
  }

  @Get('predictions/:dataset/:key')
  @UseGuards(FeedbackGuard)
  @ApiOperation({ operationId: 'getPrediction', summary: 'A precomputed prediction (inference key or operator token): the newest version, or ?version=' })
  @ApiParam({ name: 'dataset', schema: { type: 'string' } })
  @ApiParam({ name: 'key', schema: { type: 'string' } })
  @ApiQuery({ name: 'version', required: false, schema: { type: 'integer', minimum: 1 } })
  @ApiResponse({ status: 200, schema: zodToOpenApi(predictionSchema, 'output') })
  @ApiResponse({ status: 400, schema: ERROR })
  @ApiResponse({ status: 404, schema: ERROR })
  prediction(
    @Param('dataset', new ZodParamPipe(datasetNameSchema)) dataset: string,
    @Param('key', new ZodParamPipe(predictionKeySchema)) key: string,
    @Query() query: unknown,
  ): Promise<Prediction> {
    return this.precompute.prediction(dataset, key, parseWithZod(predictionQuerySchema, query).version ?? null);
  }
}
