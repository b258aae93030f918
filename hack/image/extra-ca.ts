// Prints the certificates of NODE_EXTRA_CA_CERTS that Node does not already trust, so an image
// build behind a TLS-intercepting proxy can trust that proxy too (the whole bundle is too big to
// pass as a build argument). Prints nothing when there are none.
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';

const pem = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;
const normal = (cert: string) => cert.replace(/\s+/g, '');

/** The certificates in `bundle` that are not among `trusted`. */
export function extraCertificates(bundle: string, trusted: readonly string[]): string[] {
  const known = new Set(trusted.map(normal));
  return (bundle.match(pem) ?? []).filter((cert) => !known.has(normal(cert)));
}

const file = process.env.NODE_EXTRA_CA_CERTS;
if (file && import.meta.main) {
  const extra = extraCertificates(readFileSync(file, 'utf8'), rootCertificates);
  if (extra.length) process.stdout.write(`${extra.join('\n')}\n`);
}
