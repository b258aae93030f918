import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Registry } from 'prom-client';
import { createAdminServer, drainable, listen, stopServer } from './http.js';
import { Lifecycle } from './lifecycle.js';

const quiet = pino({ level: 'silent' });

function lifecycle(drainDelayMs: number, shutdownTimeoutMs = 5000) {
  const exits: number[] = [];
  const life = new Lifecycle({
    logger: quiet,
    drainDelayMs,
    shutdownTimeoutMs,
    exit: (code) => exits.push(code),
  });
  return { life, exits };
}

describe('the process lifecycle', () => {
  it('turns not ready at once, waits the drain delay, then runs its steps in order', async () => {
    const { life, exits } = lifecycle(150);
    let synced = false;
    const order: string[] = [];
    life
      .readiness('cache not synced', () => synced)
      .onShutdown('first', async () => {
        order.push('first');
      })
      .onShutdown('second', () => void order.push('second'));
    expect(life.ready()).toEqual({ ready: false, reason: 'cache not synced' });
    synced = true;
    expect(life.ready().ready).toBe(true);

    const started = performance.now();
    const done = life.shutdown('SIGTERM');
    expect(life.ready()).toEqual({ ready: false, reason: 'shutting down' });
    expect(order).toEqual([]);
    await done;
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(order).toEqual(['first', 'second']);
    expect(exits).toEqual([0]);
    expect(life.shutdown('again')).toBe(done);
  });

  it('runs every step even when one fails, and then exits 1', async () => {
    const { life, exits } = lifecycle(0);
    const ran: string[] = [];
    life
      .onShutdown('broken', () => {
        throw new Error('boom');
      })
      .onShutdown('after', () => void ran.push('after'));
    await life.shutdown('SIGTERM');
    expect(ran).toEqual(['after']);
    expect(exits).toEqual([1]);
  });

  it('gives a waiting step a deadline, so the steps after it still run before the hard stop', async () => {
    const { life, exits } = lifecycle(0, 2000);
    const ran: string[] = [];
    life
      .onShutdown(
        'hangs',
        (deadline) => new Promise<void>((r) => deadline.addEventListener('abort', () => r())),
      )
      .onShutdown('after', () => void ran.push('after'));
    await life.shutdown('SIGTERM');
    expect(ran).toEqual(['after']);
    expect(exits).toEqual([0]);
  });
});

describe('draining an HTTP server', () => {
  it('finishes a request in flight, refuses new connections and closes keep-alive ones', async () => {
    let draining = false;
    let finish: () => void = () => undefined;
    const server = createServer((req, res) => {
      if (req.url === '/slow') finish = () => res.end('slow done');
      else res.end('fast');
    });
    const http = drainable(server, () => draining);
    await listen(server, 0, '127.0.0.1');
    const { port } = server.address() as AddressInfo;
    const get = (path: string) =>
      new Promise<{ body: string; connection: string | undefined }>((resolve, reject) => {
        request({ port, path, host: '127.0.0.1' }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ body, connection: res.headers.connection }));
        })
          .on('error', reject)
          .end();
      });

    const slow = get('/slow');
    await expect.poll(() => http.inFlight).toBe(1);
    draining = true;
    expect((await get('/fast')).connection).toBe('close');
    const closing = http.close(AbortSignal.timeout(5000));
    await expect(get('/fast')).rejects.toThrow(/ECONNREFUSED/);
    finish();
    expect((await slow).body).toBe('slow done');
    await closing;
    expect(http.inFlight).toBe(0);
  });
});

describe('the admin server', () => {
  it('answers 500 and logs when collecting metrics fails, instead of leaving the scrape hanging', async () => {
    const logged: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => void logged.push(line) });
    const failing = {
      contentType: 'text/plain',
      metrics: () => Promise.reject(new Error('collector broke')),
    } as unknown as Registry;
    const server = createAdminServer({ registry: failing, lifecycle: lifecycle(0).life, logger });
    await listen(server, 0, '127.0.0.1');
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`);
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('collecting metrics failed\n');
    expect(logged.join('')).toMatch(/collector broke/);
    await stopServer(server);
  });
});

describe('a listening server', () => {
  it('logs a failed accept (out of file descriptors) once a minute instead of ending the process', async () => {
    const logged: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(line) });
    const server = createServer();
    await listen(server, 0, '127.0.0.1', logger);
    const emfile = () => Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' });
    // Without a listener, an 'error' event throws (in Node's accept path: the process ends).
    for (let i = 0; i < 3; i++) expect(() => server.emit('error', emfile())).not.toThrow();
    expect(logged).toHaveLength(1);
    expect(JSON.parse(logged[0]!)).toMatchObject({
      msg: 'the listening socket failed (an accept, say: out of file descriptors)',
      err: { code: 'EMFILE', message: 'accept EMFILE' },
    });
    expect(server.listening).toBe(true);
    await stopServer(server);
  });
});
