/** OpenAPI shapes of the /api/models responses (documentation only; responses are plain objects). */
import { ApiProperty, ApiPropertyOptional, type ApiPropertyOptions } from '@nestjs/swagger';
import type { WeightSpec } from '@flock/client-sdk/protocol';
import type { ModelVersionMeta, ModelVersionSource } from '../storage/storage.js';

const METRICS_SCHEMA: ApiPropertyOptions = {
  type: 'object',
  additionalProperties: { oneOf: [{ type: 'number' }, { type: 'string' }], nullable: true },
  example: { testAccuracy: 0.93, testLoss: 0.22, trainExamples: 6000, backend: 'wasm' },
};

export class ModelVersionMetaDto implements ModelVersionMeta {
  @ApiProperty({ example: 7, description: 'Version number (1, 2, ...); the highest is the current global model' })
  version!: number;

  @ApiProperty({ type: 'integer', nullable: true, example: 6, description: 'The version this one was derived from' })
  parentVersion!: number | null;

  @ApiProperty({ type: 'string', nullable: true, description: 'The round that committed this version' })
  roundId!: string | null;

  @ApiProperty({ enum: ['initial', 'registered', 'round', 'rollback'] })
  source!: ModelVersionSource;

  @ApiProperty({ format: 'date-time' })
  createdAt!: string;

  @ApiProperty({ example: 199210 })
  numParameters!: number;

  @ApiProperty(METRICS_SCHEMA)
  metrics!: Record<string, number | string | null>;
}

export class WeightSpecDto implements WeightSpec {
  @ApiProperty({ example: 'hidden1/kernel' })
  name!: string;

  @ApiProperty({ type: [Number], example: [784, 200] })
  shape!: number[];

  @ApiProperty({ enum: ['float32'] })
  dtype!: 'float32';
}

export class ModelVersionDetailDto extends ModelVersionMetaDto {
  @ApiProperty({ type: [WeightSpecDto], description: 'Tensors in the order of the weight bytes' })
  weightSpecs!: WeightSpec[];

  @ApiProperty({ type: 'object', additionalProperties: true, description: 'Keras `modelTopology` of the TensorFlow.js layers format' })
  topology!: unknown;

  @ApiProperty({ description: 'Whether the version carries aggregation-strategy state (e.g. FedAdam moments)' })
  hasStrategyState!: boolean;

  @ApiProperty({ example: '/api/models/7/model.json', description: 'Load with tf.loadLayersModel(url) and an Authorization header' })
  modelUrl!: string;
}

export class ModelJsonDto {
  @ApiProperty({ enum: ['layers-model'] })
  format!: 'layers-model';

  @ApiProperty()
  generatedBy!: string;

  @ApiPropertyOptional({ type: 'string', nullable: true })
  convertedBy!: null;

  @ApiProperty({ type: 'object', additionalProperties: true })
  modelTopology!: unknown;

  @ApiProperty({ example: [{ paths: ['../7/weights.bin'], weights: [{ name: 'hidden1/kernel', shape: [784, 200], dtype: 'float32' }] }] })
  weightsManifest!: { paths: string[]; weights: WeightSpec[] }[];
}
