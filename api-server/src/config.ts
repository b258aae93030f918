import {
  commonShape,
  defaultNamespace,
  int,
  leaseBudgetBytes,
  leaseFixedBytes,
  list,
  parseEnv,
  waiterEntryBytes,
} from '@retrospective/runtime';
import { z } from 'zod';
import { username } from './validate.js';

export { ConfigError } from '@retrospective/runtime';

const hostname = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;
const httpToken = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;

const shape = {
  ...commonShape,
  PORT: int(1, 65535).default(9090),
  /** /metrics, /healthz and /readyz, on a port of their own that no Ingress routes. */
  METRICS_PORT: int(1, 65535).default(8080),
  STORE: z.enum(['memory', 'kubernetes']).default('memory'),
  /** header: trust USERNAME_HEADER (set by an authenticating proxy); kubernetes: bearer tokens, RBAC. */
  AUTH_MODE: z.enum(['header', 'kubernetes']).default('header'),
  USERNAME_HEADER: z.string().regex(httpToken, 'must be an HTTP header name').default('Username'),
  /** Header mode: the users who may force-release another user's hold. */
  ADMIN_USERS: list(z.string().regex(username, 'must be a valid user name')).default([]),
  /** Kubernetes mode: how long TokenReview and SubjectAccessReview answers are reused. */
  AUTH_CACHE_SECONDS: int(1, 300).default(10),
  /** Kubernetes mode: audiences a token must carry (empty: the API server's own). */
  AUTH_TOKEN_AUDIENCES: list(z.string().min(1)).default([]),
  /** Mutations (avail, change, release) per user and per client address a minute; 0 = no limit. */
  RATE_LIMIT_USER_PER_MINUTE: int(0, 1_000_000).default(600),
  RATE_LIMIT_ADDRESS_PER_MINUTE: int(0, 1_000_000).default(0),
  /** Proxies in front (an Ingress controller: 1) whose X-Forwarded-For names the client address. */
  TRUSTED_PROXY_HOPS: int(0, 10).default(0),
  MAX_CONTENT_BYTES: int(1, 200 * 1024).default(32 * 1024),
  ALLOWED_ORIGINS: list(z.url()).default([]),
  /** Host names the service is reached by (besides loopback names): pages served there may use it. */
  ALLOWED_HOSTS: list(z.string().regex(hostname, 'must be a host name')).default([]),
  WS_MAX_CONNECTIONS: int(1, 100_000).default(1000),
  /**
   * Connections one replica holds open at once on its API port, WebSockets and callers waiting
   * in line included; more are closed as they arrive. Unset: WS_MAX_CONNECTIONS + 4000.
   */
  HTTP_MAX_CONNECTIONS: int(2, 1_000_000).optional(),
  WS_MAX_BUFFERED_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  WS_HEARTBEAT_SECONDS: int(1, 3600).default(30),
  HTTP_HEADERS_TIMEOUT_SECONDS: int(1, 300).default(10),
  HTTP_REQUEST_TIMEOUT_SECONDS: int(1, 600).default(30),
  /**
   * How long an idle keep-alive connection is kept. Longer than the proxies in front keep theirs
   * (Traefik 90 s, ingress-nginx 60 s, cloud load balancers 60 s): when the server closes first,
   * a proxy can reuse the connection as it closes and answer 502 (Node's default is 5 s).
   */
  HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: int(1, 3600).default(120),
  /** Requests one connection may have waiting for answers before it is closed. */
  HTTP_MAX_PIPELINED: int(1, 1000).default(32),
  /** The longest `avail?wait=` a caller may wait in line; longer asks are cut to it. */
  WAIT_MAX_SECONDS: int(0, 3600).default(300),
  /** A waiter whose replica stopped renewing its entry drops out of the line after this long. */
  WAIT_QUEUE_TTL_SECONDS: int(3, 300).default(15),
  /** Callers that may wait in one lock's line at once (bounded with MAX_CONTENT_BYTES: see below). */
  WAIT_QUEUE_MAX: int(1, 600).default(100),
  /** Places one user may take in one lock's line. */
  WAIT_QUEUE_MAX_PER_USER: int(1, 100).default(1),
  /** Kubernetes mode: token reviews (of tokens not cached) per client address a minute; 0 = no limit. */
  AUTH_REVIEWS_PER_ADDRESS_PER_MINUTE: int(0, 1_000_000).default(60),
  /** Keep serving this long after readiness turns off, while endpoints are removed. */
  DRAIN_DELAY_SECONDS: int(0, 300).default(5),
};

export { leaseBudgetBytes, leaseFixedBytes, waiterEntryBytes };

/** The Lease bytes the worst case of this configuration takes: full content, a full line. */
export const leaseBytesAtMost = (c: { MAX_CONTENT_BYTES: number; WAIT_QUEUE_MAX: number }) =>
  c.MAX_CONTENT_BYTES + c.WAIT_QUEUE_MAX * waiterEntryBytes + leaseFixedBytes;

const schema = z
  .object(shape)
  .refine((c) => c.DRAIN_DELAY_SECONDS < c.SHUTDOWN_TIMEOUT_SECONDS, {
    message: 'the drain delay must be shorter than the shutdown timeout',
    path: ['DRAIN_DELAY_SECONDS'],
  })
  .refine((c) => leaseBytesAtMost(c) <= leaseBudgetBytes, {
    message: `MAX_CONTENT_BYTES + WAIT_QUEUE_MAX x ${waiterEntryBytes} must stay under ${leaseBudgetBytes - leaseFixedBytes} bytes, or a full lock would not fit in its Lease (256 KiB of annotations); lower one of them`,
    path: ['WAIT_QUEUE_MAX'],
  })
  .refine((c) => c.LOCK_SOURCE === 'env' || c.STORE === 'kubernetes', {
    message: 'Lock objects live in Kubernetes: LOCK_SOURCE=resources needs STORE=kubernetes',
    path: ['LOCK_SOURCE'],
  })
  .refine((c) => (c.HTTP_MAX_CONNECTIONS ?? Infinity) > c.WS_MAX_CONNECTIONS, {
    message:
      'WebSocket clients hold connections too: HTTP_MAX_CONNECTIONS must be above WS_MAX_CONNECTIONS',
    path: ['HTTP_MAX_CONNECTIONS'],
  })
  .refine((c) => c.WAIT_QUEUE_MAX_PER_USER <= c.WAIT_QUEUE_MAX, {
    message: 'one user cannot have more places than the line has',
    path: ['WAIT_QUEUE_MAX_PER_USER'],
  });

export type Env = z.infer<typeof schema>;

export interface Config extends Omit<Env, 'NAMESPACE' | 'HTTP_MAX_CONNECTIONS'> {
  readonly NAMESPACE: string;
  readonly HTTP_MAX_CONNECTIONS: number;
}

/** Room for HTTP callers (keep-alive clients, waiters) beside the WebSocket clients, by default. */
export const httpConnectionsBesideWebSockets = 4000;

/** Reads and validates the environment. The only place in the api-server that looks at it. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = parseEnv(schema, env, Object.keys(shape));
  return {
    ...parsed,
    NAMESPACE: parsed.NAMESPACE ?? defaultNamespace(),
    HTTP_MAX_CONNECTIONS:
      parsed.HTTP_MAX_CONNECTIONS ?? parsed.WS_MAX_CONNECTIONS + httpConnectionsBesideWebSockets,
  };
}
