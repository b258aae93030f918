import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const steps = (...args: string[]) =>
  spawnSync(resolve(import.meta.dirname, 'steps.sh'), args, {
    encoding: 'utf8',
    env: { ...process.env, MAKEFLAGS: '' },
  });

describe('hack/steps.sh, the progress of make test and make kind-up', () => {
  it('numbers each step as it starts and says how long it took', () => {
    const run = steps('tools', 'true', 'build', 'echo built', 'tests', 'true');
    expect(run.status).toBe(0);
    expect(run.stdout).toBe('built\n');
    // Each step takes well under a second, but may cross a second boundary.
    expect(run.stderr.replace(/(in|all) 1 s/g, '$1 0 s').split('\n')).toEqual([
      '[1/3] tools',
      '[1/3] tools done in 0 s',
      '[2/3] build',
      '[2/3] build done in 0 s',
      '[3/3] tests',
      '[3/3] tests done in 0 s (all 0 s)',
      '',
    ]);
  });

  it('stops at the first failure, with its exit status', () => {
    const run = steps('tools', 'exit 3', 'build', 'echo never');
    expect(run.status).toBe(3);
    expect(run.stdout).toBe('');
    // A step may cross a second boundary: 0 or 1 s.
    expect(run.stderr).toMatch(/^\[1\/2\] tools\n\[1\/2\] tools failed after [01] s\n$/);
  });

  it('only says what it would run under make -n', () => {
    const run = spawnSync(resolve(import.meta.dirname, 'steps.sh'), ['tools', 'exit 3'], {
      encoding: 'utf8',
      env: { ...process.env, MAKEFLAGS: 'n -- X=1' },
    });
    expect(run.status).toBe(0);
    expect(run.stdout).toBe('[1/1] tools: exit 3\n');
  });
});
