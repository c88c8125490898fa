import { BadRequestException, type PipeTransform } from '@nestjs/common';
import { z } from 'zod';
import { validationMessages } from '../contract/index.js';

/** Validates a request part with a zod schema; failures become a 400 naming the field. */
export function parseWithZod<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new BadRequestException(validationMessages(result.error));
}

/** A path parameter checked with a contract schema: `@Param('id', new ZodParamPipe(roundIdSchema))`. A failure is a 400 with the schema's message. */
export class ZodParamPipe<S extends z.ZodType> implements PipeTransform<unknown, z.output<S>> {
  constructor(private readonly schema: S) {}

  transform(value: unknown): z.output<S> {
    const result = this.schema.safeParse(value);
    if (result.success) return result.data;
    throw new BadRequestException(result.error.issues[0]?.message ?? 'invalid path parameter');
  }
}

/**
 * A contract schema as OpenAPI 3.0 (JSON Schema), so /api/docs documents exactly what is validated
 * (`input`: request bodies, with their defaults) and what is answered (`output`: responses).
 */
export function zodToOpenApi(schema: z.ZodType, io: 'input' | 'output' = 'input'): Record<string, unknown> {
  const { $schema: _ignored, ...jsonSchema } = z.toJSONSchema(schema, { io, target: 'openapi-3.0', unrepresentable: 'any' }) as Record<string, unknown>;
  return jsonSchema;
}
