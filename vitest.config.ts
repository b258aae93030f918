import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Workspace packages resolve to their TypeScript sources, so tests need no build. Tests run on
  // the server side, where Vite reads the SSR conditions: without them they would import dist/.
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
  test: {
    reporters: ['default', './test/summary-reporter.ts'],
    // Most cluster tests wait (on timers, watches, processes) rather than compute, so more files
    // run side by side than there are cores; TEST_WORKERS overrides it.
    maxWorkers: Number(process.env.TEST_WORKERS ?? 4),
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: [
            '{lock,runtime,api-server,controller,client,cli,standalone}/src/**/*.test.ts',
            'hack/**/*.test.ts',
          ],
          // A timeout catches a hang, not slowness: the property tests (400 requests) and the
          // token flood (11,000 reviews) take 1-3 s alone and over 5 s on two cores shared with
          // the cluster tier's files (Vitest's default 5 s failed them there).
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'cluster',
          include: ['test/**/*.test.ts'],
          exclude: ['test/docker/**', 'test/kind/**'],
          globalSetup: ['test/global-setup.ts'],
          // What another process does (a watch catching up, a browser rendering) may take more
          // than expect.poll's default second on two loaded cores; a poll ends once it holds.
          expect: { poll: { timeout: 10_000 } },
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        extends: true,
        test: {
          // make test-kind: the image and a kind cluster, through Docker.
          name: 'docker',
          include: ['test/docker/**/*.test.ts', 'test/kind/**/*.test.ts'],
          globalSetup: ['test/kind/global-setup.ts'],
          // One cluster, one lock: the files take turns.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
