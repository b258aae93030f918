import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../support/kube.ts';

/** Runs a script on the built runtime and returns its exit code and output. */
function run(script: string): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code, output });
    });
  });
}

const runtime = resolve(repoRoot, 'runtime/dist/index.js');

describe('a process on the runtime layer', () => {
  it('logs a promise rejected with no handler, with its error, then shuts down in order and exits 1', async () => {
    const { code, output } = await run(`
      import { Lifecycle, createLogger } from ${JSON.stringify(runtime)};
      const logger = createLogger('test', 'info');
      new Lifecycle({ logger, shutdownTimeoutMs: 3000, drainDelayMs: 0 })
        .install()
        .onShutdown('last step', () => logger.info('the last step ran'));
      setInterval(() => undefined, 1000); // a live process, as a server is
      setTimeout(() => void Promise.reject(new Error('boom in a timer')), 50);
    `);
    expect(code).toBe(1);
    expect(output).toMatch(/"msg":"unhandled promise rejection; shutting down"/);
    expect(output).toMatch(/boom in a timer/);
    expect(output).toMatch(/the last step ran/);
  });
});
