import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMetrics } from '../metrics.js';
import { clientErrorListener } from './connections.js';

/** A socket as the listener sees it: what was written to it, and how many bytes it has read. */
function fakeSocket(bytesRead: number) {
  const socket = Object.assign(new PassThrough(), { bytesRead });
  let written = '';
  socket.on('data', (d: Buffer) => (written += d.toString()));
  return { socket, written: () => written };
}

const error = (code: string) => Object.assign(new Error(code), { code });

async function dropped(metrics: ReturnType<typeof createMetrics>, reason: string) {
  const { values } = await metrics.httpDropped.get();
  return values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

describe('the clientError listener', () => {
  afterEach(() => vi.useRealTimers());

  it('keeps a connection that timed out before sending a byte, then closes it without an answer', async () => {
    vi.useFakeTimers();
    const metrics = createMetrics({ locks: [] });
    const { socket, written } = fakeSocket(0);
    clientErrorListener(5000, metrics)(error('ERR_HTTP_REQUEST_TIMEOUT'), socket);
    vi.advanceTimersByTime(4999);
    expect(socket.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(socket.destroyed).toBe(true);
    expect(written()).toBe('');
    expect(await dropped(metrics, 'never_used')).toBe(1);
  });

  it('leaves a spare alone once a request began on it, and forgets one that closed', async () => {
    vi.useFakeTimers();
    const metrics = createMetrics({ locks: [] });
    const used = fakeSocket(0);
    clientErrorListener(5000, metrics)(error('ERR_HTTP_REQUEST_TIMEOUT'), used.socket);
    used.socket.bytesRead = 42;
    vi.advanceTimersByTime(5000);
    expect(used.socket.destroyed).toBe(false);
    const gone = fakeSocket(0);
    clientErrorListener(5000, metrics)(error('ERR_HTTP_REQUEST_TIMEOUT'), gone.socket);
    const closed = new Promise((resolve) => gone.socket.once('close', resolve));
    gone.socket.destroy();
    await closed;
    // The closed socket's timer is cleared: nothing holds on to it until the time is up.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('answers 408 to a request that began and did not finish in time', async () => {
    const metrics = createMetrics({ locks: [] });
    const { socket, written } = fakeSocket(25);
    clientErrorListener(5000, metrics)(error('ERR_HTTP_REQUEST_TIMEOUT'), socket);
    await new Promise((r) => setImmediate(r));
    expect(written()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(await dropped(metrics, 'request_timeout')).toBe(1);
  });

  it('answers a parser refusal 400, and closes on a socket error without a word', async () => {
    const metrics = createMetrics({ locks: [] });
    const refused = fakeSocket(10);
    clientErrorListener(5000, metrics)(error('HPE_INVALID_METHOD'), refused.socket);
    const reset = fakeSocket(10);
    clientErrorListener(5000, metrics)(error('ECONNRESET'), reset.socket);
    await new Promise((r) => setImmediate(r));
    expect(refused.written()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(reset.written()).toBe('');
    expect(reset.socket.destroyed).toBe(true);
    expect(await dropped(metrics, 'malformed')).toBe(1);
  });
});
