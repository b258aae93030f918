import type { Server } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { loopbackCert } from './loopback-tls.js';

/**
 * Listens with `server` (a scripted API server in a unit test) on a loopback port and returns a
 * KubeConfig that talks to it in plain HTTP (client-node does so only when told not to verify TLS).
 */
export async function loopbackKubeConfig(server: Server): Promise<KubeConfig> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    {
      name: 'scripted',
      skipTLSVerify: true,
      server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    },
    { name: 'test' },
  );
  return kc;
}

/**
 * As `loopbackKubeConfig`, for a server that answers TLS with `loopbackCert` (HTTPS, HTTP/2, or
 * a TCP relay to one): a KubeConfig that trusts that certificate and talks TLS to it.
 */
export async function loopbackTlsKubeConfig(server: NetServer): Promise<KubeConfig> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    {
      name: 'scripted',
      caData: Buffer.from(loopbackCert).toString('base64'),
      server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
      skipTLSVerify: false,
    },
    { name: 'test' },
  );
  return kc;
}
