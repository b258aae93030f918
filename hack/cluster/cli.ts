// Usage: node hack/cluster/cli.ts up|down [dir]. Prints the kubeconfig path after `up`.
import { clusterDown, clusterUp } from './cluster.ts';

const [command, dir = '.cache/cluster'] = process.argv.slice(2);
if (command === 'up') {
  const state = await clusterUp(dir);
  console.log(`control plane ready at ${state.server}; export KUBECONFIG=${state.kubeconfig}`);
} else if (command === 'down') {
  await clusterDown(dir);
  console.log(`control plane in ${dir} stopped`);
} else {
  console.error('usage: cli.ts up|down [dir]');
  process.exit(2);
}
