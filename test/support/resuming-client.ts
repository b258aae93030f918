import { WebSocket } from 'ws';

/**
 * A WebSocket client as a careful viewer writes one: when the server goes away it reconnects,
 * telling the server the last release it saw (`?since=`), and it keeps every release token it
 * heard, live or replayed.
 */
export class ResumingClient {
  readonly releases = new Set<number>();
  reconnects = 0;
  private lastToken: number | undefined;
  private ws: WebSocket | undefined;
  private stopped = false;

  constructor(
    private readonly url: string,
    private readonly lock = 'retrospective',
  ) {}

  /** Resolves once the first connection is open. */
  start(): Promise<void> {
    return new Promise((resolve) => this.connect(resolve));
  }

  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }

  private connect(opened?: () => void): void {
    const since = this.lastToken === undefined ? '' : `?since=${this.lock}:${this.lastToken}`;
    const ws = new WebSocket(`${this.url.replace(/^http/, 'ws')}/ws${since}`);
    this.ws = ws;
    ws.on('open', () => opened?.());
    ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as {
        type: string;
        lock?: string;
        token?: number;
        locks?: { lock: string; token: number; available: boolean; releasedAt?: string }[];
      };
      if (frame.type === 'snapshot' && this.lastToken === undefined) {
        // The lock's last release before we joined: where a first reconnect resumes from.
        const state = frame.locks?.find((l) => l.lock === this.lock);
        if (state?.releasedAt) this.lastToken = state.available ? state.token : state.token - 1;
        else if (state) this.lastToken = 0;
      }
      if (frame.type !== 'released' || frame.lock !== this.lock || frame.token === undefined)
        return;
      this.releases.add(frame.token);
      this.lastToken = Math.max(frame.token, this.lastToken ?? 0);
    });
    ws.on('error', () => undefined);
    ws.on('close', () => {
      if (this.stopped) return;
      this.reconnects++;
      setTimeout(() => this.connect(opened), 50 + Math.random() * 150);
    });
  }
}
