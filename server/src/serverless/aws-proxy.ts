/**
 * AWS Lambda behind API Gateway (REST APIs: payload format 1.0; HTTP APIs and function URLs: 2.0):
 * the proxy event checked and turned into a ServerlessRequest, the response into a proxy result.
 * Bodies arrive as text or base64 (`isBase64Encoded`, binary media types); the size limit is
 * checked on the encoded length before anything is decoded.
 */
import { apiGatewayV1EventSchema, apiGatewayV2EventSchema, validationMessages, type ApiGatewayResult } from '../contract/index.js';
import { bodyTooLarge, lowerCaseHeaders, v2ErrorResponse, type ServerlessRequest, type ServerlessResponse } from './http.js';

/** A ServerlessRequest, or the response that refuses the event (400 unreadable, 413 too large). */
export function requestFromEvent(event: unknown, maxBodyBytes: number): ServerlessRequest | ServerlessResponse {
  let method: string;
  let path: string;
  let headers: Record<string, string>;
  let body: string | null | undefined;
  let base64: boolean;
  const v2 = apiGatewayV2EventSchema.safeParse(event);
  if (v2.success) {
    ({ rawPath: path, body } = v2.data);
    method = v2.data.requestContext.http.method;
    headers = lowerCaseHeaders(v2.data.headers);
    base64 = v2.data.isBase64Encoded === true;
  } else {
    const v1 = apiGatewayV1EventSchema.safeParse(event);
    if (!v1.success) return v2ErrorResponse(400, `not an API Gateway proxy event: ${validationMessages(v1.error).slice(0, 3).join('; ')}`);
    ({ httpMethod: method, path, body } = v1.data);
    // Payload 1.0 has both; multiValueHeaders keeps repeated headers, headers the last value.
    headers = lowerCaseHeaders(v1.data.headers);
    base64 = v1.data.isBase64Encoded === true;
  }
  const text = body ?? '';
  // base64 carries 3 bytes in 4 characters; text is at least one byte per character.
  const smallest = base64 ? Math.floor((text.length * 3) / 4) - 2 : text.length;
  if (smallest > maxBodyBytes) return bodyTooLarge(maxBodyBytes);
  const bytes = base64 ? Buffer.from(text, 'base64') : Buffer.from(text, 'utf8');
  if (bytes.byteLength > maxBodyBytes) return bodyTooLarge(maxBodyBytes);
  return { method, path, headers, body: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

export function isServerlessResponse(value: ServerlessRequest | ServerlessResponse): value is ServerlessResponse {
  return 'status' in value;
}

/** The proxy result: JSON as text, the binary tensor extension's bytes as base64. */
export function resultFromResponse(response: ServerlessResponse): ApiGatewayResult {
  if (typeof response.body === 'string') return { statusCode: response.status, headers: response.headers, body: response.body, isBase64Encoded: false };
  const bytes = Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength);
  return { statusCode: response.status, headers: response.headers, body: bytes.toString('base64'), isBase64Encoded: true };
}
