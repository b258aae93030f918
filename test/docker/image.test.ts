import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../hack/cluster/process.ts';
import { docker, tryDocker } from '../support/docker.ts';

/**
 * The image `make image` built with no registry: it starts as a non-root user with a read-only
 * root filesystem and answers the seed's check on a published loopback port.
 */
const image = process.env.IMAGE ?? 'retrospective:0.1.0';
const network = `retrospective-image-${process.pid}`;
const sh = promisify(execFile);
const started: string[] = [];

/** Starts a container from the image, read-only, publishing 9090 on a loopback port. */
async function start(name: string, args: string[]) {
  const id = await docker(
    'run',
    '--detach',
    '--name',
    `${network}-${name}`,
    '--network',
    network,
    '--read-only',
    '--publish',
    '127.0.0.1::9090',
    '--env',
    'STORE=memory',
    image,
    ...args,
  );
  started.push(id);
  const port = (await docker('port', id, '9090/tcp')).split(':').pop()!;
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${name} in ${image}`, async () => (await fetch(`${url}/readyz`)).ok, 30_000);
  return { id, url, port };
}

describe(`the image ${image}`, () => {
  beforeAll(async () => {
    await docker('network', 'create', network);
  });
  afterAll(async () => {
    for (const id of started) await tryDocker('rm', '--force', id);
    await tryDocker('network', 'rm', network);
  });

  it('is small, labelled, non-root by default, and has no shell', async () => {
    const [inspected] = JSON.parse(await docker('image', 'inspect', image)) as {
      Size: number;
      Config: {
        User: string;
        Labels: Record<string, string>;
        Entrypoint: string[];
        Cmd: string[];
        Healthcheck?: unknown;
      };
    }[];
    expect(inspected!.Config.User).toBe('65532:65532');
    expect(inspected!.Config.Entrypoint).toEqual(['/nodejs/bin/node']);
    expect(inspected!.Config.Cmd).toEqual(['standalone/dist/main.js']);
    expect(inspected!.Config.Healthcheck).toBeUndefined();
    expect(inspected!.Config.Labels).toMatchObject({
      'org.opencontainers.image.title': 'retrospective',
      'org.opencontainers.image.version': '0.1.0',
    });
    console.info(`image size: ${(inspected!.Size / 1024 / 1024).toFixed(0)} MiB`);
    const shell = await tryDocker(
      'run',
      '--rm',
      '--network',
      'none',
      '--entrypoint',
      '/bin/sh',
      image,
      '-c',
      'true',
    );
    expect(shell.code).not.toBe(0);
  });

  it('runs the api-server with STORE=memory, as a non-root user on a read-only root, and answers the seed check', async () => {
    const { id, port } = await start('api-server', ['api-server/dist/main.js']);
    expect(await docker('inspect', '-f', '{{.HostConfig.ReadonlyRootfs}}', id)).toBe('true');
    const processes = (await docker('top', id, '-eo', 'pid,uid')).split('\n').slice(1);
    expect(processes.map((line) => line.trim().split(/\s+/)[1])).toEqual(['65532']);
    const { stdout } = await sh('curl', ['--silent', `localhost:${port}/retrospective/check`]);
    expect(stdout).toBe('Retrospective is available.\n');
  });

  it('runs the whole seed workflow with its default command (both processes in one)', async () => {
    const { url } = await start('standalone', []);
    const call = (verb: string, headers: Record<string, string>) =>
      fetch(`${url}/retrospective/${verb}`, { method: verb === 'avail' ? 'GET' : 'POST', headers });
    expect((await call('avail', { Username: 'ujjwal' })).status).toBe(200);
    expect((await call('avail', { Username: 'bob' })).status).toBe(423);
    expect(
      (await call('change', { Username: 'ujjwal', Retrospective: 'this is changed retrospective' }))
        .status,
    ).toBe(200);
    expect((await call('release', { Username: 'ujjwal' })).status).toBe(200);
    // The controller's logic runs in the same process: it records the release in the history.
    const history = async () =>
      (
        (await (
          await fetch(`${url}/locks/retrospective/history`, {
            headers: { Accept: 'application/json' },
          })
        ).json()) as {
          releases: { lastEditor: string; content: string }[];
        }
      ).releases;
    await expect
      .poll(history)
      .toEqual([
        expect.objectContaining({ lastEditor: 'ujjwal', content: 'this is changed retrospective' }),
      ]);
  });
});
