import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSocket } from '../../api-server/src/testing/harness.ts';
import { repoRoot } from '../support/kube.ts';
import { startStandalone, type Service } from '../support/processes.ts';

/** The seed's four curl lines, verbatim, as README.md's "The seed" section quotes them. */
const seedLines = [
  'curl localhost:9090/retrospective/check',
  "curl localhost:9090/retrospective/avail --request GET --header 'Username:ujjwal'",
  "curl localhost:9090/retrospective/change --request POST --header 'Username:ujjwal' --header 'Retrospective:this is changed retrospective'",
  "curl localhost:9090/retrospective/release --request POST --header 'Username:ujjwal'",
];
const sh = promisify(execFile);
const curl = async (line: string) =>
  (await sh('bash', ['-c', `${line} --silent --show-error --include`])).stdout;

describe('make run: the seed curl lines, verbatim, on localhost:9090', () => {
  let service: Service;
  beforeAll(async () => {
    const busy = await fetch('http://127.0.0.1:9090/healthz').then(
      () => true,
      () => false,
    );
    if (busy)
      throw new Error(
        'port 9090 is in use (is `make run` or `make dev` running?); the seed lines need it',
      );
    service = await startStandalone({}, 9090);
  });
  afterAll(async () => (service as Service | undefined)?.stop());

  it('are the lines the README quotes as the seed', () => {
    const readme = readFileSync(resolve(repoRoot, 'README.md'), 'utf8');
    const section = /^## The seed\n([^]*?)(?=^## )/m.exec(readme)?.[1] ?? '';
    expect(section.split('\n').filter((line) => line.startsWith('curl '))).toEqual(seedLines);
  });

  it('check, avail, a second avail, change and release behave as the seed says', async () => {
    expect(await curl(seedLines[0]!)).toMatch(/^HTTP\/1.1 200[\s\S]*Retrospective is available\./);
    expect(await curl(seedLines[1]!)).toMatch(
      /^HTTP\/1.1 200[\s\S]*Access to Retrospective Granted to ujjwal/,
    );

    const wait = await curl(
      "curl localhost:9090/retrospective/avail --request GET --header 'Username:someone-else'",
    );
    expect(wait).toMatch(/^HTTP\/1.1 423 Locked/);
    expect(wait).toMatch(/Retry-After: \d+/i);
    expect(wait).toMatch(/Wait: Retrospective is being edited by ujjwal since/);

    const socket = await openSocket('http://localhost:9090');
    expect(await curl(seedLines[2]!)).toMatch(/^HTTP\/1.1 200[\s\S]*Retrospective Updated/);
    expect(await curl(seedLines[3]!)).toMatch(/^HTTP\/1.1 200[\s\S]*Retrospective Released/);
    expect(await socket.next('released')).toMatchObject({
      content: 'this is changed retrospective',
      lastEditor: 'ujjwal',
      reason: 'released',
    });
    socket.close();
  });

  it('keeps idle connections longer than the proxies in front of it keep theirs', async () => {
    // Shorter (Node's default is 5 s), a proxy reuses a connection as the server closes it: 502.
    const res = await fetch('http://localhost:9090/retrospective/check');
    await res.text();
    expect(res.headers.get('keep-alive')).toBe('timeout=120');
  });

  it('shuts down gracefully on SIGTERM: WebSocket clients get 1001 and the process exits 0', async () => {
    const socket = await openSocket('http://localhost:9090');
    const closed = new Promise<number>((done) => socket.ws.on('close', done));
    const exited = new Promise<number | null>((done) => service.child.once('exit', done));
    service.child.kill('SIGTERM');
    expect(await closed).toBe(1001);
    expect(await exited).toBe(0);
  });
});
