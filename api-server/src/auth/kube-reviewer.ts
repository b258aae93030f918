import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { kubeCall, type KubeObserver } from '@retrospective/runtime';
import type { Identity, Reviewer } from './authorizer.js';

/** Where permissions on a lock are granted: its Lease, or its `Lock` when locks are declared. */
export const leaseResource = { group: 'coordination.k8s.io', resource: 'leases' } as const;
export const lockResource = { group: 'retrospective.dev', resource: 'locks' } as const;

/**
 * TokenReview and SubjectAccessReview against the API server, on the api-server's own
 * credentials; permissions are checked on `resource` named after the lock.
 */
export function kubeReviewer(
  kubeConfig: KubeConfig,
  namespace: string,
  observe: KubeObserver,
  audiences: readonly string[] = [],
  resource: { readonly group: string; readonly resource: string } = leaseResource,
): Reviewer {
  const authn = kubeConfig.makeApiClient(AuthenticationV1Api);
  const authz = kubeConfig.makeApiClient(AuthorizationV1Api);
  return {
    reviewToken: async (token) => {
      const review = await kubeCall(
        'create_tokenreview',
        (options) =>
          authn.createTokenReview(
            {
              body: { spec: { token, ...(audiences.length ? { audiences: [...audiences] } : {}) } },
            },
            options,
          ),
        observe,
      );
      const user = review.status?.user;
      if (!review.status?.authenticated || !user?.username) return undefined;
      // The API server names the audiences the token is valid for: one of ours, or it is not for us.
      if (audiences.length && !review.status.audiences?.some((a) => audiences.includes(a)))
        return undefined;
      return {
        user: user.username,
        groups: user.groups ?? [],
        uid: user.uid,
        extra: user.extra,
      } satisfies Identity;
    },
    mayAccess: async (who, verb, lease) => {
      const review = await kubeCall(
        'create_subjectaccessreview',
        (options) =>
          authz.createSubjectAccessReview(
            {
              body: {
                spec: {
                  user: who.user,
                  groups: [...who.groups],
                  ...(who.uid ? { uid: who.uid } : {}),
                  ...(who.extra
                    ? {
                        extra: Object.fromEntries(
                          Object.entries(who.extra).map(([k, v]) => [k, [...v]]),
                        ),
                      }
                    : {}),
                  resourceAttributes: {
                    namespace,
                    verb,
                    ...resource,
                    name: lease,
                  },
                },
              },
            },
            options,
          ),
        observe,
      );
      return review.status?.allowed === true && review.status.denied !== true;
    },
  };
}
