import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep, type Hold, type RetrospectiveClient } from '@retrospective/client';
import { exitCodes } from './args.js';
import { Exit, say, takeAndHold, type TakeFlags } from './take.js';

/**
 * `retrospective edit NAME`: takes the lock, opens your editor on the content, then writes the
 * new content and releases in one request. An editor that fails, or a file left unchanged,
 * releases without a write. A hold lost while editing keeps your text in its file.
 */
export async function editLocked(
  client: RetrospectiveClient,
  lock: string,
  flags: TakeFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const hold = await takeAndHold(client, lock, flags);
  const dir = mkdtempSync(join(tmpdir(), 'retrospective-'));
  const file = join(dir, `${lock}.txt`);
  let keep = false;
  const done = { released: false };
  const release = async (content?: string) => {
    done.released = true;
    return hold.release(content);
  };
  try {
    const original = await contentAsGranted(client, hold);
    // Editors end a file with a newline; one is added here and taken off again.
    const newline = !original.endsWith('\n');
    const written = newline ? `${original}\n` : original;
    writeFileSync(file, written, { mode: 0o600 });
    const status = await runEditor(editorOf(env), file);
    const saved = readFileSync(file, 'utf8');
    if (hold.loss) {
      keep = true;
      throw new Exit(
        exitCodes.lost,
        `${hold.loss.message} Nothing was written; your text is in ${file}.`,
      );
    }
    if (status !== 0) {
      // An editor may fail after saving (vim after an error): the text is kept, not written.
      keep = saved !== written;
      await release();
      throw new Exit(
        exitCodes.failed,
        `The editor exited with ${status}: nothing was written, ${lock} is released${keep ? `; your text is in ${file}` : ''}.`,
      );
    }
    const edited = newline && saved.endsWith('\n') ? saved.slice(0, -1) : saved;
    if (edited === original) {
      await release();
      say(`${lock} unchanged; released.`);
      return exitCodes.ok;
    }
    try {
      const answer = await release(edited);
      say(`${lock} updated (${answer.bytes ?? Buffer.byteLength(edited)} bytes) and released.`);
      return exitCodes.ok;
    } catch (error) {
      keep = true;
      throw new Exit(
        hold.signal.aborted ? exitCodes.lost : exitCodes.failed,
        `${(error as Error).message} Nothing was written; your text is in ${file}.`,
      );
    }
  } finally {
    // Whatever went wrong before the editor's text was dealt with, the lock is not kept.
    if (!done.released && !hold.signal.aborted) await hold.release().catch(() => undefined);
    hold.stop();
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The content as of this hold: `check` comes from a replica's watch cache, which shows the
 * previous holder's last write once it shows this grant (the grant came after it).
 */
async function contentAsGranted(client: RetrospectiveClient, hold: Hold): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const state = await client.check(hold.lock);
    if (state.token >= hold.token) return state.content;
    await sleep(50);
  }
  throw new Exit(exitCodes.failed, `The service did not show ${hold.lock} as granted within 5 s.`);
}

/** RETROSPECTIVE_EDITOR, else VISUAL, else EDITOR, else vi (as kubectl edit chooses). */
export function editorOf(env: NodeJS.ProcessEnv): string {
  return env.RETROSPECTIVE_EDITOR || env.VISUAL || env.EDITOR || 'vi';
}

/** Runs the editor on `file` with the terminal; an editor with arguments goes through sh. */
function runEditor(editor: string, file: string): Promise<number> {
  const simple = !/\s/.test(editor);
  const child = simple
    ? spawn(editor, [file], { stdio: 'inherit' })
    : spawn('/bin/sh', ['-c', `${editor} "$1"`, 'sh', file], { stdio: 'inherit' });
  // Ctrl-C belongs to the editor (it shares the terminal's group): the CLI waits for it.
  const ignore = () => {};
  for (const name of ['SIGINT', 'SIGHUP'] as const) process.on(name, ignore);
  return new Promise<number>((resolve) => {
    child.once('error', (error) => {
      say(`cannot run the editor ${editor}: ${error.message}`);
      resolve(exitCodes.notFound);
    });
    child.once('exit', (code) => resolve(code ?? 1));
  }).finally(() => {
    for (const name of ['SIGINT', 'SIGHUP'] as const) process.off(name, ignore);
  });
}
