import { Body, Controller, Get, HttpCode, Param, Post, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import { OperatorGuard } from '../auth/auth.js';
import {
  errorBodySchema,
  inferenceFeedbackResultSchema,
  inferenceFeedbackSchema,
  inferenceLogPageSchema,
  inferenceLogQuerySchema,
  INFERENCE_STATUSES,
  requestIdSchema,
  servingStatusSchema,
  type InferenceFeedbackResult,
  type InferenceLogPage,
  type ServingStatus,
} from '../contract/index.js';
import { parseWithZod, ZodParamPipe, zodToOpenApi } from '../operators/zod-validation.js';
import { FeedbackGuard } from './inference-key.guard.js';
import { InferenceLogService } from './inference-log.service.js';
import { ServingService } from './serving.service.js';

const ERROR = zodToOpenApi(errorBodySchema, 'output');

/** The inference log, labelled feedback on served requests, and the serving status (operator API). */
@ApiTags('serving')
@ApiBearerAuth()
@ApiResponse({ status: 401, description: 'Missing or wrong token', schema: ERROR })
@Controller('api')
export class InferenceLogController {
  constructor(
    private readonly log: InferenceLogService,
    private readonly serving: ServingService,
  ) {}

  @Get('inference-log')
  @UseGuards(OperatorGuard)
  @ApiOperation({ operationId: 'listInferenceLog', summary: 'Inference log records, newest first (page with `before`)' })
  @ApiQuery({ name: 'version', required: false, schema: { type: 'integer', minimum: 1 } })
  @ApiQuery({ name: 'status', required: false, schema: { type: 'string', enum: [...INFERENCE_STATUSES] } })
  @ApiQuery({ name: 'since', required: false, schema: { type: 'string', format: 'date-time' } })
  @ApiQuery({ name: 'until', required: false, schema: { type: 'string', format: 'date-time' } })
  @ApiQuery({ name: 'before', required: false, schema: { type: 'integer', minimum: 1 }, description: "The previous page's nextBefore" })
  @ApiQuery({ name: 'limit', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } })
  @ApiResponse({ status: 200, schema: zodToOpenApi(inferenceLogPageSchema, 'output') })
  @ApiResponse({ status: 400, schema: ERROR })
  list(@Query() query: unknown): Promise<InferenceLogPage> {
    return this.log.query(parseWithZod(inferenceLogQuerySchema, query));
  }

  @Post('inference-log/:requestId/feedback')
  @HttpCode(200)
  @UseGuards(FeedbackGuard)
  @ApiOperation({ operationId: 'postInferenceFeedback', summary: 'The true label of a served request (inference key or operator token)' })
  @ApiParam({ name: 'requestId', description: "The request id (the answer's parameters.request_id)", schema: { type: 'string', format: 'uuid' } })
  @ApiBody({ schema: zodToOpenApi(inferenceFeedbackSchema, 'input') })
  @ApiResponse({ status: 200, schema: zodToOpenApi(inferenceFeedbackResultSchema, 'output') })
  @ApiResponse({ status: 404, description: 'No such request logged', schema: ERROR })
  feedback(@Param('requestId', new ZodParamPipe(requestIdSchema)) requestId: string, @Body() body: unknown): Promise<InferenceFeedbackResult> {
    return this.log.feedback(requestId, parseWithZod(inferenceFeedbackSchema, body).label);
  }

  @Get('serving')
  @UseGuards(OperatorGuard)
  @ApiOperation({
    operationId: 'getServingStatus',
    summary: "Serving: the version served, batching, each version's live statistics, the deviation and the actions taken",
  })
  @ApiResponse({ status: 200, schema: zodToOpenApi(servingStatusSchema, 'output') })
  status(): Promise<ServingStatus> {
    return this.serving.status();
  }
}
