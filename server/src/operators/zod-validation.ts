import { BadRequestException } from '@nestjs/common';
import { z } from 'zod';

/** Validates a request part with a zod schema; failures become a 400 naming the field. */
export function parseWithZod<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const messages = result.error.issues.map((issue) => (issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message));
  throw new BadRequestException(messages);
}

/** The request schema as OpenAPI (JSON Schema), so /api/docs documents exactly what is validated. */
export function zodToOpenApi(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...jsonSchema } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return jsonSchema;
}
