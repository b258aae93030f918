import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { openSocket } from '../../api-server/src/testing/harness.ts';
import { checkHistory, type ReleaseFrame } from '../support/history.ts';
import {
  apiPods,
  ingressErrors,
  kind,
  kubectl,
  namespace,
  promQuery,
  release,
} from '../support/kind.ts';
import { binPath, repoRoot } from '../support/kube.ts';
import { raceForTheLock, summary, type Workload } from '../support/workload.ts';

const clients = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const run = promisify(execFile);

/** Release frames heard by WebSocket clients through the Ingress while `work` runs. */
async function listening<T>(count: number, work: () => Promise<T>) {
  const sockets = await Promise.all(Array.from({ length: count }, () => openSocket(kind().url)));
  try {
    const result = await work();
    const frames = sockets.flatMap((s) =>
      s.frames.filter((f) => f.type === 'released').map((f) => f as unknown as ReleaseFrame),
    );
    return { result, frames };
  } finally {
    for (const s of sockets) s.close();
  }
}

/** No request failed; else what Traefik says of its 5xx answers (which pod, how long, why). */
async function noneFailed(workload: Workload) {
  if (workload.failed.length) {
    const lines = await ingressErrors('5m').catch((error: unknown) => [
      `(kubectl logs: ${String(error)})`,
    ]);
    // A reset or a timeout on the client's side is no 5xx of Traefik's: then there are none.
    console.info(`Traefik's 5xx answers:\n${lines.join('\n') || '(none)'}`);
  }
  expect(workload.failed).toEqual([]);
}

function verdict(name: string, workload: Workload, frames: ReleaseFrame[]) {
  console.info(`${name}: ${summary(workload)}; ${frames.length} release frames heard`);
  expect(checkHistory(workload.ops, frames)).toEqual([]);
  expect(
    workload.ops.filter((o) => o.kind === 'avail' && o.outcome === 'granted').length,
  ).toBeGreaterThan(5);
}

describe(`${clients} clients racing through the Ingress across both api-server pods`, () => {
  it('keep one holder at a time and lose no edit', { timeout: 120_000 }, async () => {
    const { result, frames } = await listening(4, () =>
      raceForTheLock({ clients, durationMs: 30_000, url: () => kind().url }),
    );
    verdict('steady', result, frames);
    await noneFailed(result);
  });

  it(
    'still do while the pod holding most WebSocket clients is deleted',
    { timeout: 180_000 },
    async () => {
      const { result, frames } = await listening(20, async () => {
        // Which pod holds most of the clients, as Prometheus sees it.
        let busiest = '';
        for (let i = 0; i < 30 && !busiest; i++) {
          const series = await promQuery(
            `retrospective_websocket_connections{namespace="${namespace}"}`,
          );
          const total = series.reduce((n, s) => n + Number(s.value[1]), 0);
          if (total >= 20)
            busiest = series.sort((a, b) => Number(b.value[1]) - Number(a.value[1]))[0]!.metric
              .pod!;
          else await sleep(2000);
        }
        expect(await apiPods()).toContain(busiest);
        const racing = raceForTheLock({ clients, durationMs: 40_000, url: () => kind().url });
        await sleep(5000);
        await kubectl('delete', 'pod', '-n', namespace, busiest, '--wait=false');
        console.info(`deleted ${busiest}, which had the most WebSocket clients`);
        return racing;
      });
      verdict('pod deleted', result, frames);
      console.info(`failed requests while the pod was deleted: ${result.failed.length}`);
      await noneFailed(result);
    },
  );

  it('still do while helm upgrade rolls both Deployments', { timeout: 300_000 }, async () => {
    const { result, frames } = await listening(4, async () => {
      const racing = raceForTheLock({ clients, durationMs: 75_000, url: () => kind().url });
      await sleep(3000);
      const rolled = new Date().toISOString().replace(/[^0-9]/g, '');
      const upgrade = await run(
        binPath('helm'),
        [
          'upgrade',
          release,
          resolve(repoRoot, 'charts/retrospective'),
          '--namespace',
          namespace,
          '--values',
          resolve(repoRoot, 'hack/kind/values.yaml'),
          '--set',
          `apiServer.podAnnotations.rolled=r${rolled}`,
          '--set',
          `controller.podAnnotations.rolled=r${rolled}`,
          '--wait',
          '--timeout',
          '4m',
        ],
        { env: { ...process.env, KUBECONFIG: kind().kubeconfig } },
      );
      expect(upgrade.stdout).toMatch(/has been upgraded/);
      return racing;
    });
    for (const component of ['api-server', 'controller'])
      expect(
        await kubectl(
          'get',
          'pods',
          '-n',
          namespace,
          '-l',
          `app.kubernetes.io/component=${component}`,
          '-o',
          'jsonpath={.items[*].metadata.annotations.rolled}',
        ),
      ).toMatch(/^r\d+/);
    verdict('helm upgrade', result, frames);
    console.info(`failed requests during the rollout: ${result.failed.length}`);
    await noneFailed(result);
  });
});
