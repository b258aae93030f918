import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSocket } from '../../api-server/src/testing/harness.ts';
import { cluster, createNamespace } from '../support/kube.ts';
import { startApiServer, type Service } from '../support/processes.ts';

/**
 * The API server ends each watch after KUBE_WATCH_TIMEOUT_SECONDS and the replica resumes it: an
 * idle period of three of those is where a change could slip between two watches. Shortened from
 * the default 25 s, so the test proves it in seconds rather than a minute.
 */
const watchTimeoutSeconds = 2;
const idleMs = 3 * watchTimeoutSeconds * 1000 + 1000;

describe('a release on replica A reaches a WebSocket client on replica B', () => {
  let a: Service;
  let b: Service;

  beforeAll(async () => {
    const namespace = await createNamespace('idle');
    const env = { KUBE_WATCH_TIMEOUT_SECONDS: String(watchTimeoutSeconds) };
    [a, b] = (await Promise.all(
      [0, 1].map(() => startApiServer(cluster().kubeconfig, namespace, env)),
    )) as [Service, Service];
  });
  afterAll(async () => Promise.all([a.stop(), b.stop()]));

  /** Takes and releases the lock on A; returns ms until B's client got the release. */
  async function releaseDelay(
    socket: Awaited<ReturnType<typeof openSocket>>,
    content: string,
  ): Promise<number> {
    const headers = { Username: 'ana' };
    expect((await fetch(`${a.url}/retrospective/avail`, { headers })).status).toBe(200);
    await fetch(`${a.url}/retrospective/change`, {
      method: 'POST',
      headers: { ...headers, Retrospective: content },
    });
    const released = socket.next('released', 10_000);
    const sent = performance.now();
    expect(
      (await fetch(`${a.url}/retrospective/release`, { method: 'POST', headers })).status,
    ).toBe(200);
    expect(await released).toMatchObject({ content, lastEditor: 'ana' });
    return performance.now() - sent;
  }

  it(
    `within 1 s, also after the Lease was idle for ${idleMs / 1000} s`,
    { timeout: idleMs + 60_000 },
    async () => {
      const socket = await openSocket(b.url);
      const warm = await releaseDelay(socket, 'warm');
      await new Promise((r) => setTimeout(r, idleMs));
      const idle = await releaseDelay(socket, 'after idle');
      console.info(
        `release seen on B after ${warm.toFixed(0)} ms (warm), ${idle.toFixed(0)} ms (after ${idleMs / 1000} s idle)`,
      );
      expect(warm).toBeLessThan(1000);
      expect(idle).toBeLessThan(1000);
      socket.close();
    },
  );
});
