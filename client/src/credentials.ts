/**
 * Who the client is to the service: a name (AUTH_MODE=header), a bearer token, or the user of a
 * kubeconfig context (AUTH_MODE=kubernetes; exec credential plugins included).
 */
export interface Credentials {
  /** Headers that carry the identity, asked for before every request (tokens expire). */
  headers(): Promise<Record<string, string>>;
  /** Who, for messages: `user ana`, `a bearer token`, `kubeconfig context kind-kind`. */
  readonly description: string;
}

/** AUTH_MODE=header: the name sent in the `Username` header (the service's USERNAME_HEADER). */
export function asUser(user: string, header = 'Username'): Credentials {
  return { headers: () => Promise.resolve({ [header]: user }), description: `user ${user}` };
}

/** AUTH_MODE=kubernetes: a bearer token (a ServiceAccount's, or any the API server accepts). */
export function withToken(token: string): Credentials {
  return {
    headers: () => Promise.resolve({ Authorization: `Bearer ${token}` }),
    description: 'a bearer token',
  };
}

export interface KubeconfigOptions {
  /** A kubeconfig file; else KUBECONFIG, else ~/.kube/config, else the in-cluster account. */
  readonly kubeconfig?: string | undefined;
  /** A context of it; else its current context. */
  readonly context?: string | undefined;
}

/**
 * AUTH_MODE=kubernetes with the token of a kubeconfig's user, as kubectl would send it: a static
 * token, a token file, or an exec credential plugin (asked again once its token expires).
 * A user with only a client certificate has no token the service can review: that is an error
 * that says so, never a request without credentials.
 */
export async function fromKubeconfig(options: KubeconfigOptions = {}): Promise<Credentials> {
  // Loaded on demand: client-node is large, and most commands in header mode never need it.
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
  else kc.loadFromDefault();
  if (options.context) {
    if (!kc.getContextObject(options.context))
      throw new Error(`The kubeconfig has no context named ${options.context}.`);
    kc.setCurrentContext(options.context);
  }
  const context = kc.getCurrentContext();
  return {
    description: `kubeconfig context ${context}`,
    headers: async () => {
      const request: { headers: Record<string, string> } = { headers: {} };
      await kc.applyToHTTPSOptions(request);
      const authorization = request.headers.Authorization;
      if (!authorization?.startsWith('Bearer '))
        throw new Error(
          `The user of kubeconfig context ${context} has no bearer token (a client certificate cannot be passed on to the service): use a ServiceAccount token (--token, RETROSPECTIVE_TOKEN) or a context whose user has a token or an exec plugin.`,
        );
      return { Authorization: authorization };
    },
  };
}
