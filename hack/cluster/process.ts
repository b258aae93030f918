import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The ports the kernel hands out for outgoing connections (and for a listen on port 0). */
export function ephemeralRange(): readonly [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low !== undefined && high !== undefined && Number.isInteger(low) && low <= high)
      return [low, high];
  } catch {
    // Not Linux, or no /proc: Linux's default.
  }
  return [32768, 60999];
}

/**
 * Where freePort draws from: the larger stretch outside the ephemeral range, of unprivileged
 * ports from 10000 (below it live well-known services and the kind cluster's 9080); undefined
 * when neither stretch has a thousand ports.
 */
export function portStretch([low, high]: readonly [number, number]): [number, number] | undefined {
  const below: [number, number] = [10_000, low - 1];
  const above: [number, number] = [Math.max(10_000, high + 1), 65_535];
  const size = ([from, to]: [number, number]) => to - from + 1;
  const best = size(below) >= size(above) ? below : above;
  return size(best) >= 1000 ? best : undefined;
}

function listensOn(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        resolve(typeof address === 'object' && address ? address.port : undefined),
      );
    });
  });
}

/** Ports this process handed out lately: none is handed out twice while its process starts. */
const handedOut = new Map<number, number>();
const reuseAfterMs = 120_000;

/**
 * A free TCP port on loopback, released before use. Drawn at random outside the ephemeral range:
 * a port from the kernel (listen on 0) can be taken, before the process that is to listen on it
 * starts, by any process's outgoing connection, and the suite makes thousands of them. (Where the
 * range leaves no room outside it, the kernel picks.)
 */
export async function freePort(): Promise<number> {
  const now = performance.now();
  for (const [port, at] of handedOut) if (now - at > reuseAfterMs) handedOut.delete(port);
  const stretch = portStretch(ephemeralRange());
  for (let attempt = 0; attempt < 50; attempt++) {
    const wanted = stretch
      ? stretch[0] + Math.floor(Math.random() * (stretch[1] - stretch[0] + 1))
      : 0;
    if (handedOut.has(wanted)) continue;
    const port = await listensOn(wanted);
    if (port === undefined || handedOut.has(port)) continue;
    handedOut.set(port, now);
    return port;
  }
  throw new Error('no free port on 127.0.0.1 in 50 tries');
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
