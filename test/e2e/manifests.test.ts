// Ferry's own manifests (deploy/ferry, applied with `kubectl apply -k`):
// rendered by kustomize and checked for what running Ferry in a cluster needs,
// then accepted by a real API server (server-side dry run on eu-west).
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ensureInfra, kubectlRun, REPO_ROOT } from '../support/infra.ts';

interface Obj {
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: manifests are checked field by field below
  spec?: any;
}

let objects: Obj[];
const DIR = join(REPO_ROOT, 'deploy', 'ferry');

beforeAll(async () => {
  await ensureInfra(['k8s']);
  const out = await kubectlRun('eu-west', ['kustomize', DIR]);
  expect(out.code, out.stderr).toBe(0);
  objects = parseAllDocuments(out.stdout).map((d) => d.toJSON() as Obj);
}, 600_000);

const workload = (name: string) =>
  objects.find((o) => o.metadata.name === name && /Deployment|DaemonSet/.test(o.kind));

describe('deploy/ferry', () => {
  it('runs bot, worker and watcher twice each, the node agent on every node, with budgets', () => {
    for (const name of ['ferry-bot', 'ferry-worker', 'ferry-watcher']) {
      expect(workload(name)?.kind, name).toBe('Deployment');
      expect(workload(name)?.spec.replicas, name).toBe(2);
      const pdb = objects.find((o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === name);
      expect(pdb?.spec.selector.matchLabels).toEqual(workload(name)?.spec.selector.matchLabels);
    }
    expect(workload('ferry-node-agent')?.kind).toBe('DaemonSet');
    const svc = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'ferry-bot');
    expect(svc?.spec.selector).toEqual(workload('ferry-bot')?.spec.selector.matchLabels);
  });

  it('every process: probes on /healthz and /readyz, requests and limits, scrape annotations, image from the local registry', () => {
    for (const name of ['ferry-bot', 'ferry-worker', 'ferry-watcher', 'ferry-node-agent']) {
      const pod = workload(name)?.spec.template;
      const c = pod.spec.containers[0];
      expect(c.livenessProbe.httpGet.path, name).toBe('/healthz');
      expect(c.readinessProbe.httpGet.path, name).toBe('/readyz');
      expect(c.resources.requests.memory, name).toBeTruthy();
      expect(c.resources.limits.memory, name).toBeTruthy();
      expect(pod.metadata.annotations['prometheus.io/scrape'], name).toBe('true');
      expect(pod.metadata.annotations['prometheus.io/path'], name).toBe('/metrics');
      expect(c.image, name).toBe('127.0.0.1:5000/ferry/ferry:0.1.0');
      expect(c.env.find((e: { name: string }) => e.name === 'FERRY_CONFIG')?.value).toBe(
        '/etc/ferry/ferry.yaml',
      );
      expect(c.env.find((e: { name: string }) => e.name === 'REDIS_URL')?.valueFrom.secretKeyRef.name).toBe(
        'ferry',
      );
      expect(c.securityContext.allowPrivilegeEscalation, name).toBe(false);
      expect(c.securityContext.readOnlyRootFilesystem, name).toBe(true);
    }
  });

  it('bot, worker, watcher: non-root; only the node agent documents why it is root', () => {
    for (const name of ['ferry-bot', 'ferry-worker', 'ferry-watcher']) {
      const pod = workload(name)?.spec.template.spec;
      expect(pod.securityContext.runAsNonRoot, name).toBe(true);
      expect(pod.serviceAccountName, name).toBe('ferry');
      expect(pod.containers[0].securityContext.capabilities.drop, name).toEqual(['ALL']);
    }
    const agent = workload('ferry-node-agent')?.spec.template.spec.containers[0];
    expect(agent.securityContext.runAsNonRoot).toBe(false);
  });

  it('the watcher elects a leader on Lease ferry-watcher, which its service account may get, create and update', () => {
    const env = workload('ferry-watcher')?.spec.template.spec.containers[0].env as {
      name: string;
      value?: string;
      valueFrom?: { fieldRef?: { fieldPath: string } };
    }[];
    const value = (name: string) => env.find((e) => e.name === name)?.value;
    expect(value('FERRY_LEADER_ELECTION')).toBe('1');
    expect(value('FERRY_LEADER_LEASE')).toBe('ferry-watcher');
    // the pod's own namespace, so an overlay's `namespace:` moves the Lease with the Role
    expect(env.find((e) => e.name === 'FERRY_LEADER_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath).toBe(
      'metadata.namespace',
    );
    const binding = objects.find(
      (o) => o.kind === 'RoleBinding' && o.metadata.name === 'ferry-leader-election',
    ) as Obj & { roleRef: { name: string }; subjects: { name: string; namespace: string }[] };
    expect(binding.metadata.namespace).toBe('ferry-system');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'ferry', namespace: 'ferry-system' }]);
    const role = objects.find((o) => o.kind === 'Role' && o.metadata.name === binding.roleRef.name) as Obj & {
      rules: { apiGroups: string[]; resources: string[]; resourceNames?: string[]; verbs: string[] }[];
    };
    expect(role.metadata.namespace).toBe('ferry-system');
    const granted = (verb: string) =>
      role.rules.some(
        (r) =>
          r.apiGroups.includes('coordination.k8s.io') &&
          r.resources.includes('leases') &&
          r.verbs.includes(verb) &&
          (!r.resourceNames || r.resourceNames.includes('ferry-watcher')),
      );
    for (const verb of ['get', 'create', 'update']) expect(granted(verb), verb).toBe(true);
  });

  it('tokens come from Secrets, not from the ConfigMap', () => {
    const bot = workload('ferry-bot')?.spec.template.spec.containers[0];
    for (const key of ['SLACK_BOT_TOKEN', 'SLACK_SIGNING_SECRET']) {
      expect(bot.env.find((e: { name: string }) => e.name === key)?.valueFrom.secretKeyRef.name, key).toBe(
        'ferry',
      );
    }
    const cm = objects.find((o) => o.kind === 'ConfigMap') as Obj & { data: Record<string, string> };
    expect(Object.keys(cm.data)).toEqual(['ferry.yaml']);
    expect(cm.data['ferry.yaml']).not.toMatch(/xox[bpa]-/);
  });

  it('the API server accepts it (server-side dry run on eu-west)', async () => {
    // A dry run creates nothing, so the namespace must exist for the namespaced objects: create it as
    // `kubectl apply -k` would (the Namespace object in deploy/rbac).
    const ns = await kubectlRun('eu-west', [
      'apply',
      '-f',
      join(REPO_ROOT, 'deploy', 'rbac', 'serviceaccount.yaml'),
    ]);
    expect(ns.code, ns.stderr).toBe(0);
    const dry = await kubectlRun('eu-west', ['apply', '-k', DIR, '--dry-run=server']);
    expect(dry.code, dry.stderr).toBe(0);
    const lines = dry.stdout.trim().split('\n');
    expect(lines).toHaveLength(objects.length);
    for (const line of lines) expect(line).toMatch(/\(server dry run\)$/);
  }, 120_000);
});

async function render(dir: string): Promise<Obj[]> {
  const out = await kubectlRun('eu-west', ['kustomize', join(REPO_ROOT, 'deploy', 'overlays', dir)]);
  expect(out.code, out.stderr).toBe(0);
  return parseAllDocuments(out.stdout).map((d) => d.toJSON() as Obj);
}

describe('deploy/overlays', () => {
  it('socket-mode: the bot takes the app token from the Secret, has no signing secret and no Service', async () => {
    const objs = await render('socket-mode');
    const bot = objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'ferry-bot');
    const env = bot?.spec.template.spec.containers[0].env as {
      name: string;
      valueFrom?: { secretKeyRef?: { name: string; key: string } };
    }[];
    expect(env.find((e) => e.name === 'SLACK_APP_TOKEN')?.valueFrom?.secretKeyRef).toEqual({
      name: 'ferry',
      key: 'slack-app-token',
    });
    expect(env.map((e) => e.name)).not.toContain('SLACK_SIGNING_SECRET');
    expect(objs.filter((o) => o.kind === 'Service')).toEqual([]);
  });

  it('local: on the host network, without containerPorts, probed by exec on the port each pod wrote', async () => {
    const objs = await render('local');
    for (const name of ['ferry-bot', 'ferry-worker', 'ferry-watcher', 'ferry-node-agent']) {
      const pod = objs.find((o) => o.metadata.name === name && /Deployment|DaemonSet/.test(o.kind))?.spec
        .template.spec;
      expect(pod.hostNetwork, name).toBe(true);
      const c = pod.containers[0];
      expect(c.ports, name).toBeUndefined();
      const value = (n: string) => c.env.find((e: { name: string }) => e.name === n)?.value;
      expect(value('FERRY_HEALTH_PORT'), name).toBe('0');
      expect(value('FERRY_HEALTH_PORT_FILE'), name).toBe('/tmp/health-port');
      expect(c.livenessProbe.exec.command.join(' '), name).toContain('/healthz');
      expect(c.readinessProbe.exec.command.join(' '), name).toContain('/readyz');
      expect(c.securityContext.readOnlyRootFilesystem, name).toBe(true);
    }
  });
});
