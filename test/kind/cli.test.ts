import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../support/cli.ts';
import { kind } from '../support/kind.ts';

/**
 * The CLI on kind, through the Traefik Ingress (HTTP and its WebSocket): `lock` runs a command
 * while holding the lock with a TTL the chart's controller would expire, `edit` writes and
 * releases in one request, and `status` shows the result.
 */
describe('the retrospective CLI through the Ingress on kind', () => {
  it('runs a command under the lock, edits in one step, and shows the state', async () => {
    const url = kind().url;
    const run = await cli([
      'lock',
      'retrospective',
      '--url',
      url,
      '--user',
      'kind-cli',
      '--wait',
      '30s',
      '--ttl',
      '10s',
      '--',
      'sh',
      '-c',
      'echo "$RETROSPECTIVE_HOLDER $RETROSPECTIVE_FENCING_TOKEN"',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const [holder, token] = run.stdout.trim().split(' ');
    expect(holder).toBe('kind-cli');
    const editor = join(mkdtempSync(join(tmpdir(), 'cli-')), 'editor.sh');
    writeFileSync(editor, '#!/bin/sh\necho "edited on kind" > "$1"\n', { mode: 0o755 });
    const edit = await cli(
      ['edit', 'retrospective', '--url', url, '--user', 'kind-cli', '--wait', '30s'],
      { EDITOR: editor },
    );
    expect(edit.code, edit.stderr).toBe(0);
    // Any replica answers status: poll until the one asked has seen the release.
    await expect
      .poll(
        async () => {
          const status = await cli(['status', 'retrospective', '-o', 'json', '--url', url]);
          return JSON.parse(status.stdout) as {
            content: string;
            lastEditor: string;
            token: number;
          };
        },
        { timeout: 10_000 },
      )
      .toMatchObject({ content: 'edited on kind', lastEditor: 'kind-cli' });
    const status = await cli(['status', 'retrospective', '-o', 'json', '--url', url]);
    expect((JSON.parse(status.stdout) as { token: number }).token).toBeGreaterThan(Number(token));
  });
});
