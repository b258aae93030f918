import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * The first port the kernel hands out for outgoing connections (and for a listen on port 0):
 * a port below it is never taken by a connection between our check and the listen.
 */
function ephemeralLow(): number {
  try {
    const low = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
    );
    return Number.isInteger(low) && low > 2048 ? low : 32768;
  } catch {
    return 32768;
  }
}

function listensOn(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A free TCP port on loopback, released before use. Drawn at random below the ephemeral range:
 * a port from the kernel (listen on 0) can be taken, before the process that is to listen on it
 * starts, by any process's outgoing connection, and the suite makes thousands of them.
 */
export async function freePort(): Promise<number> {
  const low = 10_000;
  const high = ephemeralLow();
  for (let attempt = 0; attempt < 50 && high > low; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await listensOn(port)) return port;
  }
  throw new Error(`no free port on 127.0.0.1 between ${low} and ${high} in 50 tries`);
}

/** Starts a process that outlives this one, its output appended to `logFile`. */
export function daemon(command: string, args: string[], logFile: string): number {
  const log = openSync(logFile, 'a');
  const child = spawn(command, args, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  return child.pid;
}

export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends SIGTERM, then SIGKILL if the process is still there after `graceMs`. */
export async function terminate(pid: number | undefined, graceMs = 5000): Promise<void> {
  if (pid === undefined || !alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let waited = 0; waited < graceMs && alive(pid); waited += 50) await sleep(50);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  for (let waited = 0; waited < 2000 && alive(pid); waited += 50) await sleep(50);
}

/** Polls `probe` until it returns true; fails after `timeoutMs`, or at once when `pid` has exited. */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  pid?: number,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    if (pid !== undefined && !alive(pid)) throw new Error(`${what}: the process exited`);
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
