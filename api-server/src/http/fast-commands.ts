import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import { answerHeaders, requestIdOf, send } from './respond.js';
import type { CommandRunner } from './routes.js';

const path = /^\/(?:retrospective|locks\/([a-z0-9-]{1,63}))\/(avail|release)(?:\?(.*))?$/;
/** The query keys the two verbs read, each with a value the readers can judge (else Express). */
const param = /^(wait|ttl|force)=([a-z0-9]{1,7})$/;

/** `wait=60&ttl=30` as an object, or undefined for anything else (Express then parses it). */
function simpleQuery(search: string | undefined): Record<string, string> | undefined {
  const query: Record<string, string> = {};
  if (!search) return query;
  for (const pair of search.split('&')) {
    const match = param.exec(pair);
    if (!match?.[1] || match[2] === undefined || match[1] in query) return undefined;
    query[match[1]] = match[2];
  }
  return query;
}

/**
 * `avail` and `release` without Express, for the requests that take and hand on a lock many times
 * a second (scripts, the CLI, a waiting line): Express's routing and res.send cost about as much
 * as the rest of the request. They run through the same `CommandRunner` as the Express routes (the
 * same pipeline, readers and answer), with the same headers and metrics. Anything out of the
 * ordinary goes to Express: a body (or an encoding) or content to write, another Accept or
 * method, a query with other keys, repeated ones or odd values, a path Express would decode or
 * fold.
 */
export function fastCommands(run: CommandRunner, metrics: Metrics, logger: Logger) {
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const match = path.exec(req.url ?? '');
    if (!match) return false;
    const verb = match[2] === 'avail' ? 'avail' : 'release';
    if (req.method !== 'POST' && (verb === 'release' || req.method !== 'GET')) return false;
    const { headers } = req;
    const accept = headers.accept;
    const json = accept === 'application/json';
    if (!json && accept !== undefined && accept !== '*/*') return false;
    const length = headers['content-length'];
    if ((length !== undefined && length !== '0') || headers['transfer-encoding'] !== undefined)
      return false;
    // Express refuses an encoded body, even an empty one (415).
    if (headers['content-encoding'] !== undefined) return false;
    if (headers.retrospective !== undefined) return false;
    const query = simpleQuery(match[3]);
    if (!query) return false;

    const started = performance.now();
    const requestId = requestIdOf(headers['x-request-id']);
    for (const [name, value] of Object.entries(answerHeaders(requestId)))
      res.setHeader(name, value);
    const route = match[1] ? `/locks/:lock/${verb}` : `/retrospective/${verb}`;
    res.once('finish', () =>
      metrics.httpDuration.observe(
        { route, method: req.method ?? '', code: String(res.statusCode) },
        (performance.now() - started) / 1000,
      ),
    );
    const lock = match[1] ?? 'retrospective';
    run(req, res, { verb, lock, query, requestId, json: () => json }).catch((error: unknown) => {
      logger.error({ err: error, path: req.url?.split('?')[0], requestId }, 'request failed');
      if (!res.headersSent) {
        const message = 'Internal error.';
        send(res, 500, json, { lock, error: 'internal', message }, message);
      } else res.destroy();
    });
    return true;
  };
}
