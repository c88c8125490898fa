/**
 * The serverless handler's wire shapes: the API Gateway proxy events it is invoked with (REST APIs'
 * payload format 1.0, HTTP APIs' and function URLs' 2.0), its proxy results, and the manifest the
 * packager writes next to the model in the zip. The inference API itself is the V2 protocol of
 * serving.ts.
 * https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
 */
import { z } from 'zod';

const headerMap = z.record(z.string(), z.string()).nullish();

/** Payload format 1.0 (REST APIs): `httpMethod`, `path`, headers as sent (any case). */
export const apiGatewayV1EventSchema = z.looseObject({
  httpMethod: z.string().min(1).max(16),
  path: z.string().max(8192),
  headers: headerMap,
  multiValueHeaders: z.record(z.string(), z.array(z.string())).nullish(),
  body: z.string().nullish(),
  isBase64Encoded: z.boolean().optional(),
});
export type ApiGatewayV1Event = z.infer<typeof apiGatewayV1EventSchema>;

/** Payload format 2.0 (HTTP APIs, function URLs): `requestContext.http.method`, `rawPath`, lower-case headers. */
export const apiGatewayV2EventSchema = z.looseObject({
  version: z.literal('2.0'),
  rawPath: z.string().max(8192),
  headers: headerMap,
  requestContext: z.looseObject({ http: z.looseObject({ method: z.string().min(1).max(16) }) }),
  body: z.string().nullish(),
  isBase64Encoded: z.boolean().optional(),
});
export type ApiGatewayV2Event = z.infer<typeof apiGatewayV2EventSchema>;

/** What the handler returns to API Gateway (both payload formats accept it). */
export const apiGatewayResultSchema = z.object({
  statusCode: z.number().int().min(100).max(599),
  headers: z.record(z.string(), z.string()),
  body: z.string(),
  isBase64Encoded: z.boolean(),
});
export type ApiGatewayResult = z.infer<typeof apiGatewayResultSchema>;

/** `flock-serverless.json` at the zip's root: which model the package serves and where it came from. */
export const serverlessManifestSchema = z.object({
  modelVersion: z.number().int().min(1),
  /** Where the model was taken from: a coordinator URL, a data directory or a model.json path. */
  source: z.string(),
  packagedAt: z.iso.datetime(),
  /** Path of the model.json inside the package. */
  modelPath: z.string(),
});
export type ServerlessManifest = z.infer<typeof serverlessManifestSchema>;
