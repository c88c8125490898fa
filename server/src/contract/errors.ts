/** The body of every error response (Nest's HttpException format). */
import { z } from 'zod';

export const errorBodySchema = z.object({
  statusCode: z.number().int(),
  message: z.union([z.string(), z.array(z.string())]).describe('One message, or one per invalid field (validation errors)'),
  error: z.string().optional().describe('The HTTP status text'),
});
export type ErrorBody = z.infer<typeof errorBodySchema>;

/** One message per zod issue, prefixed with the field path: what a 400 lists for an invalid request. */
export function validationMessages(error: z.ZodError): string[] {
  return error.issues.map((issue) => (issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message));
}
