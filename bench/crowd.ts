// One measuring process of the many-locks workload (bench/workloads.ts, workload 7): opens COUNT
// WebSocket clients spread over the api-server replicas in URLS, each subscribed (?locks=) to PER
// of the locks in LOCKS, and records when each `released` frame reaches each client. Talks to the
// bench over IPC: sends {ready, connected, subscribers}, answers {report} with the receipts since
// the last report. Every client connects once; the process ends when the bench tells it to.
import { WebSocket } from 'ws';
import { nth } from './lib.ts';

const urls = (process.env.URLS ?? '').split(',');
const count = Number(process.env.COUNT);
const per = Number(process.env.PER ?? 3);
const locks = (process.env.LOCKS ?? '').split(',');
const seed = Number(process.env.SEED ?? 0);

/** A deterministic spread of subscriptions (no Math.random: runs compare). */
const pick = (client: number, k: number) =>
  nth(locks, client * 7919 + k * 104_729 + seed * 15_485_863);

/** `<lock>:<token>` -> when each subscriber got that release (ms, on the machine's clock). */
let receipts = new Map<string, number[]>();
const subscribers = new Map<string, number>();
const sockets: WebSocket[] = [];
const now = () => performance.timeOrigin + performance.now();

function open(client: number): Promise<void> {
  const wanted = [...new Set(Array.from({ length: per }, (_, k) => pick(client, k)))];
  for (const lock of wanted) subscribers.set(lock, (subscribers.get(lock) ?? 0) + 1);
  const base = nth(urls, client).replace(/^http/, 'ws');
  return new Promise((done, fail) => {
    const ws = new WebSocket(`${base}/ws?locks=${wanted.join(',')}`, { perMessageDeflate: false });
    ws.once('message', () => {
      ws.on('message', (data: Buffer) => {
        if (!data.includes('"released"')) return;
        const at = now();
        const frame = JSON.parse(data.toString('utf8')) as { lock: string; token: number };
        const key = `${frame.lock}:${frame.token}`;
        const list = receipts.get(key);
        if (list) list.push(at);
        else receipts.set(key, [at]);
      });
      sockets.push(ws);
      done();
    });
    ws.once('error', fail);
  });
}

async function main() {
  for (let i = 0; i < count; i += 200)
    await Promise.all(
      Array.from({ length: Math.min(200, count - i) }, (_, j) => open(seed * count + i + j)),
    );
  process.send?.({ ready: true, connected: sockets.length, subscribers: [...subscribers] });
}

process.on('message', (msg: { report?: boolean; stop?: boolean; ping?: boolean }) => {
  // The bench compares this process's clock with its own (receipts are timed here).
  if (msg.ping) process.send?.({ pong: now() });
  if (msg.report) {
    process.send?.({ receipts: [...receipts] });
    receipts = new Map();
  }
  if (msg.stop) {
    sockets.forEach((s) => s.terminate());
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
