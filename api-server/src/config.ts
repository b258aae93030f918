import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from '@retrospective/lock';
import { z } from 'zod';

export { ConfigError } from '@retrospective/lock';

const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const httpToken = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
const serviceAccountNamespace = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const list = (item: z.ZodType<string, string>) =>
  z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(z.array(item));

const schema = z.object({
  PORT: int(1, 65535).default(9090),
  HOST: z.string().min(1).default('0.0.0.0'),
  STORE: z.enum(['memory', 'kubernetes']).default('memory'),
  NAMESPACE: z.string().regex(dnsLabel, 'must be a DNS label').optional(),
  LOCKS: list(z.string().regex(dnsLabel, 'each lock name must be a DNS label'))
    .pipe(z.array(z.string()).min(1, 'name at least one lock').max(32))
    .default(['retrospective']),
  AUTH_MODE: z.enum(['header']).default('header'),
  USERNAME_HEADER: z.string().regex(httpToken, 'must be an HTTP header name').default('Username'),
  MAX_CONTENT_BYTES: int(1, 200 * 1024).default(32 * 1024),
  HOLD_TIMEOUT_SECONDS: int(0, 7 * 24 * 3600).default(0),
  HELD_TOO_LONG_SECONDS: int(1, 30 * 24 * 3600).default(900),
  HISTORY_SIZE: int(1, 500).default(50),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ALLOWED_ORIGINS: list(z.url()).default([]),
  WS_MAX_CONNECTIONS: int(1, 100_000).default(1000),
  WS_MAX_BUFFERED_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  WS_HEARTBEAT_SECONDS: int(1, 3600).default(30),
  SHUTDOWN_TIMEOUT_SECONDS: int(1, 300).default(20),
  KUBE_REQUEST_TIMEOUT_SECONDS: int(1, 120).default(5),
});

export type Env = z.infer<typeof schema>;

export interface Config extends Omit<Env, 'NAMESPACE'> {
  readonly NAMESPACE: string;
}

/** The pod's namespace when running in a cluster, else `default`. */
function defaultNamespace(): string {
  return existsSync(serviceAccountNamespace)
    ? readFileSync(serviceAccountNamespace, 'utf8').trim()
    : 'default';
}

/** Reads and validates the environment. The only place that looks at process.env. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = parseEnv(schema, env);
  return { ...parsed, NAMESPACE: parsed.NAMESPACE ?? defaultNamespace() };
}
