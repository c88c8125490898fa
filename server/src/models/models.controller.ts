import {
  BadRequestException,
  Body,
  Controller,
  Get,
  Param,
  Post,
  Res,
  StreamableFile,
  UploadedFiles,
  UseGuards,
  UseInterceptors,
  type PipeTransform,
} from '@nestjs/common';
import { FileFieldsInterceptor } from '@nestjs/platform-express';
import { ApiBearerAuth, ApiBody, ApiConsumes, ApiOperation, ApiParam, ApiProduces, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { z } from 'zod';
import { ModelReaderGuard, OperatorGuard } from '../auth/auth.js';
import type { ModelVersionMeta } from '../storage/storage.js';
import { ModelJsonDto, ModelVersionDetailDto, ModelVersionMetaDto } from './model-dto.js';
import { ModelsService } from './models.service.js';
import { buildModelJson, InvalidModelError, parseModelJson, WEIGHTS_FILE, type ModelJson } from './tfjs-format.js';

export type VersionParam = number | 'current';

/** `:version` = a positive integer, or `current` where allowed; anything else is a 400. */
export class ParseVersionPipe implements PipeTransform<string, VersionParam> {
  constructor(private readonly allowCurrent = true) {}

  transform(value: string): VersionParam {
    if (this.allowCurrent && value === 'current') return 'current';
    if (/^[1-9][0-9]{0,9}$/.test(value) && Number(value) <= 2 ** 31 - 1) return Number(value);
    const expected = this.allowCurrent ? 'a positive integer or "current"' : 'a positive integer';
    throw new BadRequestException(`model version must be ${expected}, got "${value.slice(0, 32)}"`);
  }
}

/** What multer's memory storage hands over per file (the subset used here). */
interface UploadedPart {
  buffer: Buffer;
  size: number;
}
interface RegisterUpload {
  'model.json'?: UploadedPart[];
  'model.weights.bin'?: UploadedPart[];
}

/** The multipart fields that `model.save(tf.io.http(url))` sends. */
export const UPLOAD_FIELDS = [
  { name: 'model.json', maxCount: 1 },
  { name: 'model.weights.bin', maxCount: 1 },
];

const metricsFieldSchema = z.record(z.string().max(128), z.union([z.number(), z.string().max(1024), z.null()]));

const VERSION_PARAM = {
  name: 'version',
  description: 'Version number, or `current` for the latest version',
  schema: { oneOf: [{ type: 'integer', minimum: 1 }, { type: 'string', enum: ['current'] }] },
} as const;

/** Version numbers name immutable content; `current` moves. */
function cacheControl(requested: VersionParam): string {
  return requested === 'current' ? 'no-cache' : 'private, max-age=31536000, immutable';
}

@ApiTags('models')
@ApiBearerAuth()
@ApiResponse({ status: 401, description: 'Missing or wrong token' })
@Controller('api/models')
export class ModelsController {
  constructor(private readonly models: ModelsService) {}

  @Get()
  @UseGuards(OperatorGuard)
  @ApiOperation({ summary: 'List global model versions, newest first' })
  @ApiResponse({ status: 200, type: [ModelVersionMetaDto] })
  list(): Promise<ModelVersionMeta[]> {
    return this.models.list();
  }

  @Post()
  @UseGuards(OperatorGuard)
  @UseInterceptors(FileFieldsInterceptor(UPLOAD_FIELDS))
  @ApiOperation({
    summary: 'Register a TensorFlow.js layers model as a new global version',
    description:
      'Accepts what `model.save(tf.io.http(url, { requestInit: { headers: { Authorization: "Bearer <operator token>" } } }))` sends: ' +
      'multipart parts `model.json` and `model.weights.bin`. Weights must be float32 and finite. Optional text field `metrics`: a JSON object of numbers/strings.',
  })
  @ApiConsumes('multipart/form-data')
  @ApiBody({
    schema: {
      type: 'object',
      required: ['model.json'],
      properties: {
        'model.json': { type: 'string', format: 'binary' },
        'model.weights.bin': { type: 'string', format: 'binary' },
        metrics: { type: 'string', example: '{"note":"pre-trained offline"}' },
      },
    },
  })
  @ApiResponse({ status: 201, type: ModelVersionMetaDto, description: 'The new version' })
  @ApiResponse({ status: 400, description: 'Not a valid float32 layers model' })
  @ApiResponse({ status: 413, description: 'Upload larger than the configured limit' })
  async register(@UploadedFiles() files: RegisterUpload | undefined, @Body() body: Record<string, unknown> | undefined): Promise<ModelVersionMeta> {
    const modelJson = files?.['model.json']?.[0];
    if (!modelJson) throw new BadRequestException('multipart part "model.json" is missing (send the model with tf.io.http)');
    let parsed: ReturnType<typeof parseModelJson>;
    try {
      parsed = parseModelJson(JSON.parse(modelJson.buffer.toString('utf8')) as unknown);
    } catch (error) {
      if (error instanceof SyntaxError) throw new BadRequestException(`model.json is not valid JSON: ${error.message}`);
      if (error instanceof InvalidModelError) throw new BadRequestException(error.message);
      throw error;
    }
    const weights = files['model.weights.bin']?.[0]?.buffer ?? new Uint8Array(0);
    return this.models.register(parsed.topology, parsed.weightSpecs, weights, parseMetricsField(body?.metrics));
  }

  @Get(':version')
  @UseGuards(OperatorGuard)
  @ApiOperation({ summary: 'One version: metadata, weight specs and topology' })
  @ApiParam(VERSION_PARAM)
  @ApiResponse({ status: 200, type: ModelVersionDetailDto })
  @ApiResponse({ status: 400, description: 'Invalid version' })
  @ApiResponse({ status: 404, description: 'No such version' })
  async detail(@Param('version', new ParseVersionPipe()) requested: VersionParam): Promise<ModelVersionDetailDto> {
    const { strategyState, ...record } = await this.models.get(await this.models.resolveVersion(requested));
    return { ...record, hasStrategyState: strategyState !== null, modelUrl: `/api/models/${record.version}/model.json` };
  }

  @Get(':version/model.json')
  @UseGuards(ModelReaderGuard)
  @ApiOperation({
    summary: 'TensorFlow.js model.json of a version (client or operator token)',
    description: 'Load with `tf.loadLayersModel(url, { requestInit: { headers: { Authorization } } })`. The weights path names the concrete version.',
  })
  @ApiParam(VERSION_PARAM)
  @ApiResponse({ status: 200, type: ModelJsonDto })
  @ApiResponse({ status: 400, description: 'Invalid version' })
  @ApiResponse({ status: 404, description: 'No such version' })
  async modelJson(
    @Param('version', new ParseVersionPipe()) requested: VersionParam,
    @Res({ passthrough: true }) res: Response,
  ): Promise<ModelJson> {
    const version = await this.models.resolveVersion(requested);
    const { topology, weightSpecs } = await this.models.getModelPayload(version);
    res.setHeader('Cache-Control', cacheControl(requested));
    res.setHeader('X-Flock-Model-Version', String(version));
    return buildModelJson(version, topology, weightSpecs);
  }

  @Get(`:version/${WEIGHTS_FILE}`)
  @UseGuards(ModelReaderGuard)
  @ApiOperation({ summary: 'Raw weights of a version: float32 little-endian, in weight-spec order (client or operator token)' })
  @ApiParam(VERSION_PARAM)
  @ApiProduces('application/octet-stream')
  @ApiResponse({ status: 200, description: 'The weight bytes', schema: { type: 'string', format: 'binary' } })
  @ApiResponse({ status: 400, description: 'Invalid version' })
  @ApiResponse({ status: 404, description: 'No such version' })
  async weights(
    @Param('version', new ParseVersionPipe()) requested: VersionParam,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile> {
    const version = await this.models.resolveVersion(requested);
    const bytes = await this.models.getWeightBytes(version);
    res.setHeader('Cache-Control', cacheControl(requested));
    res.setHeader('X-Flock-Model-Version', String(version));
    return new StreamableFile(bytes, { type: 'application/octet-stream', length: bytes.byteLength });
  }

  @Post(':version/rollback')
  @UseGuards(OperatorGuard)
  @ApiOperation({
    summary: 'Make an old version current again',
    description: 'Creates a NEW version (source `rollback`) with the old version\'s weights; history is never rewritten.',
  })
  @ApiParam({ name: 'version', description: 'The version to restore', schema: { type: 'integer', minimum: 1 } })
  @ApiResponse({ status: 201, type: ModelVersionMetaDto, description: 'The new version' })
  @ApiResponse({ status: 400, description: 'Invalid version' })
  @ApiResponse({ status: 404, description: 'No such version' })
  @ApiResponse({ status: 409, description: 'The version is already the current one' })
  rollback(@Param('version', new ParseVersionPipe(false)) version: number): Promise<ModelVersionMeta> {
    return this.models.rollback(version);
  }
}

function parseMetricsField(value: unknown): ModelVersionMeta['metrics'] {
  if (value === undefined || value === '') return {};
  let json: unknown;
  try {
    json = typeof value === 'string' ? JSON.parse(value) : value;
  } catch {
    throw new BadRequestException('field "metrics" must be a JSON object');
  }
  const parsed = metricsFieldSchema.safeParse(json);
  if (!parsed.success) throw new BadRequestException(`field "metrics": ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}
