import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { expect, inject } from 'vitest';
import { chartPath, get, helm, one, render, type Manifest } from './helm.ts';
import { cluster, serviceAccountConfig } from './kube.ts';
import { startService, type Service } from './processes.ts';

/** The container env of a rendered Deployment, with the downward API resolved as the kubelet would. */
function chartEnv(deployment: Manifest, namespace: string): Record<string, string> {
  type Env = { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } };
  const env = get(deployment, 'spec.template.spec.containers.0.env') as Env[];
  const field: Record<string, string> = {
    'metadata.namespace': namespace,
    'metadata.name': `${deployment.metadata.name}-0`,
  };
  return Object.fromEntries(
    env.map((e) => [e.name, e.value ?? field[e.valueFrom?.fieldRef?.fieldPath ?? ''] ?? '']),
  );
}

/** A kubeconfig file for `kc`, for a process to load. */
function kubeconfigFile(kc: KubeConfig, name: string): string {
  const dir = join(inject('scratchDir'), 'chart-processes');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.kubeconfig`);
  writeFileSync(path, kc.exportConfig(), { mode: 0o600 });
  return path;
}

export interface ChartProcesses {
  readonly api: Service;
  readonly controller: Service;
  /** The chart ServiceAccounts' credentials the processes run on. */
  readonly creds: Record<'api' | 'controller', KubeConfig>;
  readonly names: Record<'api' | 'controller', string>;
  stop(): Promise<void>;
}

/**
 * `helm install`s the chart into `namespace`, then runs the api-server and the controller out of
 * cluster on tokens of the chart's own ServiceAccounts, configured by the chart's own env: so the
 * chart's RBAC and settings are what a test exercises.
 */
export async function installAndRun(
  namespace: string,
  release: string,
  values: Record<string, string>,
): Promise<ChartProcesses> {
  const flags = Object.entries(values).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  const installed = await helm(
    ['install', release, chartPath, '-n', namespace, ...flags],
    cluster().kubeconfig,
  );
  expect(installed.code, installed.stderr).toBe(0);
  return runChartProcesses(namespace, release, values);
}

/** Runs both processes as the installed release `release` configures them (see installAndRun). */
export async function runChartProcesses(
  namespace: string,
  release: string,
  values: Record<string, string>,
): Promise<ChartProcesses> {
  const names = {
    api: `${release}-retrospective-api-server`,
    controller: `${release}-retrospective-controller`,
  };
  const creds = {
    api: await serviceAccountConfig(namespace, names.api),
    controller: await serviceAccountConfig(namespace, names.controller),
  };
  const manifests = await render(values, { namespace, release });
  const controller = await startService(
    'controller/dist/main.js',
    {
      ...chartEnv(one(manifests, 'Deployment', names.controller), namespace),
      KUBECONFIG: kubeconfigFile(creds.controller, `${namespace}-controller`),
    },
    { portVariable: 'METRICS_PORT' },
  );
  const api = await startService(
    'api-server/dist/main.js',
    {
      ...chartEnv(one(manifests, 'Deployment', names.api), namespace),
      KUBECONFIG: kubeconfigFile(creds.api, `${namespace}-api-server`),
    },
    { metricsPort: true },
  );
  return {
    api,
    controller,
    creds,
    names,
    stop: async () => {
      await api.stop();
      await controller.stop();
    },
  };
}
