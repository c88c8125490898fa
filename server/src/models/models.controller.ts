import { BadRequestException, Body, Controller, Get, Param, Post, Res, StreamableFile, UploadedFiles, UseGuards, UseInterceptors } from '@nestjs/common';
import { FileFieldsInterceptor } from '@nestjs/platform-express';
import { ApiBearerAuth, ApiBody, ApiConsumes, ApiOperation, ApiParam, ApiProduces, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import {
  errorBodySchema,
  modelJsonSchema,
  modelVersionDetailSchema,
  modelVersionListSchema,
  modelVersionMetaSchema,
  modelVersionNumberSchema,
  modelVersionSelectorSchema,
  REGISTER_PARTS,
  registerFieldsSchema,
  registerMetricsSchema,
  type ModelJson,
  type ModelMetrics,
  type ModelVersionDetail,
  type ModelVersionMeta,
  type ModelVersionSelector,
} from '../contract/index.js';
import { ModelReaderGuard, OperatorGuard } from '../auth/auth.js';
import { ZodParamPipe, zodToOpenApi } from '../operators/zod-validation.js';
import { ModelsService } from './models.service.js';
import { buildModelJson, InvalidModelError, parseModelJson, WEIGHTS_FILE } from './tfjs-format.js';

/** `:version`: a positive integer, or `current`; anything else is a 400. */
const versionSelector = () => new ZodParamPipe(modelVersionSelectorSchema);

/** What multer's memory storage hands over per file (the subset used here). */
interface UploadedPart {
  buffer: Buffer;
  size: number;
}
type RegisterUpload = Partial<Record<(typeof REGISTER_PARTS)['modelJson' | 'weights'], UploadedPart[]>>;

/** The multipart fields that `model.save(tf.io.http(url))` sends. */
const UPLOAD_FIELDS = [
  { name: REGISTER_PARTS.modelJson, maxCount: 1 },
  { name: REGISTER_PARTS.weights, maxCount: 1 },
];

const META = zodToOpenApi(modelVersionMetaSchema, 'output');
const ERROR = zodToOpenApi(errorBodySchema, 'output');
/** Errors of the binary weights route are JSON all the same (its @ApiProduces would otherwise claim octet-stream). */
const JSON_ERROR = { 'application/json': { schema: ERROR } };

const VERSION_PARAM = {
  name: 'version',
  description: 'Version number, or `current` for the latest version',
  schema: {
    oneOf: [
      { type: 'integer', minimum: 1 },
      { type: 'string', enum: ['current'] },
    ],
  },
} as const;

/** Version numbers name immutable content; `current` moves. */
function cacheControl(requested: ModelVersionSelector): string {
  return requested === 'current' ? 'no-cache' : 'private, max-age=31536000, immutable';
}

@ApiTags('models')
@ApiBearerAuth()
@ApiResponse({ status: 401, description: 'Missing or wrong token', schema: ERROR })
@Controller('api/models')
export class ModelsController {
  constructor(private readonly models: ModelsService) {}

  @Get()
  @UseGuards(OperatorGuard)
  @ApiOperation({ operationId: 'listModels', summary: 'List global model versions, newest first' })
  @ApiResponse({ status: 200, description: 'Versions, newest first', schema: zodToOpenApi(modelVersionListSchema, 'output') })
  list(): Promise<ModelVersionMeta[]> {
    return this.models.list();
  }

  @Post()
  @UseGuards(OperatorGuard)
  @UseInterceptors(FileFieldsInterceptor(UPLOAD_FIELDS))
  @ApiOperation({
    operationId: 'registerModel',
    summary: 'Register a TensorFlow.js layers model as a new global version',
    description:
      'Accepts what `model.save(tf.io.http(url, { requestInit: { headers: { Authorization: "Bearer <operator token>" } } }))` sends: ' +
      'multipart parts `model.json` and `model.weights.bin`. Weights must be float32 and finite. Optional text field `metrics`: a JSON object of numbers/strings.',
  })
  @ApiConsumes('multipart/form-data')
  @ApiBody({
    schema: {
      type: 'object',
      required: [REGISTER_PARTS.modelJson],
      properties: {
        [REGISTER_PARTS.modelJson]: { type: 'string', format: 'binary' },
        [REGISTER_PARTS.weights]: { type: 'string', format: 'binary' },
        [REGISTER_PARTS.metrics]: { type: 'string', example: '{"note":"pre-trained offline"}' },
      },
    },
  })
  @ApiResponse({ status: 201, schema: META, description: 'The new version' })
  @ApiResponse({ status: 400, description: 'Not a valid float32 layers model', schema: ERROR })
  @ApiResponse({ status: 413, description: 'Upload larger than the configured limit', schema: ERROR })
  async register(@UploadedFiles() files: RegisterUpload | undefined, @Body() body: unknown): Promise<ModelVersionMeta> {
    const modelJson = files?.[REGISTER_PARTS.modelJson]?.[0];
    if (!modelJson) throw new BadRequestException('multipart part "model.json" is missing (send the model with tf.io.http)');
    let parsed: ReturnType<typeof parseModelJson>;
    try {
      parsed = parseModelJson(JSON.parse(modelJson.buffer.toString('utf8')) as unknown);
    } catch (error) {
      if (error instanceof SyntaxError) throw new BadRequestException(`model.json is not valid JSON: ${error.message}`);
      if (error instanceof InvalidModelError) throw new BadRequestException(error.message);
      throw error;
    }
    const weights = files[REGISTER_PARTS.weights]?.[0]?.buffer ?? new Uint8Array(0);
    return this.models.register(
      parsed.topology,
      parsed.weightSpecs,
      weights,
      parseMetricsField(registerFieldsSchema.safeParse(body).data?.[REGISTER_PARTS.metrics]),
    );
  }

  @Get(':version')
  @UseGuards(OperatorGuard)
  @ApiOperation({ operationId: 'getModel', summary: 'One version: metadata, weight specs and topology' })
  @ApiParam(VERSION_PARAM)
  @ApiResponse({ status: 200, description: 'The version', schema: zodToOpenApi(modelVersionDetailSchema, 'output') })
  @ApiResponse({ status: 400, description: 'Invalid version', schema: ERROR })
  @ApiResponse({ status: 404, description: 'No such version', schema: ERROR })
  async detail(@Param('version', versionSelector()) requested: ModelVersionSelector): Promise<ModelVersionDetail> {
    const { strategyState, ...record } = await this.models.get(await this.models.resolveVersion(requested));
    return { ...record, hasStrategyState: strategyState !== null, modelUrl: `/api/models/${record.version}/model.json` };
  }

  @Get(':version/model.json')
  @UseGuards(ModelReaderGuard)
  @ApiOperation({
    operationId: 'getModelJson',
    summary: 'TensorFlow.js model.json of a version (client or operator token)',
    description: 'Load with `tf.loadLayersModel(url, { requestInit: { headers: { Authorization } } })`. The weights path names the concrete version.',
  })
  @ApiParam(VERSION_PARAM)
  @ApiResponse({ status: 200, description: 'The TensorFlow.js layers format', schema: zodToOpenApi(modelJsonSchema, 'output') })
  @ApiResponse({ status: 400, description: 'Invalid version', schema: ERROR })
  @ApiResponse({ status: 404, description: 'No such version', schema: ERROR })
  async modelJson(@Param('version', versionSelector()) requested: ModelVersionSelector, @Res({ passthrough: true }) res: Response): Promise<ModelJson> {
    const version = await this.models.resolveVersion(requested);
    const { topology, weightSpecs } = await this.models.getModelPayload(version);
    res.setHeader('Cache-Control', cacheControl(requested));
    res.setHeader('X-Flock-Model-Version', String(version));
    return buildModelJson(version, topology, weightSpecs);
  }

  @Get(`:version/${WEIGHTS_FILE}`)
  @UseGuards(ModelReaderGuard)
  @ApiOperation({
    operationId: 'getModelWeights',
    summary: 'Raw weights of a version: float32 little-endian, in weight-spec order (client or operator token)',
  })
  @ApiParam(VERSION_PARAM)
  @ApiProduces('application/octet-stream')
  @ApiResponse({ status: 200, description: 'The weight bytes', schema: { type: 'string', format: 'binary' } })
  @ApiResponse({ status: 400, description: 'Invalid version', content: JSON_ERROR })
  @ApiResponse({ status: 401, description: 'Missing or wrong token', content: JSON_ERROR })
  @ApiResponse({ status: 404, description: 'No such version', content: JSON_ERROR })
  async weights(@Param('version', versionSelector()) requested: ModelVersionSelector, @Res({ passthrough: true }) res: Response): Promise<StreamableFile> {
    const version = await this.models.resolveVersion(requested);
    const bytes = await this.models.getWeightBytes(version);
    res.setHeader('Cache-Control', cacheControl(requested));
    res.setHeader('X-Flock-Model-Version', String(version));
    return new StreamableFile(bytes, { type: 'application/octet-stream', length: bytes.byteLength });
  }

  @Post(':version/rollback')
  @UseGuards(OperatorGuard)
  @ApiOperation({
    operationId: 'rollbackModel',
    summary: 'Make an old version current again',
    description: "Creates a NEW version (source `rollback`) with the old version's weights; history is never rewritten.",
  })
  @ApiParam({ name: 'version', description: 'The version to restore', schema: { type: 'integer', minimum: 1 } })
  @ApiResponse({ status: 201, schema: META, description: 'The new version' })
  @ApiResponse({ status: 400, description: 'Invalid version', schema: ERROR })
  @ApiResponse({ status: 404, description: 'No such version', schema: ERROR })
  @ApiResponse({ status: 409, description: 'The version is already the current one', schema: ERROR })
  rollback(@Param('version', new ZodParamPipe(modelVersionNumberSchema)) version: number): Promise<ModelVersionMeta> {
    return this.models.rollback(version);
  }
}

function parseMetricsField(value: unknown): ModelMetrics {
  if (value === undefined || value === '') return {};
  let json: unknown;
  try {
    json = typeof value === 'string' ? JSON.parse(value) : value;
  } catch {
    throw new BadRequestException('field "metrics" must be a JSON object');
  }
  const parsed = registerMetricsSchema.safeParse(json);
  if (!parsed.success) throw new BadRequestException(`field "metrics": ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}
