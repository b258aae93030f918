import type { z } from 'zod';

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
