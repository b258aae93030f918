import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ephemeralRange, freePort, portStretch } from './process.ts';

describe('freePort', () => {
  it('hands out distinct ports outside the ephemeral range, where one can listen', async () => {
    const [low, high] = ephemeralRange();
    const ports: number[] = [];
    for (let i = 0; i < 40; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port >= low && port <= high).toBe(false);
    }
    const server = createServer();
    await new Promise<void>((done) => server.listen(ports[0], '127.0.0.1', done));
    await new Promise((done) => server.close(done));
  });

  it('draws from the larger stretch outside the range, or lets the kernel pick', () => {
    expect(portStretch([32768, 60999])).toEqual([10_000, 32767]);
    expect(portStretch([10000, 65535])).toBeUndefined();
    expect(portStretch([4000, 50000])).toEqual([50001, 65535]);
    expect(portStretch([1024, 65000])).toBeUndefined();
    expect(portStretch([40000, 45000])).toEqual([10_000, 39999]);
  });
});
