import { Agent, createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';

/**
 * A loopback load balancer in front of api-server processes, behaving as an ingress with an
 * endpoints watch does: each request goes to the next routed backend over pooled keep-alive
 * connections, WebSocket upgrades are piped through, and a backend is taken out of rotation a
 * while after it is told to (as an endpoint update lags a pod's deletion). A request it could not
 * get answered is a 502, as an ingress would answer.
 */
export class Balancer {
  private readonly server: Server;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private readonly routed: boolean[];
  private next = 0;
  /** Requests answered 502 because a backend failed them. */
  badGateways = 0;

  constructor(private readonly backends: { port: number }[]) {
    this.routed = backends.map(() => true);
    this.server = createServer((req, res) => {
      const port = this.pick();
      if (port === undefined) return void res.writeHead(503).end('no backend\n');
      const upstream = request(
        {
          host: '127.0.0.1',
          port,
          method: req.method,
          path: req.url,
          headers: req.headers,
          agent: this.agent,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => {
        this.badGateways++;
        if (!res.headersSent) res.writeHead(502).end('bad gateway\n');
        else res.destroy();
      });
      req.pipe(upstream);
    });
    this.server.on('upgrade', (req: IncomingMessage, client, head: Buffer) => {
      const port = this.pick();
      if (port === undefined) return client.destroy();
      const backend = connect(port, '127.0.0.1', () => {
        const lines = [`${req.method} ${req.url} HTTP/1.1`];
        for (let i = 0; i < req.rawHeaders.length; i += 2)
          lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
        backend.write(`${lines.join('\r\n')}\r\n\r\n`);
        backend.write(head);
        backend.pipe(client).pipe(backend);
      });
      backend.on('error', () => client.destroy());
      client.on('error', () => backend.destroy());
      backend.on('close', () => client.destroy());
      client.on('close', () => backend.destroy());
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Takes backend `i` out of rotation after `afterMs` (connections already open stay). */
  remove(i: number, afterMs: number): void {
    setTimeout(() => (this.routed[i] = false), afterMs);
  }

  add(i: number): void {
    this.routed[i] = true;
  }

  async close(): Promise<void> {
    this.agent.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private pick(): number | undefined {
    for (let tried = 0; tried < this.backends.length; tried++) {
      const i = this.next++ % this.backends.length;
      if (this.routed[i]) return this.backends[i]!.port;
    }
    return undefined;
  }
}
