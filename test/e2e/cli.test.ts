import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Watch } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openSocket } from '../../api-server/src/testing/harness.ts';
import { waitFor } from '../../hack/cluster/process.ts';
import { cli, startCli } from '../support/cli.ts';
import {
  accountWithRole,
  adminConfig,
  cluster,
  createNamespace,
  leaseEvents,
  serviceAccountConfig,
} from '../support/kube.ts';
import {
  startApiServer,
  startController,
  startStandalone,
  type Service,
} from '../support/processes.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const scratch = () => {
  const dir = join(
    inject('scratchDir'),
    `cli-${Date.now()}-${Math.random().toString(36).slice(2)}`,
  );
  mkdirSync(dir, { recursive: true });
  return dir;
};
const check = async (url: string) =>
  (await (
    await fetch(`${url}/retrospective/check`, { headers: { Accept: 'application/json' } })
  ).json()) as { holder?: string; token: number; content: string };

/**
 * `retrospective lock`, `edit` and the hold's time-to-live on two replicas and a controller.
 */
// About 40 s: 100 runs of `retrospective lock` (a Node process each) take 30 s on two cores.
describe('the CLI on two replicas', () => {
  let namespace: string;
  let a: Service;
  let b: Service;
  let controller: Service;
  const env = { ADMIN_USERS: 'root' };

  beforeAll(async () => {
    namespace = await createNamespace('cli');
    controller = await startController(cluster().kubeconfig, namespace);
    [a, b] = await Promise.all([
      startApiServer(cluster().kubeconfig, namespace, env),
      startApiServer(cluster().kubeconfig, namespace, env),
    ]);
  });
  afterAll(async () => {
    await Promise.all([a, b, controller].map((s) => s.stop()));
  });

  it(
    'runs 100 racing commands one at a time, each with a larger token than the one before',
    { timeout: 180_000 },
    async () => {
      const dir = scratch();
      const log = join(dir, 'runs.log');
      writeFileSync(log, '');
      // Each child appends its start and end, with the fencing token it was given.
      const child = `echo "start $RETROSPECTIVE_FENCING_TOKEN $(date +%s%N)" >> ${log}; echo "end $RETROSPECTIVE_FENCING_TOKEN $(date +%s%N)" >> ${log}`;
      const racer = async (url: string, user: string) => {
        const codes: (number | null)[] = [];
        for (let i = 0; i < 50; i++) {
          const run = await cli([
            'lock',
            'retrospective',
            '--url',
            url,
            '--user',
            user,
            '--wait',
            '60s',
            '--',
            'sh',
            '-c',
            child,
          ]);
          codes.push(run.code);
          if (run.code !== 0) throw new Error(`run ${i} of ${user}: ${run.code} ${run.stderr}`);
        }
        return codes;
      };
      await Promise.all([racer(a.url, 'ana'), racer(b.url, 'bob')]);
      const lines = readFileSync(log, 'utf8').trim().split('\n');
      expect(lines).toHaveLength(200);
      let lastToken = 0;
      let lastEnd = 0n;
      for (let i = 0; i < lines.length; i += 2) {
        const [kind, token, at] = lines[i]!.split(' ');
        const [endKind, endToken, endAt] = lines[i + 1]!.split(' ');
        // Never two children at once: every start is followed by its own end.
        expect([kind, endKind, endToken], `lines ${i}-${i + 1}`).toEqual(['start', 'end', token]);
        expect(BigInt(at!)).toBeGreaterThanOrEqual(lastEnd);
        expect(Number(token)).toBeGreaterThan(lastToken);
        lastToken = Number(token);
        lastEnd = BigInt(endAt!);
      }
    },
  );

  it('frees the lock of a killed CLI within its 3 s time-to-live, says why, and refuses its token', async () => {
    const dir = scratch();
    const viewer = await openSocket(b.url, { locks: 'retrospective' });
    await viewer.next('snapshot');
    const holding = startCli([
      'lock',
      'retrospective',
      '--url',
      a.url,
      '--user',
      'ana',
      '--ttl',
      '3s',
      '--',
      'sh',
      '-c',
      `echo $$ > ${join(dir, 'pid')}; exec sleep 60`,
    ]);
    const acquired = (await viewer.next('acquired', 15_000)) as unknown as { token: number };
    await waitFor(
      'the child',
      async () => readFileSync(join(dir, 'pid'), 'utf8').length > 0,
      5000,
    ).catch(() => {});
    await sleep(1500); // a renewal or two went through
    const killedAt = Date.now();
    holding.child.kill('SIGKILL');
    const released = (await viewer.next('released', 10_000)) as unknown as {
      reason: string;
      releasedAt: string;
      token: number;
    };
    viewer.close();
    try {
      process.kill(Number(readFileSync(join(dir, 'pid'), 'utf8')), 'SIGKILL');
    } catch {
      // already gone
    }
    expect(released).toMatchObject({ reason: 'expired', token: acquired.token });
    // Expired by the controller 3 s after the last renewal it saw (renewed every second; one in
    // flight at the kill may still land), with room for a loaded machine.
    const freedMs = Date.parse(released.releasedAt) - killedAt;
    console.info(`ttl 3 s: expired ${freedMs} ms after the kill -9`);
    expect(freedMs).toBeLessThanOrEqual(5000);
    // Seen on B's watch first; A's watch brings the same release a moment later.
    await expect.poll(async () => (await check(a.url)).holder, { timeout: 2000 }).toBeUndefined();
    await waitFor(
      'a HoldExpired Event',
      async () => (await leaseEvents(namespace)).includes('HoldExpired'),
      10_000,
    );
    const late = await fetch(`${b.url}/retrospective/change`, {
      method: 'POST',
      headers: { Username: 'ana', 'If-Match': String(acquired.token), Retrospective: 'too late' },
    });
    expect(late.status).toBe(409);
  });

  it('stops the command of a hold that is forced (SIGTERM within 1 s) and exits 125', async () => {
    const dir = scratch();
    const term = join(dir, 'term');
    const ready = join(dir, 'ready');
    const holding = startCli([
      'lock',
      'retrospective',
      '--url',
      a.url,
      '--user',
      'ana',
      '--ttl',
      '30s',
      '--',
      'sh',
      '-c',
      `trap 'date +%s%N > ${term}; exit 143' TERM; touch ${ready}; sleep 60 & wait`,
    ]);
    await waitFor(
      'the command to run',
      async () => {
        try {
          readFileSync(ready);
          return true;
        } catch {
          return false;
        }
      },
      15_000,
    );
    await sleep(300); // the CLI's watch is subscribed before it starts the command; margin
    const forcedAt = Date.now();
    const forced = await fetch(`${b.url}/retrospective/release?force=true`, {
      method: 'POST',
      headers: { Username: 'root' },
    });
    expect(forced.status).toBe(200);
    const run = await holding.done;
    expect(run.code).toBe(125);
    expect(run.stderr).toMatch(/root force-released retrospective/);
    const termAt = Number(BigInt(readFileSync(term, 'utf8').trim()) / 1_000_000n);
    console.info(`SIGTERM ${termAt - forcedAt} ms after the forced release was sent`);
    // Told by the watch, not by the next renewal (10 s away with a 30 s TTL); room for a loaded
    // machine's watch, WebSocket, CLI and shell in between.
    expect(termAt - forcedAt).toBeLessThan(3000);
  });

  it('edits in one Lease write, and leaves the content alone when the editor fails', async () => {
    const dir = scratch();
    const editor = join(dir, 'editor.sh');
    writeFileSync(editor, '#!/bin/sh\nprintf "edited by the script\\n" > "$1"\n', { mode: 0o755 });
    // Every update of the Lease while the edit runs.
    const updates: { holder?: string; content?: string }[] = [];
    const watcher = await new Watch(adminConfig()).watch(
      `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
      { fieldSelector: 'metadata.name=retrospective' },
      (
        type,
        lease: {
          spec?: { holderIdentity?: string };
          metadata?: { annotations?: Record<string, string> };
        },
      ) => {
        if (type === 'MODIFIED')
          updates.push({
            holder: lease.spec?.holderIdentity ?? '',
            content: lease.metadata?.annotations?.['retrospective.dev/content'] ?? '',
          });
      },
      () => {},
    );
    await sleep(500);
    // A 30 s TTL: no renewal (every 10 s) lands among the updates counted.
    const edited = await cli(
      ['edit', 'retrospective', '--url', b.url, '--user', 'carol', '--ttl', '30s'],
      { EDITOR: editor },
    );
    expect(edited.code, edited.stderr).toBe(0);
    await waitFor('the release to be watched', async () => updates.some((u) => !u.holder), 5000);
    watcher.abort();
    // The grant, then one update that writes the content and frees the lock.
    expect(updates).toEqual([
      { holder: 'carol', content: expect.any(String) as string },
      { holder: '', content: 'edited by the script' },
    ]);
    // Replica A's watch may deliver it a moment after this test's own watch did.
    await expect
      .poll(async () => (await check(a.url)).content, { timeout: 5000 })
      .toBe('edited by the script');

    const failing = await cli(['edit', 'retrospective', '--url', a.url, '--user', 'carol'], {
      EDITOR: 'false',
    });
    expect(failing.code).toBe(1);
    expect(failing.stderr).toMatch(/nothing was written/);
    // b sees the release within its watch delay; the content stays as the script left it.
    await waitFor('b to see the release', async () => !(await check(b.url)).holder, 5000);
    expect((await check(b.url)).content).toBe('edited by the script');
  });

  it('refuses to share a hold with another client of the same user, and starts nothing', async () => {
    const dir = scratch();
    const first = startCli([
      'lock',
      'retrospective',
      '--url',
      a.url,
      '--user',
      'frank',
      '--',
      'sh',
      '-c',
      // Holds until the second client was answered (at most 60 s), however slow its start.
      `touch ${join(dir, 'first')}; i=0; while [ ! -e ${join(dir, 'go')} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`,
    ]);
    await waitFor('the first command', async () => (await check(b.url)).holder === 'frank', 15_000);
    const second = await cli([
      'lock',
      'retrospective',
      '--url',
      b.url,
      '--user',
      'frank',
      '--',
      'sh',
      '-c',
      `touch ${join(dir, 'second')}`,
    ]);
    writeFileSync(join(dir, 'go'), '');
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/frank already holds retrospective .* through another client/);
    expect((await first.done).code).toBe(0);
    expect(() => readFileSync(join(dir, 'second'))).toThrow();
  });

  it('says what to do for a lock not granted within --wait (124) and for bad flags (2)', async () => {
    const hold = await fetch(`${a.url}/retrospective/avail`, { headers: { Username: 'dan' } });
    expect(hold.status).toBe(200);
    const waited = await cli([
      'lock',
      'retrospective',
      '--url',
      b.url,
      '--user',
      'eve',
      '--wait',
      '1s',
      '--',
      'true',
    ]);
    expect(waited.code).toBe(124);
    expect(waited.stderr).toMatch(/Not granted within 1 s: .*dan/);
    await fetch(`${a.url}/retrospective/release`, { method: 'POST', headers: { Username: 'dan' } });
    const bad = await cli(['lock', 'retrospective', '--wait', 'soon', '--', 'true']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--wait takes a duration such as 30s/);
    const noCommand = await cli(['lock', 'retrospective']);
    expect(noCommand.code).toBe(2);
  });
});

/** AUTH_MODE=kubernetes: the CLI sends the token of a kubeconfig's user. */
describe('the CLI with a kubeconfig, in kubernetes auth mode', () => {
  let namespace: string;
  let api: Service;
  let kubeconfig: string;

  beforeAll(async () => {
    namespace = await createNamespace('cli-kube');
    await accountWithRole(namespace, 'dev', {
      apiGroups: ['coordination.k8s.io'],
      resources: ['leases'],
      resourceNames: ['retrospective'],
      verbs: ['get', 'hold'],
    });
    kubeconfig = join(scratch(), 'dev.kubeconfig');
    writeFileSync(kubeconfig, (await serviceAccountConfig(namespace, 'dev')).exportConfig());
    api = await startApiServer(cluster().kubeconfig, namespace, { AUTH_MODE: 'kubernetes' });
  });
  afterAll(async () => api.stop());

  it('holds the lock as the kubeconfig user and shows its state', async () => {
    const run = await cli([
      'lock',
      'retrospective',
      '--url',
      api.url,
      '--kubeconfig',
      kubeconfig,
      '--',
      'sh',
      '-c',
      'echo "$RETROSPECTIVE_HOLDER"',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(`system:serviceaccount:${namespace}:dev`);
    const status = await cli(['status', 'retrospective', '-o', 'json', '--url', api.url], {
      KUBECONFIG: kubeconfig,
    });
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ lock: 'retrospective', token: 1 });
    const anonymous = await cli(['status', '--url', api.url, '--user', 'ana']);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toMatch(/bearer token/);
  });
});

/** Against the embedded service of `make run` (header mode, the memory store). */
describe('the CLI against make run', () => {
  let service: Service;
  beforeAll(async () => {
    service = await startStandalone({ ADMIN_USERS: 'root' });
  });
  afterAll(async () => service.stop());

  it('takes, runs, releases with content, and lists history and status', async () => {
    const run = await cli([
      'lock',
      'retrospective',
      '--url',
      service.url,
      '--user',
      'ana',
      '--',
      'sh',
      '-c',
      'exit 7',
    ]);
    expect(run.code).toBe(7);
    const dir = scratch();
    const editor = join(dir, 'editor.sh');
    writeFileSync(editor, '#!/bin/sh\necho "notes" > "$1"\n', { mode: 0o755 });
    const edit = await cli(['edit', 'retrospective', '--url', service.url, '--user', 'bob'], {
      EDITOR: editor,
    });
    expect(edit.code, edit.stderr).toBe(0);
    const history = await cli(['history', 'retrospective', '--url', service.url]);
    expect(history.stdout).toMatch(
      /^TOKEN +RELEASED +BY +REASON +EDITOR +BYTES\n1 .* ana +released/m,
    );
    expect(history.stdout).toMatch(/\n2 .* bob +released +bob +5\n/);
    const status = await cli(['status', '--url', service.url]);
    expect(status.stdout).toMatch(/^NAME +HOLDER +HELD +TOKEN +WAITING\nretrospective +2 +0\n$/);
  });

  it('watches grants and releases live, and force-releases as an admin', async () => {
    const watching = startCli(['watch', 'retrospective', '-o', 'json', '--url', service.url]);
    await waitFor('the snapshot', async () => watching.output().includes('"snapshot"'), 15_000);
    const take = await fetch(`${service.url}/retrospective/avail`, {
      headers: { Username: 'gus' },
    });
    expect(take.status).toBe(200);
    const notAdmin = await cli([
      'release',
      'retrospective',
      '--force',
      '--url',
      service.url,
      '--user',
      'hal',
    ]);
    expect(notAdmin.code).toBe(1);
    expect(notAdmin.stderr).toMatch(/may not force-release/);
    const forced = await cli([
      'release',
      'retrospective',
      '--force',
      '--url',
      service.url,
      '--user',
      'root',
    ]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(/^retrospective released \(forced\) \(token \d+\)\.$/m);
    await waitFor('the release frame', async () => watching.output().includes('"released"'), 5000);
    watching.child.kill('SIGTERM');
    const watched = await watching.done;
    expect(watched.code).toBe(0);
    const frames = watched.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; holder?: string; reason?: string });
    expect(frames.map((f) => f.type)).toEqual(
      expect.arrayContaining(['snapshot', 'acquired', 'released']),
    );
    expect(frames.find((f) => f.type === 'acquired')?.holder).toBe('gus');
    expect(frames.find((f) => f.type === 'released')?.reason).toBe('forced');
  });
});
