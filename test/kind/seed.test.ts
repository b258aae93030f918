import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { openSocket } from '../../api-server/src/testing/harness.ts';
import { kind, kubectl, namespace } from '../support/kind.ts';

const sh = promisify(execFile);
/** The seed's four curl lines, with only the address changed to the Ingress's. */
const seedLines = () =>
  [
    'curl localhost:9090/retrospective/check',
    "curl localhost:9090/retrospective/avail --request GET --header 'Username:ujjwal'",
    "curl localhost:9090/retrospective/change --request POST --header 'Username:ujjwal' --header 'Retrospective:this is changed retrospective'",
    "curl localhost:9090/retrospective/release --request POST --header 'Username:ujjwal'",
  ].map((line) => line.replace('localhost:9090', new URL(kind().url).host));
const curl = async (line: string) =>
  (await sh('bash', ['-c', `${line} --silent --show-error --include`])).stdout;

describe('the chart on kind, through the Traefik Ingress', () => {
  it('answers the seed curl lines, shows the hold on the Lease, and pushes the release over a WebSocket', async () => {
    const [check, avail, change, release] = seedLines() as [string, string, string, string];
    expect(await curl(check)).toMatch(/^HTTP\/1.1 200[\s\S]*Retrospective is available\./);
    const socket = await openSocket(kind().url);
    expect(await curl(avail)).toMatch(
      /^HTTP\/1.1 200[\s\S]*Access to Retrospective Granted to ujjwal/,
    );
    expect(await curl(change)).toMatch(/^HTTP\/1.1 200[\s\S]*Retrospective Updated/);

    const lease = await kubectl('get', 'lease', 'retrospective', '-n', namespace, '-o', 'yaml');
    expect(lease).toMatch(/holderIdentity: ujjwal/);
    expect(lease).toMatch(/retrospective\.dev\/content: this is changed retrospective/);

    expect(await curl(release)).toMatch(/^HTTP\/1.1 200[\s\S]*Retrospective Released/);
    expect(await socket.next('released', 10_000)).toMatchObject({
      content: 'this is changed retrospective',
      lastEditor: 'ujjwal',
      reason: 'released',
    });
    socket.close();

    const reasons = async () =>
      (
        await kubectl(
          'get',
          'events',
          '-n',
          namespace,
          '--field-selector',
          'involvedObject.name=retrospective',
          '-o',
          'jsonpath={range .items[*]}{.reason}:{.message}{"\\n"}{end}',
        )
      ).split('\n');
    await expect
      .poll(reasons, { timeout: 15_000 })
      .toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^Acquired:ujjwal acquired retrospective/),
          expect.stringMatching(/^Released:ujjwal released retrospective/),
        ]),
      );
  });

  it('never routes /metrics, which lives on a port of its own', async () => {
    expect((await fetch(`${kind().url}/metrics`)).status).toBe(404);
  });
});
