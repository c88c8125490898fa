import { Body, Controller, Get, Headers, HttpCode, Param, Post, Res, StreamableFile, UseFilters, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import {
  INFERENCE_HEADER_LENGTH,
  v2ErrorSchema,
  v2InferRequestSchema,
  v2InferResponseSchema,
  v2LiveSchema,
  v2ModelMetadataSchema,
  v2ReadySchema,
  v2ServerMetadataSchema,
  v2VersionParamSchema,
  type V2InferResponse,
  type V2ModelMetadata,
  type V2ServerMetadata,
} from '../contract/index.js';
import { ZodParamPipe, zodToOpenApi } from '../operators/zod-validation.js';
import { InferenceKeyGuard } from './inference-key.guard.js';
import { ServingService, type InferOutcome } from './serving.service.js';
import { V2ErrorFilter } from './v2-error.filter.js';

const ERROR = zodToOpenApi(v2ErrorSchema, 'output');
const NAME_PARAM = { name: 'name', description: 'The served model: `global`', schema: { type: 'string', example: 'global' } } as const;
const VERSION_PARAM = { name: 'version', description: 'A global model version', schema: { type: 'string', pattern: '^[1-9][0-9]*$' } } as const;
const versionPipe = () => new ZodParamPipe(v2VersionParamSchema);

/** The answer as JSON, or (binary tensor extension) JSON header + output bytes. */
function send(outcome: InferOutcome, res: Response): V2InferResponse | StreamableFile {
  const { body, headerLength } = outcome.response;
  if (!Buffer.isBuffer(body)) return body;
  res.setHeader('Inference-Header-Content-Length', String(headerLength));
  return new StreamableFile(body, { type: 'application/octet-stream', length: body.byteLength });
}

function headerLengthOf(value: string | undefined): number | undefined {
  return value === undefined ? undefined : Number(value);
}

/**
 * The Open Inference Protocol (KServe V2) over REST. Health needs no credential; everything else
 * takes an inference key. Errors are `{ "error": "..." }`.
 */
@ApiTags('inference')
@UseFilters(V2ErrorFilter)
@Controller('v2')
export class V2Controller {
  constructor(private readonly serving: ServingService) {}

  @Get('health/live')
  @ApiOperation({ operationId: 'v2ServerLive', summary: 'Liveness (no credential)' })
  @ApiResponse({ status: 200, schema: zodToOpenApi(v2LiveSchema, 'output') })
  live(): { live: boolean } {
    return { live: true };
  }

  @Get('health/ready')
  @ApiOperation({
    operationId: 'v2ServerReady',
    summary: 'Readiness: the inference workers run and the current version is loaded (no credential; the first call starts them)',
  })
  @ApiResponse({ status: 200, schema: zodToOpenApi(v2ReadySchema, 'output') })
  ready(@Res({ passthrough: true }) res: Response): { ready: boolean } {
    const ready = this.serving.ready();
    if (!ready) res.status(503);
    return { ready };
  }

  @Get()
  @UseGuards(InferenceKeyGuard)
  @ApiBearerAuth()
  @ApiOperation({ operationId: 'v2ServerMetadata', summary: 'Server metadata' })
  @ApiResponse({ status: 200, schema: zodToOpenApi(v2ServerMetadataSchema, 'output') })
  @ApiResponse({ status: 401, schema: ERROR })
  server(): V2ServerMetadata {
    return { name: 'flock', version: '0.1.0', extensions: ['binary_tensor_data'] };
  }

  @Get('models/:name/ready')
  @UseGuards(InferenceKeyGuard)
  @ApiBearerAuth()
  @ApiOperation({ operationId: 'v2ModelReady', summary: 'Whether the current version of the model is loaded' })
  @ApiParam(NAME_PARAM)
  @ApiResponse({ status: 200, schema: zodToOpenApi(v2ReadySchema, 'output') })
  async modelReady(@Param('name') name: string, @Res({ passthrough: true }) res: Response): Promise<{ ready: boolean }> {
    await this.serving.metadata(name, null).catch(() => undefined);
    const ready = this.serving.ready();
    if (!ready) res.status(503);
    return { ready };
  }

  @Get('models/:name')
  @UseGuards(InferenceKeyGuard)
  @ApiBearerAuth()
  @ApiOperation({ operationId: 'v2ModelMetadata', summary: "Model metadata: the current version's inputs and outputs, every version" })
  @ApiParam(NAME_PARAM)
  @ApiResponse({ status: 200, schema: zodToOpenApi(v2ModelMetadataSchema, 'output') })
  @ApiResponse({ status: 401, schema: ERROR })
  @ApiResponse({ status: 404, description: 'Unknown model', schema: ERROR })
  metadata(@Param('name') name: string): Promise<V2ModelMetadata> {
    return this.serving.metadata(name, null);
  }

  @Get('models/:name/versions/:version')
  @UseGuards(InferenceKeyGuard)
  @ApiBearerAuth()
  @ApiOperation({ operationId: 'v2ModelVersionMetadata', summary: 'Model metadata of one version' })
  @ApiParam(NAME_PARAM)
  @ApiParam(VERSION_PARAM)
  @ApiResponse({ status: 200, schema: zodToOpenApi(v2ModelMetadataSchema, 'output') })
  @ApiResponse({ status: 404, description: 'Unknown model or version', schema: ERROR })
  versionMetadata(@Param('name') name: string, @Param('version', versionPipe()) version: number): Promise<V2ModelMetadata> {
    return this.serving.metadata(name, version);
  }

  @Post('models/:name/infer')
  @HttpCode(200)
  @UseGuards(InferenceKeyGuard)
  @ApiBearerAuth()
  @ApiOperation({
    operationId: 'v2ModelInfer',
    summary: 'Inference on the current version (FP32 tensors, JSON or the binary tensor extension)',
    description:
      'The answer carries `model_version`, the version that computed it. Binary tensor extension: `Content-Type: application/octet-stream`, ' +
      '`Inference-Header-Content-Length: <bytes of the JSON header>`, inputs with `parameters.binary_data_size`.',
  })
  @ApiParam(NAME_PARAM)
  @ApiBody({ schema: zodToOpenApi(v2InferRequestSchema, 'input') })
  @ApiResponse({ status: 200, schema: zodToOpenApi(v2InferResponseSchema, 'output') })
  @ApiResponse({ status: 400, description: 'Bad input name, shape, datatype or data', schema: ERROR })
  @ApiResponse({ status: 401, schema: ERROR })
  @ApiResponse({ status: 404, description: 'Unknown model', schema: ERROR })
  @ApiResponse({ status: 413, description: 'Body larger than FLOCK_INFERENCE_MAX_BODY_BYTES', schema: ERROR })
  @ApiResponse({ status: 503, description: 'Queue full or not ready', schema: ERROR })
  async infer(
    @Param('name') name: string,
    @Body() body: unknown,
    @Headers(INFERENCE_HEADER_LENGTH) headerLength: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<V2InferResponse | StreamableFile> {
    return send(await this.serving.infer(name, null, body, headerLengthOf(headerLength)), res);
  }

  @Post('models/:name/versions/:version/infer')
  @HttpCode(200)
  @UseGuards(InferenceKeyGuard)
  @ApiBearerAuth()
  @ApiOperation({ operationId: 'v2ModelVersionInfer', summary: 'Inference on a pinned version' })
  @ApiParam(NAME_PARAM)
  @ApiParam(VERSION_PARAM)
  @ApiBody({ schema: zodToOpenApi(v2InferRequestSchema, 'input') })
  @ApiResponse({ status: 200, schema: zodToOpenApi(v2InferResponseSchema, 'output') })
  @ApiResponse({ status: 400, schema: ERROR })
  @ApiResponse({ status: 404, description: 'Unknown model or version', schema: ERROR })
  async inferVersion(
    @Param('name') name: string,
    @Param('version', versionPipe()) version: number,
    @Body() body: unknown,
    @Headers(INFERENCE_HEADER_LENGTH) headerLength: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<V2InferResponse | StreamableFile> {
    return send(await this.serving.infer(name, version, body, headerLengthOf(headerLength)), res);
  }
}
