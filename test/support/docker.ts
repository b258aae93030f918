import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs the docker CLI against the daemon `make test-kind` chose (DOCKER_HOST from hack/docker.sh). */
export async function docker(...args: string[]): Promise<string> {
  const { stdout } = await run('docker', args, { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

/** Like docker(), but resolves with the exit code and output instead of throwing. */
export async function tryDocker(...args: string[]) {
  try {
    return { code: 0, stdout: await docker(...args), stderr: '' };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
