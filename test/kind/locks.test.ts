import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { kind, kubectl, namespace } from '../support/kind.ts';

const sh = promisify(execFile);
const curl = async (args: string) =>
  (await sh('bash', ['-c', `curl --silent --show-error --include ${args}`])).stdout;

/**
 * Declared locks on kind, through the Traefik Ingress: a `Lock` applied with kubectl is served by
 * the chart's pods, with the seed's curl workflow on /locks/<name>/; `kubectl get locks` and the
 * Lease show the hold; deleting the Lock ends it (404) and its Lease goes (the controller, and the
 * garbage collector of this real cluster).
 */
describe('a Lock declared with kubectl on kind', () => {
  it('is served through the Ingress, shows its holder, and ends with 404 when deleted', async () => {
    const base = `${kind().url}/locks/team-kind`;
    const manifest = `apiVersion: retrospective.dev/v1alpha1
kind: Lock
metadata:
  name: team-kind
  namespace: ${namespace}
spec:
  description: made by test/kind/locks.test.ts
  holdTimeoutSeconds: 0
`;
    const file = join(mkdtempSync(join(tmpdir(), 'lock-')), 'team-kind.yaml');
    writeFileSync(file, manifest);
    await kubectl('apply', '-f', file);
    await expect
      .poll(async () => (await curl(`${base}/check`)).split(' ')[1], { timeout: 15_000 })
      .toBe('200');
    expect(await curl(`${base}/avail --request GET --header 'Username:ujjwal'`)).toMatch(
      /^HTTP\/1.1 200[\s\S]*Granted to ujjwal \(token (\d+)\)/,
    );
    expect(
      await curl(
        `${base}/change --request POST --header 'Username:ujjwal' --header 'Retrospective:team notes'`,
      ),
    ).toMatch(/^HTTP\/1.1 200/);
    await expect
      .poll(async () => kubectl('get', 'locks', '-n', namespace), { timeout: 15_000 })
      .toMatch(/team-kind\s+ujjwal\s+\S+\s+\d+\s+0\s+True/);
    expect(await kubectl('get', 'lease', 'team-kind', '-n', namespace, '-o', 'yaml')).toMatch(
      /holderIdentity: ujjwal/,
    );

    await kubectl('delete', 'lock', 'team-kind', '-n', namespace);
    await expect
      .poll(async () => (await curl(`${base}/check`)).split(' ')[1], { timeout: 10_000 })
      .toBe('404');
    await expect
      .poll(
        async () =>
          (await kubectl('get', 'leases', '-n', namespace, '-o', 'name')).includes('team-kind'),
        { timeout: 30_000 },
      )
      .toBe(false);
  });

  it(
    'serves 200 Locks applied at once through the Ingress: all Ready, each taken and released, frames to their subscribers only',
    { timeout: 300_000 },
    async () => {
      const names = Array.from(
        { length: 200 },
        (_, i) => `kind-many-${String(i).padStart(3, '0')}`,
      );
      const file = join(mkdtempSync(join(tmpdir(), 'locks-')), 'many.yaml');
      writeFileSync(
        file,
        names
          .map(
            (name) =>
              `apiVersion: retrospective.dev/v1alpha1\nkind: Lock\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec: {}\n`,
          )
          .join('---\n'),
      );
      const started = Date.now();
      await kubectl('apply', '-f', file);
      const ready = async () =>
        (
          await kubectl(
            'get',
            'locks',
            '-n',
            namespace,
            '-o',
            'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
          )
        )
          .split('\n')
          .filter((line) => line.startsWith('kind-many-') && line.endsWith('=True')).length;
      await expect.poll(ready, { timeout: 120_000, interval: 2_000 }).toBe(200);
      console.info(`200 Locks Ready ${Date.now() - started} ms after kubectl apply`);

      // A WebSocket through the Ingress, subscribed to two of them.
      const frames: string[] = [];
      const ws = new WebSocket(
        `${kind().url.replace(/^http/, 'ws')}/ws?locks=kind-many-007,kind-many-150`,
      );
      await new Promise<void>((done, fail) => {
        ws.once('message', () => done());
        ws.once('error', fail);
      });
      ws.on('message', (data: Buffer) => frames.push(data.toString('utf8')));

      // Every one taken and released through the Ingress, by the seed's routes under /locks/.
      for (const name of names) {
        const base = `${kind().url}/locks/${name}`;
        const taken = await fetch(`${base}/avail`, {
          method: 'POST',
          headers: { Username: 'many' },
        });
        expect(taken.status, name).toBe(200);
        const released = await fetch(`${base}/release`, {
          method: 'POST',
          headers: { Username: 'many' },
        });
        expect(released.status, name).toBe(200);
      }
      await expect
        .poll(() => frames.filter((f) => f.includes('"type":"released"')).length, {
          timeout: 10_000,
        })
        .toBe(2);
      const locksSeen = new Set(frames.map((f) => (JSON.parse(f) as { lock?: string }).lock));
      expect([...locksSeen].sort()).toEqual(['kind-many-007', 'kind-many-150']);
      ws.close();

      await kubectl('delete', '-f', file, '--wait=false');
      await expect
        .poll(async () => (await fetch(`${kind().url}/locks/kind-many-199/check`)).status, {
          timeout: 30_000,
        })
        .toBe(404);
    },
  );
});
