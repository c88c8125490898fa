/**
 * `GET /api/predictions/{dataset}/{key}[?version=N]` answered in front of express (see
 * boundary/fast-routes.ts): a precomputed prediction is one indexed read, which Nest's middleware,
 * guard, pipes and interceptors cost several times over. Only the hit is answered here: the
 * canonical URL (plain segments, at most a version), a key the route's guard accepts (an inference
 * key or the operator token) and a stored prediction. Anything else, refusals and misses included,
 * goes on to express, which answers it exactly as before (a miss is then read twice).
 */
import type { Server } from 'node:http';
import { answer, interceptRequests } from '../boundary/fast-routes.js';
import { helmetHeaders } from '../boundary/web-hygiene.js';
import { bearerFromHeader, matchesAnyKey } from '../auth/tokens.js';
import { DATASET_NAME_PATTERN } from '../contract/index.js';
import type { PrecomputeService } from './precompute.service.js';

/** datasetNameSchema's pattern; keys of unreserved URL characters only (no percent-decoding here); a version of at most 15 digits (a safe integer). */
const LOOKUP_PATH = new RegExp(`^/api/predictions/(${DATASET_NAME_PATTERN})/([A-Za-z0-9._~-]{1,256})(?:\\?version=([1-9][0-9]{0,14}))?$`);

export interface PredictionLookupRoute {
  dataset: string;
  key: string;
  version: number | null;
}

/** Whether a request is the fast path's canonical lookup; pure. */
export function matchPredictionLookup(method: string | undefined, url: string | undefined): PredictionLookupRoute | null {
  if (method !== 'GET' || url === undefined) return null;
  const match = LOOKUP_PATH.exec(url);
  if (!match) return null;
  return { dataset: match[1]!, key: match[2]!, version: match[3] === undefined ? null : Number(match[3]) };
}

export function installPredictionFastPath(server: Server, precompute: PrecomputeService, acceptedKeys: readonly string[]): void {
  const json = [...Object.entries(helmetHeaders()).flat(), 'Content-Type', 'application/json; charset=utf-8'];
  interceptRequests(server, (req, res, pass) => {
    const route = matchPredictionLookup(req.method, req.url);
    if (route === null || !matchesAnyKey(bearerFromHeader(req.headers.authorization), acceptedKeys)) return false;
    precompute.findPrediction(route.dataset, route.key, route.version).then(
      (found) => (found ? answer(res, 200, json, JSON.stringify(found)) : pass()),
      () => pass(),
    );
    return true;
  });
}
