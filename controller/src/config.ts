import { hostname } from 'node:os';
import { commonShape, defaultNamespace, dnsLabel, int, parseEnv } from '@retrospective/runtime';
import { z } from 'zod';

export { ConfigError } from '@retrospective/runtime';

const shape = {
  ...commonShape,
  STORE: z.enum(['kubernetes']).default('kubernetes'),
  METRICS_PORT: int(1, 65535).default(8081),
  LEADER_ELECTION_ID: z.string().regex(dnsLabel).default('retrospective-controller'),
  LEADER_ELECTION_LEASE_DURATION_SECONDS: int(1, 600).default(15),
  LEADER_ELECTION_RENEW_DEADLINE_SECONDS: int(1, 600).default(10),
  LEADER_ELECTION_RETRY_PERIOD_SECONDS: int(1, 600).default(2),
  POD_NAME: z.string().min(1).max(128).optional(),
  /** The controller takes no traffic; it only needs time to finish a term and hand the Lease back. */
  DRAIN_DELAY_SECONDS: int(0, 300).default(0),
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
  return {
    ...rest,
    NAMESPACE: NAMESPACE ?? defaultNamespace(),
    IDENTITY: `${POD_NAME ?? hostname()}_${process.pid}`,
  };
}
