// The floors the service is measured against: the least a Node server can do for the same job.
//   BARE=http: answers every request with BODY (and CONTENT_TYPE), like `check` does.
//   BARE=ws:   accepts WebSocket clients; POST /fire sends them all one pre-serialised frame.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const body = Buffer.from(process.env.BODY ?? '');
const type = process.env.CONTENT_TYPE ?? 'application/json; charset=utf-8';
const frame = JSON.stringify({ type: 'released', lock: 'retrospective', token: 1, content: '' });

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
const server = createServer((req, res) => {
  if (process.env.BARE === 'ws' && req.url === '/fire') {
    for (const ws of wss.clients) ws.send(frame);
    res.end();
    return;
  }
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 120_000;
server.on('upgrade', (req, socket, head) =>
  wss.handleUpgrade(req, socket, head, (ws) => ws.send(frame)),
);
server.listen(Number(process.env.PORT), '127.0.0.1');
