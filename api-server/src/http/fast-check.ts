import type { IncomingMessage, ServerResponse } from 'node:http';
import { isHeld, type LockService, type LockState, type LockStore } from '@retrospective/lock';
import type { Metrics } from '../metrics.js';
import { checkBody, checkText } from '../present.js';
import { answerHeaders, requestIdOf } from './respond.js';

const path = /^\/(?:retrospective|locks\/([a-z0-9-]{1,63}))\/check$/;

/**
 * `GET /…/check` answered without Express, for the callers it is made for (curl, scripts and
 * dashboards polling it): the same status, headers, body and metrics as the Express route, at
 * a fraction of the cost (docs/benchmarks.md, workload 1). Anything out of the ordinary (another
 * Accept, a query, kubernetes auth, an unknown or unprovisioned lock) goes to Express.
 */
export function fastCheck(
  service: LockService,
  store: LockStore,
  metrics: Metrics,
  clock: () => Date,
) {
  /** Per lock: the answers for one state in one second (heldSeconds changes every second). */
  const rendered = new Map<
    string,
    { state: LockState; second: number; json: Buffer; text: Buffer }
  >();
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const match = path.exec(req.url ?? '');
    if (!match) return false;
    const accept = req.headers.accept;
    const json = accept === 'application/json';
    if (!json && accept !== undefined && accept !== '*/*') return false;
    const lock = match[1] ?? 'retrospective';
    if (!service.has(lock)) return false;
    const state = store.cached(lock)?.state;
    if (!state) return false;
    const started = performance.now();
    const now = clock();
    const second = Math.floor(now.getTime() / 1000);
    let answer = rendered.get(lock);
    if (answer?.state !== state || answer.second !== second) {
      answer = {
        state,
        second,
        json: Buffer.from(JSON.stringify(checkBody(state, now, service.liveQueue(state)))),
        text: Buffer.from(checkText(state, now)),
      };
      rendered.set(lock, answer);
    }
    const body = json ? answer.json : answer.text;
    res.writeHead(200, {
      ...answerHeaders(requestIdOf(req.headers['x-request-id'])),
      'Content-Type': json ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8',
      'Content-Length': body.length,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    metrics.lockRequests.inc({
      lock,
      action: 'check',
      outcome: isHeld(state) ? 'held' : 'available',
    });
    metrics.httpDuration.observe(
      {
        route: match[1] ? '/locks/:lock/check' : '/retrospective/check',
        method: req.method,
        code: '200',
      },
      (performance.now() - started) / 1000,
    );
    return true;
  };
}
