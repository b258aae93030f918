import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { repoRoot } from './kube.ts';

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The built CLI (make test builds first), as a script would run it: no terminal. */
export function startCli(args: readonly string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [resolve(repoRoot, 'cli/dist/main.js'), ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) =>
    child.once('close', (code) => resolve({ code, stdout, stderr })),
  );
  /** What it printed on stdout so far. */
  const output = () => stdout;
  return { child: child as ChildProcess, done, output };
}

/** Runs the CLI to its end. */
export function cli(args: readonly string[], env: Record<string, string> = {}) {
  return startCli(args, env).done;
}
