import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Exit codes of the CLI itself; `lock` otherwise exits with its command's own status. */
export const exitCodes = {
  ok: 0,
  /** The service refused or could not be reached, or an editor failed. */
  failed: 1,
  /** A flag, argument or duration the CLI does not understand. */
  usage: 2,
  /** `lock`, `edit`: not granted within --wait. */
  notGranted: 124,
  /** `lock`, `edit`: the hold was lost (expired, forced, lock deleted); the command was stopped. */
  lost: 125,
  /** `lock`: the command was found but could not be run. */
  cannotRun: 126,
  /** `lock`: the command was not found. */
  notFound: 127,
} as const;

/** A mistake in how the CLI was called: said in one sentence, exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/**
 * A duration as `30s`, `5m`, `1h30m`, `500ms`, or a whole number of seconds; in seconds. Strict:
 * `5 minutes`, `1d` or `-3s` are refused rather than guessed.
 */
export function parseDuration(text: string, flag: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (!parts.length || parts.map((p) => p[0]).join('') !== text)
    throw new UsageError(`${flag} takes a duration such as 30s, 5m or 1h30m, not "${text}".`);
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * (units[unit ?? ''] ?? 0), 0);
}

/** Options every command takes: where the service is and who you are. */
export const globalOptions = {
  url: { type: 'string' },
  user: { type: 'string' },
  token: { type: 'string' },
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** Parses a command's arguments (strict: an unknown flag is a usage error, said plainly). */
export function parse<O extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: O,
) {
  try {
    return parseArgs({
      args,
      options: { ...globalOptions, ...options },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0] ?? 'Bad arguments.');
  }
}

/** `-o table|json|yaml`. */
export function outputFormat(value: string | undefined): 'table' | 'json' | 'yaml' {
  const format = value ?? 'table';
  if (format === 'table' || format === 'json' || format === 'yaml') return format;
  throw new UsageError(`-o takes table, json or yaml, not "${format}".`);
}

/** A lock name as the service accepts it (a DNS label). */
export function lockName(name: string | undefined, command: string): string {
  if (!name)
    throw new UsageError(
      `${command} needs a lock name, e.g. retrospective ${command} retrospective.`,
    );
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name))
    throw new UsageError(
      `"${name}" is not a lock name: lowercase letters, digits and dashes, at most 63.`,
    );
  return name;
}
