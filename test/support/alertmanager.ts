import { stringify } from 'yaml';
import { get, type Manifest } from './helm.ts';

interface Matcher {
  readonly name: string;
  readonly value: string;
  readonly matchType?: string;
}

const matcher = (m: Matcher) => `${m.name}${m.matchType ?? '='}${JSON.stringify(m.value)}`;

/**
 * The Alertmanager configuration a chart AlertmanagerConfig stands for, as prometheus-operator
 * would generate it: a sub-route of the root route limited to the object's namespace, receivers
 * named `<namespace>/<name>/<receiver>`, and inhibit rules limited to the namespace too. Only the
 * fields the chart uses are translated; anything else fails loudly.
 */
export function alertmanagerConfig(amc: Manifest): string {
  const namespace = amc.metadata.namespace ?? '';
  const scope = (name: string) => `${namespace}/${amc.metadata.name}/${name}`;
  const inNamespace = `namespace=${JSON.stringify(namespace)}`;
  const route = get(amc, 'spec.route') as {
    receiver: string;
    groupBy: string[];
    groupWait: string;
    groupInterval: string;
    repeatInterval: string;
    matchers: Matcher[];
  };
  const receivers = get(amc, 'spec.receivers') as {
    name: string;
    webhookConfigs: { url?: string; sendResolved: boolean }[];
  }[];
  const inhibitRules = get(amc, 'spec.inhibitRules') as {
    sourceMatch: Matcher[];
    targetMatch: Matcher[];
    equal: string[];
  }[];
  for (const receiver of receivers)
    for (const webhook of receiver.webhookConfigs)
      if (!webhook.url) throw new Error('only webhook receivers with a url are translated');
  return stringify({
    route: {
      receiver: 'null',
      routes: [
        {
          receiver: scope(route.receiver),
          group_by: route.groupBy,
          group_wait: route.groupWait,
          group_interval: route.groupInterval,
          repeat_interval: route.repeatInterval,
          matchers: [inNamespace, ...route.matchers.map(matcher)],
        },
      ],
    },
    receivers: [
      { name: 'null' },
      ...receivers.map((r) => ({
        name: scope(r.name),
        webhook_configs: r.webhookConfigs.map((w) => ({
          url: w.url,
          send_resolved: w.sendResolved,
        })),
      })),
    ],
    inhibit_rules: inhibitRules.map((rule) => ({
      source_matchers: [inNamespace, ...rule.sourceMatch.map(matcher)],
      target_matchers: [inNamespace, ...rule.targetMatch.map(matcher)],
      equal: rule.equal,
    })),
  });
}
