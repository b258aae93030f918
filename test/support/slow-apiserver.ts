import { createServer, type IncomingMessage, type Server } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * A plain-HTTP loopback proxy in front of the test kube-apiserver that can hold back chosen
 * requests (what a process sees when the API server answers it slowly) or cut the process off
 * altogether. Everything else passes straight through, watches included.
 */
export class SlowApiserver {
  private readonly server: Server;
  /** Requests matching this are held back `delayMs` before they are forwarded. */
  slow: ((req: IncomingMessage) => boolean) | undefined;
  delayMs = 0;
  held = 0;
  private unreachable = false;

  constructor(private readonly upstream: URL) {
    this.server = createServer((req, res) => {
      // Cut off: every request is reset, as when the API server cannot be reached at all.
      if (this.unreachable) return void req.socket.destroy();
      const forward = () => {
        const out = request(
          {
            host: this.upstream.hostname,
            port: this.upstream.port,
            method: req.method,
            path: req.url,
            headers: { ...req.headers, host: this.upstream.host },
            rejectUnauthorized: false,
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        out.on('error', () => res.destroy());
        res.on('close', () => out.destroy());
        req.pipe(out);
      };
      if (this.slow?.(req)) {
        this.held++;
        setTimeout(forward, this.delayMs);
      } else forward();
    });
  }

  /** Cuts every connection through the proxy, open watches included, and refuses new ones. */
  cut(): void {
    this.unreachable = true;
    this.server.closeAllConnections();
  }

  /** Lets requests through again. */
  restore(): void {
    this.unreachable = false;
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
