import { beforeAll, describe, expect, it } from 'vitest';
import { lockObject } from '../runtime/src/kube/lock-resource.ts';
import { createNamespace, kubectl } from './support/kube.ts';
import { applyYaml, installLockCrd, lockYaml as lock, patchLock } from './support/locks.ts';

/**
 * The CRD the chart installs, generated from the zod schemas, on a real kube-apiserver: a bad spec
 * is refused by `kubectl apply` with the field named, a good one is defaulted, and `kubectl get
 * locks` shows the columns the issue names.
 */
describe('the Lock custom resource on a real API server', () => {
  let namespace: string;
  const apply = (yaml: string) => applyYaml(namespace, yaml);

  beforeAll(async () => {
    await installLockCrd();
    namespace = await createNamespace('lockcrd');
  });

  it('accepts an empty spec and fills in every default', async () => {
    const applied = await apply(lock('team-a', "  description: the team's notes"));
    expect(applied.stderr).toBe('');
    const got = await kubectl('get', 'lock', 'team-a', '-n', namespace, '-o', 'json');
    const parsed = lockObject.parse(JSON.parse(got.stdout));
    expect(parsed.spec).toEqual({
      description: "the team's notes",
      holdTimeoutSeconds: 0,
      maxHoldSeconds: 0,
      heldTooLongSeconds: 900,
      maxContentBytes: 32768,
      waiting: { maxSeconds: 300, maxWaiters: 100, maxPerUser: 1 },
    });
  });

  it.each([
    ['a negative timeout', lock('bad', '  holdTimeoutSeconds: -1'), 'spec.holdTimeoutSeconds'],
    ['an unknown field', lock('bad', '  holdTimeout: 30'), 'spec.holdTimeout'],
    [
      'a misspelt nested field',
      lock('bad', '  waiting:\n    maxWaiter: 3'),
      'spec.waiting.maxWaiter',
    ],
    ['a string for a number', lock('bad', '  heldTooLongSeconds: soon'), 'spec.heldTooLongSeconds'],
    ['a name with a dot', lock('team.a', '  {}'), 'metadata.name'],
    ['a name with capitals', lock('TeamA', '  {}'), 'metadata.name'],
    [
      'more places per user than places',
      lock('bad', '  waiting:\n    maxWaiters: 2\n    maxPerUser: 3'),
      'spec.waiting.maxPerUser',
    ],
    [
      'content and line that would not fit in the Lease',
      lock('bad', '  maxContentBytes: 204800\n  waiting:\n    maxWaiters: 600'),
      'spec.waiting.maxWaiters',
    ],
    [
      'an idle timeout above the longest hold',
      lock('bad', '  holdTimeoutSeconds: 600\n  maxHoldSeconds: 60'),
      'spec.holdTimeoutSeconds',
    ],
  ])('refuses %s, naming the field', async (_, yaml, field) => {
    const applied = await apply(yaml);
    expect(applied.code).not.toBe(0);
    expect(applied.stderr).toContain(field);
    const left = await kubectl('get', 'locks', '-n', namespace, '-o', 'name');
    expect(left.stdout.trim().split('\n')).toEqual(['lock.retrospective.dev/team-a']);
  });

  it('shows NAME, HOLDER, SINCE, TOKEN, WAITING, READY and AGE in kubectl get locks', async () => {
    await apply(lock('team-b', '  {}'));
    const patched = await patchLock(
      namespace,
      'team-b',
      {
        status: {
          holder: 'ana',
          since: new Date().toISOString(),
          token: 7,
          waiting: 2,
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              reason: 'InStep',
              message: '',
              lastTransitionTime: new Date().toISOString(),
            },
          ],
        },
      },
      'status',
    );
    expect(patched.stderr).toBe('');
    const table = await kubectl('get', 'locks', '-n', namespace);
    const [header, ...rows] = table.stdout.trim().split('\n');
    expect(header!.split(/\s+/)).toEqual([
      'NAME',
      'HOLDER',
      'SINCE',
      'TOKEN',
      'WAITING',
      'READY',
      'AGE',
    ]);
    const row = rows.find((r) => r.startsWith('team-b'))!.split(/\s+/);
    expect(row.slice(0, 2)).toEqual(['team-b', 'ana']);
    expect(row.slice(3, 6)).toEqual(['7', '2', 'True']);
  });
});
