export {
  RetrospectiveClient,
  RetrospectiveError,
  sleep,
  type ClientOptions,
  type TakeOptions,
} from './client.js';
export {
  asUser,
  fromKubeconfig,
  withToken,
  type Credentials,
  type KubeconfigOptions,
} from './credentials.js';
export { Hold, type HoldOptions, type Loss } from './hold.js';
export type * from './types.js';
export type { paths, components } from './api.generated.js';
export { watch, type Watch, type WatchOptions } from './watch.js';
