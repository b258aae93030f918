import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

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
