import type { IncomingMessage } from 'node:http';
import type { Config } from './config.js';

/** Names that only ever reach this machine: a page cannot rebind them to the service. */
const loopback = (hostname: string) =>
  hostname === 'localhost' ||
  hostname.endsWith('.localhost') ||
  hostname === '127.0.0.1' ||
  hostname === '[::1]';

/** The hostname of a Host header (`name`, `name:port`, `[v6]:port`), lower-cased. */
function hostnameOf(host: string): string | undefined {
  try {
    return new URL(`http://${host}`).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * Whether a request from a browser may act on the service: requests without an Origin (curl,
 * kubectl, scripts) may; a browser's must come from ALLOWED_ORIGINS or from the page's own origin
 * on a host the service is meant to be reached by (ALLOWED_HOSTS or loopback). Comparing Origin
 * with Host alone would let a DNS-rebinding page in: both are the attacker's name then.
 */
export function originAllowed(
  req: IncomingMessage,
  config: Pick<Config, 'ALLOWED_ORIGINS' | 'ALLOWED_HOSTS'>,
): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  if (config.ALLOWED_ORIGINS.some((allowed) => new URL(allowed).origin === origin)) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  const host = req.headers.host;
  if (host === undefined || url.host !== host.toLowerCase()) return false;
  const hostname = hostnameOf(host);
  return (
    hostname !== undefined &&
    (loopback(hostname) || config.ALLOWED_HOSTS.some((h) => h.toLowerCase() === hostname))
  );
}
