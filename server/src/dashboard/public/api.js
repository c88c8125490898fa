// @ts-check
/** The operator REST API, called with the session's token. */
import { logout, operatorToken } from './session.js';

/**
 * Operator REST call with the token; a 401 signs out.
 * @param {string} path
 * @param {RequestInit} [init]
 * @returns {Promise<{ ok: boolean, status: number, body: unknown }>}
 */
export async function api(path, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('Authorization', `Bearer ${operatorToken()}`);
  if (init.body) headers.set('Content-Type', 'application/json');
  const response = await fetch(path, { ...init, headers });
  const text = await response.text();
  /** @type {unknown} */
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // keep the text
  }
  if (response.status === 401) logout('The operator token is no longer accepted.');
  return { ok: response.ok, status: response.status, body };
}

/**
 * What to tell the operator about a failed call.
 * @param {unknown} body
 */
export function errorMessage(body) {
  if (body && typeof body === 'object' && 'message' in body) {
    const { message } = /** @type {{ message: unknown }} */ (body);
    if (Array.isArray(message)) return message.join('; ');
    if (typeof message === 'string') return message;
  }
  return typeof body === 'string' && body ? body.slice(0, 200) : 'request failed';
}

/**
 * Tells the operator about a failure nobody else caught (the network gone mid-call, say), instead of
 * an unhandled rejection in the console.
 * @param {unknown} error
 */
export function reportFailure(error) {
  alert(`The request failed: ${error instanceof Error ? error.message : String(error)}`);
}
