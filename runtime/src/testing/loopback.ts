import type { Server } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { KubeConfig, type Cluster } from '@kubernetes/client-node';
import { loopbackCert } from './loopback-tls.js';

/**
 * Listens with `server` (a scripted API server in a unit test) on a loopback port and returns a
 * KubeConfig that talks to it in plain HTTP (client-node does so only when told not to verify TLS).
 */
export function loopbackKubeConfig(server: Server): Promise<KubeConfig> {
  return listening(server, 'http', { skipTLSVerify: true });
}

/**
 * As `loopbackKubeConfig`, for a server that answers TLS with `loopbackCert` (HTTPS, HTTP/2, or
 * a TCP relay to one): a KubeConfig that trusts that certificate and talks TLS to it.
 */
export function loopbackTlsKubeConfig(server: NetServer): Promise<KubeConfig> {
  return listening(server, 'https', {
    skipTLSVerify: false,
    caData: Buffer.from(loopbackCert).toString('base64'),
  });
}

async function listening(
  server: NetServer,
  scheme: 'http' | 'https',
  cluster: Omit<Cluster, 'name' | 'server'>,
): Promise<KubeConfig> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const kc = new KubeConfig();
  const { port } = server.address() as AddressInfo;
  kc.loadFromClusterAndUser(
    { name: 'scripted', server: `${scheme}://127.0.0.1:${port}`, ...cluster },
    { name: 'test' },
  );
  return kc;
}
