import { createServer, type Server } from 'node:http';
import { loopbackKubeConfig } from '../../../runtime/src/testing/loopback.js';
import { afterEach, describe, expect, it } from 'vitest';
import { kubeReviewer } from './kube-reviewer.js';

/** An API server that answers every TokenReview with `status`. */
function tokenReviews(status: object) {
  const specs: unknown[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      specs.push((JSON.parse(body) as { spec: unknown }).spec);
      res
        .writeHead(201, { 'Content-Type': 'application/json' })
        .end(
          JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', status }),
        );
    });
  });
  return { server, specs };
}

let server: Server | undefined;
afterEach(() => {
  server?.closeAllConnections();
  server?.close();
});

describe('the TokenReview of a kubernetes-mode api-server', () => {
  const ana = { username: 'ana', groups: ['team-a'], uid: 'u1' };

  it('accepts a token for one of AUTH_TOKEN_AUDIENCES, naming them in the review', async () => {
    const api = tokenReviews({ authenticated: true, user: ana, audiences: ['retrospective'] });
    server = api.server;
    const review = kubeReviewer(await loopbackKubeConfig(server), 'ops', () => undefined, [
      'retrospective',
    ]);
    expect(await review.reviewToken('t')).toMatchObject({ user: 'ana', groups: ['team-a'] });
    expect(api.specs).toEqual([{ token: 't', audiences: ['retrospective'] }]);
  });

  it('refuses a token the API server authenticated for other audiences only', async () => {
    const api = tokenReviews({ authenticated: true, user: ana, audiences: ['vault'] });
    server = api.server;
    const review = kubeReviewer(await loopbackKubeConfig(server), 'ops', () => undefined, [
      'retrospective',
    ]);
    expect(await review.reviewToken('t')).toBeUndefined();
  });

  it('refuses a token whose review names no audiences when audiences are required', async () => {
    const api = tokenReviews({ authenticated: true, user: ana });
    server = api.server;
    const review = kubeReviewer(await loopbackKubeConfig(server), 'ops', () => undefined, [
      'retrospective',
    ]);
    expect(await review.reviewToken('t')).toBeUndefined();
  });

  it("takes the API server's own audiences when none are configured", async () => {
    const api = tokenReviews({ authenticated: true, user: ana, audiences: ['https://kubernetes'] });
    server = api.server;
    const review = kubeReviewer(await loopbackKubeConfig(server), 'ops', () => undefined);
    expect(await review.reviewToken('t')).toMatchObject({ user: 'ana' });
    expect(api.specs).toEqual([{ token: 't' }]);
  });
});
