import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { freePort, waitFor } from '../../hack/cluster/process.ts';
import { binPath, repoRoot } from './kube.ts';

export interface Service {
  readonly url: string;
  readonly port: number;
  /** Where /metrics is served: the admin port, or `url` for a process with only that port. */
  readonly metricsUrl: string;
  readonly child: ChildProcess;
  /** Everything the process printed, for assertions and failure messages. */
  readonly output: () => string;
  stop(): Promise<void>;
}

export interface ServiceOptions {
  port?: number;
  portVariable?: string;
  readyPath?: string;
  /** true: serve metrics on a free port of their own; a number: on that port. */
  metricsPort?: boolean | number;
}

/** Runs `node <entry>` from the build (make test builds first) and waits for `readyPath`. */
export async function startService(
  entry: string,
  env: Record<string, string>,
  options: ServiceOptions = {},
): Promise<Service> {
  // A port found free can still be taken before the process listens on it (another process of
  // the suite drew the same one): then the ports this picked are picked again.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServiceOnce(entry, env, options);
    } catch (error) {
      const chosenHere = options.port === undefined && typeof options.metricsPort !== 'number';
      if (attempt === 3 || !chosenHere || !String(error).includes('EADDRINUSE')) throw error;
    }
  }
}

async function startServiceOnce(
  entry: string,
  env: Record<string, string>,
  options: ServiceOptions,
): Promise<Service> {
  const port = options.port ?? (await freePort());
  const metricsPort =
    typeof options.metricsPort === 'number'
      ? options.metricsPort
      : options.metricsPort
        ? await freePort()
        : undefined;
  return supervise(
    entry,
    process.execPath,
    [resolve(repoRoot, entry)],
    {
      PATH: process.env.PATH,
      LOG_LEVEL: 'warn',
      // Tests stop processes at once; a drain delay would only slow them down.
      DRAIN_DELAY_SECONDS: '0',
      ...env,
      [options.portVariable ?? 'PORT']: String(port),
      ...(metricsPort ? { METRICS_PORT: String(metricsPort) } : {}),
    },
    { port, readyPath: options.readyPath ?? '/readyz', metricsPort },
  );
}

/** Runs a pinned tool from bin/ (Prometheus, Alertmanager) listening on `port`, until `readyPath` answers. */
export function startBinary(tool: string, args: string[], port: number, readyPath: string) {
  return supervise(tool, binPath(tool), args, { PATH: process.env.PATH }, { port, readyPath });
}

async function supervise(
  name: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  options: { port: number; readyPath: string; metricsPort?: number | undefined },
): Promise<Service> {
  const { port, metricsPort } = options;
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  // Never outlive the test worker, even when a test fails before it could stop us.
  const orphanGuard = () => child.kill('SIGKILL');
  process.once('exit', orphanGuard);
  const exited = new Promise<void>((done) =>
    child.once('exit', () => {
      process.off('exit', orphanGuard);
      done();
    }),
  );
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  };
  try {
    await waitFor(
      `${name} ${options.readyPath}`,
      async () => (await fetch(url + options.readyPath)).ok,
      30_000,
      child.pid,
    );
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n${output}`, { cause: error });
  }
  const metricsUrl = metricsPort ? `http://127.0.0.1:${metricsPort}` : url;
  return { url, port, metricsUrl, child, output: () => output, stop };
}

/**
 * An api-server process on the Lease backend in `namespace`, once its lock exists: ready means
 * the watch is synced, and the process (or a controller) creates a missing Lease just after.
 */
export async function startApiServer(
  kubeconfig: string,
  namespace: string,
  env: Record<string, string> = {},
  ports: { port?: number; metricsPort?: number } = {},
) {
  const service = await startService(
    'api-server/dist/main.js',
    { STORE: 'kubernetes', KUBECONFIG: kubeconfig, NAMESPACE: namespace, ...env },
    { metricsPort: ports.metricsPort ?? true, ...(ports.port ? { port: ports.port } : {}) },
  );
  // 503 is `not_provisioned` (in kubernetes auth mode an anonymous check is 401 before it looks).
  await waitFor(
    'the lock to be provisioned',
    async () => (await fetch(`${service.url}/retrospective/check`)).status !== 503,
    30_000,
    service.child.pid,
  );
  return service;
}

/** The whole service in one process on the memory store, as `make run` starts it. */
export function startStandalone(env: Record<string, string> = {}, port?: number) {
  return startService('standalone/dist/main.js', env, {
    metricsPort: true,
    ...(port ? { port } : {}),
  });
}

/** Leader election fast enough for tests: 4 s lease, 3 s renew deadline, 1 s retry. */
export const fastElection = {
  LEADER_ELECTION_LEASE_DURATION_SECONDS: '4',
  LEADER_ELECTION_RENEW_DEADLINE_SECONDS: '3',
  LEADER_ELECTION_RETRY_PERIOD_SECONDS: '1',
};

/** A controller process in `namespace`; its metrics are served at `url`. */
export function startController(
  kubeconfig: string,
  namespace: string,
  env: Record<string, string> = {},
) {
  return startService(
    'controller/dist/main.js',
    { KUBECONFIG: kubeconfig, NAMESPACE: namespace, ...fastElection, ...env },
    { portVariable: 'METRICS_PORT' },
  );
}

/** The value of one sample on a /metrics page, or undefined when it is absent. */
export async function metric(url: string, sample: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}
