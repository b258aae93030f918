import { describe, expect, it } from 'vitest';
import { kind, kubectl, namespace, release } from '../support/kind.ts';

const leaderLease = `${release}-controller-leader`;
// hack/kind/values.yaml: leaseDurationSeconds 6, retryPeriodSeconds 1; holdTimeoutSeconds 45.
const takeoverBoundMs = 6000 + 1000;
const holdTimeoutMs = 45_000;

const leader = async () =>
  (
    await kubectl(
      'get',
      'lease',
      leaderLease,
      '-n',
      namespace,
      '-o',
      'jsonpath={.spec.holderIdentity}',
    )
  ).trim();
const call = (verb: string, user: string, content?: string) =>
  fetch(`${kind().url}/retrospective/${verb}`, {
    method: verb === 'avail' || verb === 'check' ? 'GET' : 'POST',
    headers: {
      Username: user,
      Accept: 'application/json',
      ...(content === undefined ? {} : { Retrospective: content }),
    },
  });

describe('the leader-elected controller on kind', () => {
  it(
    'hands over within lease duration + retry period when the leading pod is deleted, and an idle hold still expires',
    { timeout: 150_000 },
    async () => {
      const before = await leader();
      expect(before).toMatch(/_\d+$/);
      const pod = before.replace(/_\d+$/, '');
      const deleted = performance.now();
      await kubectl('delete', 'pod', '-n', namespace, pod, '--wait=false');
      await expect
        .poll(async () => (await leader()).replace(/_\d+$/, ''), {
          timeout: takeoverBoundMs + 5000,
          interval: 100,
        })
        .not.toMatch(new RegExp(`^(${pod})?$`));
      const takeover = performance.now() - deleted;
      console.info(
        `${await leader()} leads ${takeover.toFixed(0)} ms after ${pod} was deleted (bound ${takeoverBoundMs} ms)`,
      );
      expect(takeover).toBeLessThan(takeoverBoundMs + 1000);

      // The new leader expires an idle hold.
      const check = async () => {
        const res = await call('check', 'x');
        expect(res.status).toBe(200);
        return (await res.json()) as {
          holder?: string;
          token: number;
          releaseReason?: string;
          releasedBy?: string;
        };
      };
      await expect.poll(async () => (await check()).holder, { timeout: 60_000 }).toBeUndefined();
      const grant = await call('avail', 'idler');
      expect(grant.status).toBe(200);
      const { token } = (await grant.json()) as { token: number };
      const held = performance.now();
      // Released (by anyone, for any reason) once the lock is available at the idler's token.
      await expect
        .poll(
          async () => {
            const state = await check();
            return state.holder === undefined && state.token === token;
          },
          { timeout: holdTimeoutMs + 20_000, interval: 500 },
        )
        .toBe(true);
      expect(await check()).toMatchObject({
        releaseReason: 'expired',
        releasedBy: 'retrospective-controller',
      });
      console.info(
        `idle hold expired after ${((performance.now() - held) / 1000).toFixed(1)} s (timeout ${holdTimeoutMs / 1000} s)`,
      );
      expect(performance.now() - held).toBeGreaterThanOrEqual(holdTimeoutMs - 1000);
      // Its holder can no longer change the content.
      expect((await call('change', 'idler', 'too late')).status).toBe(409);
    },
  );
});
