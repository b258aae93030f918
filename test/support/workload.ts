import type { Op } from './history.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Grants a race workload runs to: enough for 50 clients on two replicas to collide many times, so
 * a check-then-act gap shows at once (test/e2e/race-checker.test.ts proves it on a broken build).
 */
export const raceGrants = 100;

export interface WorkloadOptions {
  readonly clients: number;
  /** The workload stops at this deadline, or earlier (see `grants`, `until`). */
  readonly durationMs: number;
  /**
   * Stops once this many grants were answered: a bound by operations rather than by time, so the
   * same workload proves the same thing on a fast or a slow machine.
   */
  readonly grants?: number;
  /** Stops once this resolves (say, when the faults a test injects are over). */
  readonly until?: Promise<unknown>;
  /** The base URL for each request (a replica, or the Ingress). */
  readonly url: () => string;
  /** Extra headers on every request (e.g. a Host for an Ingress rule). */
  readonly headers?: Record<string, string>;
  /** A per-request timeout; a request that times out counts as failed. */
  readonly timeoutMs?: number;
  /** Seconds client `i` waits in line on avail (`?wait=`); 0 or absent: it polls instead. */
  readonly waitSeconds?: (client: number) => number;
  /** Told of every grant as it is answered: client `i` and whether it waited in line for it. */
  readonly onGrant?: (client: number, waited: boolean) => void;
}

export interface Workload {
  /** Every operation as its client saw it; a request that got no answer has status -1. */
  readonly ops: Op[];
  /** Requests answered with neither success nor Wait (5xx, 502s from a proxy, no answer). */
  readonly failed: Op[];
}

/** Success, or a Wait (423) or rate-limited (429) answer: the service working as designed. */
const answered = (status: number) => [200, 423, 429].includes(status);

/**
 * Sends one lock command to `base` and records it in `ops` as its client saw it (status -1 when no
 * answer came); returns the status and, for avail, the token.
 */
export async function recorded(
  ops: Op[],
  base: string,
  client: string,
  kind: Op['kind'],
  options: {
    headers?: Record<string, string>;
    extra?: Partial<Op>;
    wait?: number;
    timeoutMs?: number;
    signal?: AbortSignal;
  } = {},
): Promise<{ status: number; token: number | undefined }> {
  const { headers = {}, extra = {}, wait = 0, timeoutMs = 10_000 } = options;
  const start = performance.now();
  let status = -1;
  let body: { token?: number; status?: string } = {};
  let detail: string | undefined;
  try {
    const timeout = AbortSignal.timeout(timeoutMs + wait * 1000);
    const res = await fetch(`${base}/retrospective/${kind}${wait ? `?wait=${wait}` : ''}`, {
      method: kind === 'avail' ? 'GET' : 'POST',
      headers: { Username: client, Accept: 'application/json', ...headers },
      signal: options.signal ? AbortSignal.any([timeout, options.signal]) : timeout,
    });
    status = res.status;
    const text = await res.text();
    body = text.startsWith('{') ? (JSON.parse(text) as typeof body) : {};
    if (!answered(status)) detail = `server ${res.headers.get('server')}: ${text.slice(0, 160)}`;
  } catch (error) {
    // No answer (refused, reset, timed out): recorded with status -1.
    detail = String(error);
  }
  const op: Op = {
    client,
    kind,
    start,
    end: performance.now(),
    status,
    ...extra,
    ...(detail === undefined ? {} : { detail }),
  };
  ops.push(kind === 'avail' ? { ...op, token: body.token, outcome: body.status } : op);
  return { status, token: body.token };
}

/**
 * `clients` users racing for the seed lock until the deadline: avail, then (when granted) one to
 * three changes with If-Match and a release; a Wait is retried after a short pause. Every
 * request is recorded for checkHistory.
 */
export async function raceForTheLock(options: WorkloadOptions): Promise<Workload> {
  const { clients, durationMs, url, headers = {}, timeoutMs = 10_000, waitSeconds } = options;
  const ops: Op[] = [];
  const deadline = Date.now() + durationMs;
  let stopped = false;
  void options.until?.then(() => (stopped = true));
  let granted = 0;
  const going = () =>
    !stopped && Date.now() < deadline && (options.grants === undefined || granted < options.grants);
  const request = (
    client: string,
    kind: Op['kind'],
    extraHeaders: Record<string, string>,
    extra: Partial<Op> = {},
    wait = 0,
  ) =>
    recorded(ops, url(), client, kind, {
      headers: { ...headers, ...extraHeaders },
      extra,
      wait,
      timeoutMs,
    });

  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const client = `client-${i}`;
      const wait = waitSeconds?.(i) ?? 0;
      while (going()) {
        const grant = await request(client, 'avail', {}, {}, wait);
        if (grant.status !== 200 || grant.token === undefined) {
          // 429: over the per-user rate limit; back off as Retry-After (at least 1 s) asks.
          await sleep(grant.status === 429 ? 1000 : 5 + Math.random() * 25);
          continue;
        }
        const token = grant.token;
        granted++;
        options.onGrant?.(i, wait > 0);
        const ifMatch = { 'If-Match': String(token) };
        for (let j = 0; j < 1 + Math.floor(Math.random() * 3); j++) {
          const content = `${client} token ${token} edit ${j}`;
          await request(
            client,
            'change',
            { ...ifMatch, Retrospective: content },
            { token, content },
          );
        }
        await request(client, 'release', ifMatch, { token });
      }
    }),
  );
  return { ops, failed: ops.filter((o) => !answered(o.status)) };
}

/** A one-line summary of a workload, for the test log and the closing notes. */
export function summary({ ops, failed }: Workload): string {
  const grants = ops.filter((o) => o.kind === 'avail' && o.outcome === 'granted').length;
  const releases = ops.filter((o) => o.kind === 'release' && o.status === 200).length;
  const waits = ops.filter((o) => o.status === 423).length;
  const limited = ops.filter((o) => o.status === 429).length;
  const byStatus = new Map<number, number>();
  for (const o of failed) byStatus.set(o.status, (byStatus.get(o.status) ?? 0) + 1);
  const failures = [...byStatus].map(([s, n]) => `${n}x ${s === -1 ? 'no answer' : s}`).join(', ');
  return `${ops.length} ops: ${grants} grants, ${releases} releases, ${waits} waits, ${limited} rate-limited, ${failed.length} failed${failures ? ` (${failures})` : ''}`;
}
