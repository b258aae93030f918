import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { repoRoot } from './support/kube.ts';

/** `make bench` in seconds: every workload runs end to end against its floor or peer. */
// About 40 s: all seven benchmark workloads once, each against its floor or peer (etcd's Mutex,
// client-go's leader election, bare node:http and ws) built and started for it.
describe('make bench --smoke', () => {
  it(
    'runs all seven workloads and reports each figure with its floor or peer',
    { timeout: 180_000 },
    async () => {
      const results = join(inject('scratchDir'), 'bench');
      await promisify(execFile)(process.execPath, ['bench/bench.ts', '--smoke'], {
        cwd: repoRoot,
        env: {
          ...process.env,
          BENCH_CLUSTER_DIR: inject('cluster').dir,
          BENCH_RESULTS_DIR: results,
        },
        timeout: 170_000,
      });
      const [file] = readdirSync(results);
      const report = JSON.parse(readFileSync(join(results, file!), 'utf8')) as {
        rows: { workload: string; value: number; reference: number; ratio: number }[];
      };
      const workloads = new Set(report.rows.map((r) => r.workload.split('.')[0]));
      expect([...workloads].sort()).toEqual(['1', '2', '3', '4', '5', '6', '7']);
      for (const row of report.rows) {
        expect(row.value, row.workload).toBeGreaterThanOrEqual(0);
        expect(Number.isFinite(row.reference), row.workload).toBe(true);
      }
    },
  );
});
