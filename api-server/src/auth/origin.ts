import type { IncomingMessage } from 'node:http';
import type { Config } from '../config.js';

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

/** Whether a browser may change locks from where this request comes (see `originVerdict`). */
export type OriginVerdict = 'allowed' | 'forbidden_origin' | 'cross_site';

/** Fetch Metadata values of requests a page of the service itself, or its user, sends. */
const ownSites: readonly (string | undefined)[] = [undefined, 'same-origin', 'none'];

/**
 * The origin rule for mutations. Besides `originAllowed`, Fetch Metadata: a browser navigation
 * from another site (a link, a form, a redirect) carries no Origin on GET but says where it comes
 * from in `Sec-Fetch-Site` (`cross-site`, or `same-site` from a sibling host, whose cookies a
 * proxy may accept), and the seed's `avail` is a GET that takes the lock: behind a proxy that
 * authenticates by cookie it would take the lock for the victim. Anything but `same-origin` or
 * `none` (the user typed the address) is refused unless its Origin is one of ALLOWED_ORIGINS.
 * curl and scripts send no Fetch Metadata.
 */
export function originVerdict(
  req: IncomingMessage,
  config: Pick<Config, 'ALLOWED_ORIGINS' | 'ALLOWED_HOSTS'>,
): OriginVerdict {
  if (!originAllowed(req, config)) return 'forbidden_origin';
  const site = req.headers['sec-fetch-site'];
  if (ownSites.includes(typeof site === 'string' ? site : undefined)) return 'allowed';
  const origin = req.headers.origin;
  const listed = config.ALLOWED_ORIGINS.some((allowed) => new URL(allowed).origin === origin);
  return origin !== undefined && listed ? 'allowed' : 'cross_site';
}

/**
 * The client's address: the peer's, or the one `hops` trusted proxies in front report in
 * X-Forwarded-For (Express's `trust proxy` with a hop count, for HTTP and WebSocket alike).
 */
export function clientAddress(req: IncomingMessage, hops: number): string {
  const peer = req.socket.remoteAddress ?? 'unknown';
  if (hops === 0) return peer;
  const header = req.headers['x-forwarded-for'];
  const forwarded = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean)
    .reverse();
  const chain = [peer, ...forwarded];
  // A forged header cannot make a key of any size: addresses are short.
  return (chain[Math.min(hops, chain.length - 1)] ?? peer).slice(0, 64);
}
