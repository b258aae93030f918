import { userInfo } from 'node:os';
import {
  asUser,
  fromKubeconfig,
  RetrospectiveClient,
  withToken,
  type Credentials,
} from '@retrospective/client';

export interface ConnectionFlags {
  readonly url?: string | undefined;
  readonly user?: string | undefined;
  readonly token?: string | undefined;
  readonly kubeconfig?: string | undefined;
  readonly context?: string | undefined;
}

/** Where `make run` serves. */
export const defaultUrl = 'http://localhost:9090';

/**
 * The service's address and your identity, first from flags, then from the environment
 * (RETROSPECTIVE_URL, RETROSPECTIVE_TOKEN, RETROSPECTIVE_USER), then from the kubeconfig
 * (--kubeconfig, --context or KUBECONFIG: its user's token, for AUTH_MODE=kubernetes), and
 * last your login name (AUTH_MODE=header, as `make run` serves).
 */
export async function connect(
  flags: ConnectionFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RetrospectiveClient> {
  const url = flags.url ?? env.RETROSPECTIVE_URL ?? defaultUrl;
  try {
    new URL(url);
  } catch {
    throw new Error(`"${url}" is not a URL: use --url http://host:port (or RETROSPECTIVE_URL).`);
  }
  return new RetrospectiveClient({
    url,
    credentials: await credentials(flags, env),
    userAgent: 'retrospective-cli',
  });
}

async function credentials(flags: ConnectionFlags, env: NodeJS.ProcessEnv): Promise<Credentials> {
  if (flags.token) return withToken(flags.token);
  if (flags.user) return asUser(flags.user);
  if (flags.kubeconfig || flags.context)
    return fromKubeconfig({ kubeconfig: flags.kubeconfig, context: flags.context });
  if (env.RETROSPECTIVE_TOKEN) return withToken(env.RETROSPECTIVE_TOKEN);
  if (env.RETROSPECTIVE_USER) return asUser(env.RETROSPECTIVE_USER);
  if (env.KUBECONFIG) return fromKubeconfig({});
  return asUser(userInfo().username);
}
