import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseEnv } from '@retrospective/lock';
import { z } from 'zod';

export { ConfigError } from '@retrospective/lock';

const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const serviceAccountNamespace = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const shape = {
  STORE: z.enum(['kubernetes']).default('kubernetes'),
  NAMESPACE: z.string().regex(dnsLabel, 'must be a DNS label').optional(),
  LOCKS: z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().regex(dnsLabel, 'each lock name must be a DNS label')).min(1).max(32))
    .default(['retrospective']),
  HOLD_TIMEOUT_SECONDS: int(0, 7 * 24 * 3600).default(0),
  HELD_TOO_LONG_SECONDS: int(1, 30 * 24 * 3600).default(900),
  HISTORY_SIZE: int(1, 500).default(50),
  METRICS_PORT: int(1, 65535).default(8081),
  HOST: z.string().min(1).default('0.0.0.0'),
  LEADER_ELECTION_ID: z.string().regex(dnsLabel).default('retrospective-controller'),
  LEADER_ELECTION_LEASE_DURATION_SECONDS: int(1, 600).default(15),
  LEADER_ELECTION_RENEW_DEADLINE_SECONDS: int(1, 600).default(10),
  LEADER_ELECTION_RETRY_PERIOD_SECONDS: int(1, 600).default(2),
  POD_NAME: z.string().min(1).max(128).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SHUTDOWN_TIMEOUT_SECONDS: int(1, 300).default(20),
};

const schema = z
  .object(shape)
  .refine(
    (c) => c.LEADER_ELECTION_LEASE_DURATION_SECONDS > c.LEADER_ELECTION_RENEW_DEADLINE_SECONDS,
    {
      message: 'the lease duration must be greater than the renew deadline',
      path: ['LEADER_ELECTION_LEASE_DURATION_SECONDS'],
    },
  )
  .refine(
    (c) => c.LEADER_ELECTION_RENEW_DEADLINE_SECONDS > c.LEADER_ELECTION_RETRY_PERIOD_SECONDS,
    {
      message: 'the renew deadline must be greater than the retry period',
      path: ['LEADER_ELECTION_RENEW_DEADLINE_SECONDS'],
    },
  );

export type Config = Omit<z.infer<typeof schema>, 'NAMESPACE' | 'POD_NAME'> & {
  readonly NAMESPACE: string;
  /** This process's identity in leader election. */
  readonly IDENTITY: string;
};

/** Reads and validates the environment. The only place in the controller that looks at it. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = parseEnv(schema, env, Object.keys(shape));
  const { NAMESPACE, POD_NAME, ...rest } = parsed;
  const namespace =
    NAMESPACE ??
    (existsSync(serviceAccountNamespace)
      ? readFileSync(serviceAccountNamespace, 'utf8').trim()
      : 'default');
  return { ...rest, NAMESPACE: namespace, IDENTITY: `${POD_NAME ?? hostname()}_${process.pid}` };
}
