import { describe, expect, it } from 'vitest';
import { kubectl, namespace } from '../support/kind.ts';

interface Pod {
  metadata: { name: string; labels: Record<string, string> };
  spec: {
    securityContext: { runAsNonRoot?: boolean; runAsUser?: number };
    containers: {
      securityContext: {
        readOnlyRootFilesystem?: boolean;
        runAsNonRoot?: boolean;
        allowPrivilegeEscalation?: boolean;
      };
    }[];
  };
  status: { phase: string; containerStatuses: { ready: boolean }[] };
}

describe('the pods on kind', () => {
  it('run as non-root on read-only root filesystems, in a namespace enforcing the restricted standard', async () => {
    const labels = JSON.parse(
      await kubectl('get', 'namespace', namespace, '-o', 'jsonpath={.metadata.labels}'),
    ) as Record<string, string>;
    expect(labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
    const pods = (
      JSON.parse(await kubectl('get', 'pods', '-n', namespace, '-o', 'json')) as { items: Pod[] }
    ).items.filter(
      (p) =>
        p.metadata.labels['app.kubernetes.io/name'] === 'retrospective' &&
        p.status.phase === 'Running',
    );
    expect(pods.length).toBeGreaterThanOrEqual(4);
    for (const pod of pods) {
      expect(pod.spec.securityContext, pod.metadata.name).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 65532,
      });
      for (const c of pod.spec.containers)
        expect(c.securityContext, pod.metadata.name).toMatchObject({
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
        });
      expect(
        pod.status.containerStatuses.every((s) => s.ready),
        pod.metadata.name,
      ).toBe(true);
    }
  });

  it("carry the chart's NetworkPolicies (kind's ptp CNI does not enforce them; the other tests show they let the Ingress and Prometheus through)", async () => {
    const policies = (
      await kubectl(
        'get',
        'networkpolicy',
        '-n',
        namespace,
        '-o',
        'jsonpath={.items[*].metadata.name}',
      )
    ).split(' ');
    expect(policies.sort()).toEqual(['retrospective-api-server', 'retrospective-controller']);
  });
});
