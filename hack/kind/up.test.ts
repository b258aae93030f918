import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { clusterConfig, stepLine } from './up.ts';

describe('the kind cluster config', () => {
  it('publishes the ingress NodePort on loopback only, and carries the cgroup v1 and image-tag patches', () => {
    const config = parse(clusterConfig(19080)) as {
      networking: { disableDefaultCNI: boolean };
      nodes: {
        role: string;
        extraPortMappings: { containerPort: number; hostPort: number; listenAddress: string }[];
      }[];
      kubeadmConfigPatches: string[];
    };
    expect(config.networking.disableDefaultCNI).toBe(true);
    expect(config.nodes).toHaveLength(1);
    expect(config.nodes[0]!.extraPortMappings).toEqual([
      { containerPort: 30080, hostPort: 19080, listenAddress: '127.0.0.1', protocol: 'TCP' },
    ]);
    const patches = config.kubeadmConfigPatches.map((p) => parse(p) as Record<string, unknown>);
    expect(patches).toContainEqual({ kind: 'KubeletConfiguration', failCgroupV1: false });
    expect(patches).toContainEqual({
      kind: 'ClusterConfiguration',
      etcd: { local: { imageTag: expect.stringMatching(/^\d+\.\d+\.\d+-0$/) as unknown } },
      dns: { imageTag: expect.stringMatching(/^v\d+\.\d+\.\d+$/) as unknown },
    });
    expect(clusterConfig(1)).not.toContain('${');
  });
});

describe('the progress of make kind-up', () => {
  it('numbers each step and says how long it took', () => {
    expect(stepLine(3, 11, 'node image')).toBe('[3/11] node image ...');
    expect(stepLine(3, 11, 'node image', 41.6)).toBe('[3/11] node image: done in 42 s');
  });
});
