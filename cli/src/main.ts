#!/usr/bin/env node
import { basename } from 'node:path';
import { RetrospectiveError } from '@retrospective/client';
import { exitCodes, lockName, outputFormat, parse, parseDuration, UsageError } from './args.js';
import { connect } from './connect.js';
import { editLocked } from './edit.js';
import { runLocked } from './lock.js';
import { history, status, watchLocks } from './show.js';
import { Exit } from './take.js';

/** As kubectl runs it (`kubectl retrospective ...`), or on its own. */
const program = basename(process.argv[1] ?? '').startsWith('kubectl-')
  ? 'kubectl retrospective'
  : 'retrospective';

const help = `Usage: ${program} <command> [flags]

Commands:
  lock NAME [--wait 5m] [--ttl 15s] [--grace 10s] -- CMD [ARGS...]
                     run CMD while holding the lock; exits with CMD's status
  edit NAME [--wait 5m] [--ttl 15s]
                     take the lock, edit the content in $EDITOR, write and release in one request
  status [NAME] [-o table|json|yaml]
                     one lock's state, or every lock you may view
  watch [NAME...] [-o json]
                     grants and releases as they happen
  history NAME [--limit N] [-o table|json|yaml]
                     the last releases of a lock
  release NAME [--force] [--if-match TOKEN]
                     release your hold (or anyone's, with --force, as an admin)

Flags of every command:
  --url URL          the service (RETROSPECTIVE_URL; default http://localhost:9090)
  --user NAME        your name, when the service runs AUTH_MODE=header (RETROSPECTIVE_USER)
  --token TOKEN      a bearer token, for AUTH_MODE=kubernetes (RETROSPECTIVE_TOKEN)
  --kubeconfig FILE, --context NAME
                     the token of a kubeconfig's user (also used when KUBECONFIG is set)

Exit codes: CMD's own status for lock; 1 refused or unreachable; 2 bad usage;
124 not granted within --wait; 125 the hold was lost and CMD stopped; 126/127 CMD cannot run.
Docs: docs/cli.md.
`;

const takeFlags = {
  wait: { type: 'string' },
  ttl: { type: 'string' },
} as const;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(help);
    return command ? exitCodes.ok : exitCodes.usage;
  }
  switch (command) {
    case 'lock': {
      const split = rest.indexOf('--');
      if (split === -1)
        throw new UsageError(
          `lock needs a command after --, e.g. ${program} lock NAME -- ./deploy.sh`,
        );
      const { values, positionals } = parse(rest.slice(0, split), {
        ...takeFlags,
        grace: { type: 'string' },
      });
      if (values.help) return usage();
      const cmd = rest.slice(split + 1);
      if (!cmd.length) throw new UsageError('lock needs a command after --.');
      const lock = lockName(positionals[0], 'lock');
      return runLocked(await connect(values), lock, cmd, {
        ...take(values),
        graceSeconds: bounded(parseDuration(values.grace ?? '10s', '--grace'), '--grace', 0, 3600),
      });
    }
    case 'edit': {
      const { values, positionals } = parse(rest, takeFlags);
      if (values.help) return usage();
      return editLocked(await connect(values), lockName(positionals[0], 'edit'), take(values));
    }
    case 'status': {
      const { values, positionals } = parse(rest, { output: { type: 'string', short: 'o' } });
      if (values.help) return usage();
      const lock = positionals[0] === undefined ? undefined : lockName(positionals[0], 'status');
      await status(await connect(values), lock, outputFormat(values.output));
      return exitCodes.ok;
    }
    case 'history': {
      const { values, positionals } = parse(rest, {
        output: { type: 'string', short: 'o' },
        limit: { type: 'string' },
      });
      if (values.help) return usage();
      const limit = values.limit === undefined ? undefined : Number(values.limit);
      if (limit !== undefined && !(Number.isInteger(limit) && limit > 0))
        throw new UsageError('--limit takes a whole number above 0.');
      const lock = lockName(positionals[0], 'history');
      await history(await connect(values), lock, outputFormat(values.output), limit);
      return exitCodes.ok;
    }
    case 'watch': {
      const { values, positionals } = parse(rest, { output: { type: 'string', short: 'o' } });
      if (values.help) return usage();
      const locks = positionals.map((name) => lockName(name, 'watch'));
      const stop = new AbortController();
      for (const name of ['SIGINT', 'SIGTERM'] as const) process.once(name, () => stop.abort());
      await watchLocks(await connect(values), locks, values.output === 'json', stop.signal);
      return exitCodes.ok;
    }
    case 'release': {
      const { values, positionals } = parse(rest, {
        force: { type: 'boolean' },
        'if-match': { type: 'string' },
      });
      if (values.help) return usage();
      const lock = lockName(positionals[0], 'release');
      const pinned = values['if-match'];
      const token = pinned === undefined ? undefined : Number(pinned);
      if (token !== undefined && !Number.isSafeInteger(token))
        throw new UsageError(
          '--if-match takes the fencing token you were granted, a whole number.',
        );
      const client = await connect(values);
      const done = await client.release(lock, {
        ...(token === undefined ? {} : { token }),
        force: values.force === true,
      });
      process.stdout.write(
        `${lock} released${done.reason === 'forced' ? ' (forced)' : ''} (token ${done.token}).\n`,
      );
      return exitCodes.ok;
    }
    default:
      throw new UsageError(`"${command}" is not a command; see ${program} --help.`);
  }
}

function usage(): number {
  process.stdout.write(help);
  return exitCodes.ok;
}

/**
 * --wait and --ttl in seconds. --ttl is 15 s by default (a killed client frees the lock soon)
 * and at least 3 s: renewals go a third of it apart, and at least 1.1 s (the service does not
 * write renewals closer than a second).
 */
function take(values: { wait?: string | undefined; ttl?: string | undefined }) {
  const waitSeconds = Math.ceil(
    bounded(parseDuration(values.wait ?? '0', '--wait'), '--wait', 0, 7 * 86_400),
  );
  const ttlSeconds = Math.ceil(
    bounded(parseDuration(values.ttl ?? '15s', '--ttl'), '--ttl', 3, 7 * 86_400),
  );
  return { waitSeconds, ttlSeconds };
}

/** A duration within [min, max] seconds, or a usage error that names the bounds. */
function bounded(seconds: number, flag: string, min: number, max: number): number {
  if (seconds < min || seconds > max)
    throw new UsageError(`${flag} must be between ${min}s and ${max}s.`);
  return seconds;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`${program}: ${error.message}\n`);
      process.exitCode = exitCodes.usage;
    } else if (error instanceof Exit) {
      process.stderr.write(`${program}: ${error.message}\n`);
      process.exitCode = error.code;
    } else if (error instanceof RetrospectiveError) {
      process.stderr.write(`${program}: ${error.message}${hint(error)}\n`);
      process.exitCode = exitCodes.failed;
    } else {
      process.stderr.write(`${program}: ${(error as Error).message}\n`);
      process.exitCode = exitCodes.failed;
    }
  },
);

/** What to do next, for the refusals a first-time user meets. */
function hint(error: RetrospectiveError): string {
  if (error.code === 'unauthorized' || error.status === 401)
    return ' The service wants a bearer token: use --token, RETROSPECTIVE_TOKEN, or --kubeconfig/--context.';
  if (error.code === 'missing_username')
    return ' The service runs AUTH_MODE=header: use --user NAME or RETROSPECTIVE_USER.';
  return '';
}
