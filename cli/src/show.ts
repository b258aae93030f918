import type { Frame, LockSummary, RetrospectiveClient } from '@retrospective/client';
import { stringify } from 'yaml';

type Format = 'table' | 'json' | 'yaml';

/** Rows as kubectl prints them: upper-case headers, columns padded by three spaces. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3)))
      .join('')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

const print = (value: unknown, format: Format): void =>
  void process.stdout.write(
    format === 'json' ? `${JSON.stringify(value, null, 2)}\n` : stringify(value),
  );

/** `5m`, `2h`, `3d`: how long ago, as kubectl's AGE column says it. */
export function age(since: string | undefined, now = Date.now()): string {
  if (!since) return '';
  const seconds = Math.max(0, Math.round((now - Date.parse(since)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** `status [NAME]`: one lock's state, or every lock you may view, a page at a time. */
export async function status(
  client: RetrospectiveClient,
  lock: string | undefined,
  format: Format,
): Promise<void> {
  if (lock) {
    const state = await client.check(lock);
    if (format !== 'table') return print(state, format);
    const row = [
      state.lock,
      state.holder ?? '',
      age(state.since),
      String(state.token),
      String(state.waiting?.length ?? 0),
    ];
    process.stdout.write(table(['NAME', 'HOLDER', 'HELD', 'TOKEN', 'WAITING'], [row]));
    return;
  }
  const locks: LockSummary[] = [];
  let next: string | undefined;
  do {
    const page = await client.list({ limit: 500, ...(next ? { continue: next } : {}) });
    locks.push(...page.locks);
    next = page.continue;
  } while (next);
  if (format !== 'table') return print({ locks }, format);
  const rows = locks.map((l) => [
    l.lock,
    l.holder ?? '',
    age(l.since),
    String(l.token ?? ''),
    String(l.waiting ?? 0),
  ]);
  process.stdout.write(table(['NAME', 'HOLDER', 'HELD', 'TOKEN', 'WAITING'], rows));
}

/** `history NAME`: the last releases, oldest first. */
export async function history(
  client: RetrospectiveClient,
  lock: string,
  format: Format,
  limit: number | undefined,
): Promise<void> {
  const found = await client.history(lock, limit ? { limit } : {});
  if (format !== 'table') return print(found, format);
  const rows = found.releases.map((r) => [
    String(r.token ?? ''),
    r.releasedAt ?? '',
    r.releasedBy ?? '',
    r.reason ?? '',
    r.lastEditor ?? '',
    String(Buffer.byteLength(r.content ?? '')),
  ]);
  process.stdout.write(table(['TOKEN', 'RELEASED', 'BY', 'REASON', 'EDITOR', 'BYTES'], rows));
}

/** One line per frame a person reads; `-o json` prints the frames themselves, one per line. */
export function describeFrame(frame: Frame): string | undefined {
  switch (frame.type) {
    case 'acquired':
      return `${frame.since}  ${frame.lock}  acquired by ${frame.holder} (token ${frame.token})`;
    case 'released':
      return `${frame.releasedAt}  ${frame.lock}  ${frame.reason === 'released' ? 'released' : frame.reason} by ${frame.releasedBy} (token ${frame.token})${frame.replayed ? ' [missed, replayed]' : ''}`;
    case 'queue':
      return `${new Date().toISOString()}  ${frame.lock}  waiting: ${frame.waiting.map((w) => w.user).join(', ') || 'nobody'}`;
    case 'added':
      return `${new Date().toISOString()}  ${frame.lock.lock}  declared`;
    case 'removed':
      return `${new Date().toISOString()}  ${frame.lock}  deleted`;
    case 'snapshot':
      return undefined;
  }
}

/** `watch [NAME...]`: grants and releases live, until interrupted; resumes across reconnects. */
export async function watchLocks(
  client: RetrospectiveClient,
  locks: readonly string[],
  json: boolean,
  signal: AbortSignal,
): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const watch = client.watch({
      locks,
      signal,
      onFrame: (frame) => {
        if (json) return void process.stdout.write(`${JSON.stringify(frame)}\n`);
        const line = describeFrame(frame);
        if (line) process.stdout.write(`${line}\n`);
      },
      onReconnect: (reason) => process.stderr.write(`retrospective: ${reason}; reconnecting\n`),
      onError: reject,
    });
    watch.opened.catch((error: unknown) => {
      if (!signal.aborted) reject(error instanceof Error ? error : new Error(String(error)));
    });
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
