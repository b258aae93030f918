import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';

/** Raised with every problem in the environment at once, so one restart fixes them all. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

/** Validates the variables `schema` names; an empty variable counts as unset. */
export function parseEnv<T extends z.ZodObject>(schema: T, env: NodeJS.ProcessEnv): z.infer<T>;
export function parseEnv<T extends z.ZodType>(
  schema: T,
  env: NodeJS.ProcessEnv,
  keys: string[],
): z.infer<T>;
export function parseEnv(schema: z.ZodType, env: NodeJS.ProcessEnv, keys?: string[]): unknown {
  const names = keys ?? Object.keys((schema as z.ZodObject).shape);
  const known = Object.fromEntries(
    names.map((key) => [key, env[key] === '' ? undefined : env[key]]),
  );
  const parsed = schema.safeParse(known);
  if (!parsed.success)
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  return parsed.data;
}

/** Runs `load`; on a ConfigError prints every problem and exits 1, as a process entry point should. */
export function loadOrExit<T>(load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
}

export const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** A comma-separated list; blanks around items and empty items are ignored. */
export const list = (item: z.ZodType<string, string>) =>
  z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(z.array(item));

/** Variables both processes read, with the same meaning and defaults. */
export const commonShape = {
  NAMESPACE: z.string().regex(dnsLabel, 'must be a DNS label').optional(),
  LOCKS: list(z.string().regex(dnsLabel, 'each lock name must be a DNS label'))
    .pipe(z.array(z.string()).min(1, 'name at least one lock').max(32))
    .default(['retrospective']),
  /**
   * Where the locks come from: `env`, the LOCKS list (fixed while the process runs); `resources`,
   * the `Lock` objects of the namespace (kubernetes store only), declared and deleted at any time.
   */
  LOCK_SOURCE: z.enum(['env', 'resources']).default('env'),
  HOST: z.string().min(1).default('0.0.0.0'),
  KUBECONFIG: z.string().min(1).optional(),
  HOLD_TIMEOUT_SECONDS: int(0, 7 * 24 * 3600).default(0),
  HELD_TOO_LONG_SECONDS: int(1, 30 * 24 * 3600).default(900),
  HISTORY_SIZE: int(1, 500).default(50),
  KUBE_REQUEST_TIMEOUT_SECONDS: int(1, 120).default(5),
  /**
   * How long the API server keeps each watch open before ending it; the watch then resumes from
   * where it was. Below client-node's 30 s idle cut-off, so idle watches end cleanly.
   */
  KUBE_WATCH_TIMEOUT_SECONDS: int(1, 29).default(25),
  SHUTDOWN_TIMEOUT_SECONDS: int(1, 300).default(20),
  /**
   * How the waiting line is written in a lock's Lease (ADR 16): `short`, one array per waiter in
   * `retrospective.dev/line`; `objects`, every waiter in `retrospective.dev/queue`, which versions
   * before ADR 16 read (for an upgrade from one, or a rollback to one). Both are always read.
   */
  WAIT_LINE_FORM: z.enum(['short', 'objects']).default('short'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
};

const serviceAccountNamespace = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** The pod's namespace when running in a cluster, else `default`. */
export function defaultNamespace(): string {
  return existsSync(serviceAccountNamespace)
    ? readFileSync(serviceAccountNamespace, 'utf8').trim()
    : 'default';
}
