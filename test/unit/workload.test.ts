// The workload of an (app, environment, region) from the config: where it
// lives, what its pods look like, and the config check that keeps
// environments apart.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import type { FerryConfig } from '../../src/domain/config.ts';
import { expandEnvValue, placementOf, surgePods, surgeSteps, workloadOf } from '../../src/domain/workload.ts';
import { podTemplate } from '../../src/kube/rollout.ts';
import { EXAMPLE_CONFIG_PATH, exampleConfig } from '../support/config.ts';

const example = readFileSync(EXAMPLE_CONFIG_PATH, 'utf8');
const lineOf = (text: string, needle: string) => text.slice(0, text.indexOf(needle)).split('\n').length;

type Container = {
  name: string;
  env: { name: string; value?: string; valueFrom?: unknown }[];
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  readinessProbe?: unknown;
  startupProbe?: unknown;
  livenessProbe?: unknown;
  envFrom?: unknown[];
  volumeMounts?: unknown[];
  ports: unknown[];
};
type Template = {
  metadata: { labels: Record<string, string>; annotations: Record<string, string> };
  spec: { containers: Container[]; volumes?: unknown[]; terminationGracePeriodSeconds: number };
};

describe('placement: every environment has a workload of its own', () => {
  it('gives test and prod of one app different Deployments in a shared region', () => {
    const c = exampleConfig();
    const test = placementOf(c, 'payments', 'test', 'eu-west');
    const prod = placementOf(c, 'payments', 'prod', 'eu-west');
    expect(test).toMatchObject({ namespace: 'payments', name: 'payments-test', environment: 'test' });
    expect(prod).toMatchObject({ namespace: 'payments', name: 'payments-prod', environment: 'prod' });
  });

  it('expands {app}, {env} and {region}, with the environment override first', () => {
    const c = exampleConfig();
    c.workloads = { namespace: '{app}-{env}', deployment: '{app}' };
    const ledger = c.apps.ledger as FerryConfig['apps'][string];
    delete ledger.namespace;
    expect(placementOf(c, 'ledger', 'prod', 'us-east')).toMatchObject({
      namespace: 'ledger-prod',
      name: 'ledger',
    });
    ledger.environments = { prod: { deployment: 'ledger-{region}-live' } };
    expect(placementOf(c, 'ledger', 'prod', 'us-east').name).toBe('ledger-us-east-live');
    expect(placementOf(c, 'ledger', 'test', 'eu-west').name).toBe('ledger');
  });

  it('config check refuses two environments on one Deployment, at the line that names it', () => {
    const shared = example.replace(
      '    namespace: payments\n',
      '    namespace: payments\n    deployment: payments\n',
    );
    const r = parseConfig(shared, 'shared.yaml');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatchObject({
      line: lineOf(shared, 'deployment: payments'),
      path: 'apps.payments.deployment',
    });
    expect(r.problems[0]?.message).toContain('would share the Deployment payments/payments in eu-west');
  });

  it('config check refuses expanded names Kubernetes would refuse, and unknown environments', () => {
    const bad = example
      .replace('    namespace: ledger\n', '    namespace: "Ledger/../kube-system"\n')
      .replace(
        '    environments:\n      test:\n        workload: { replicas: 2 }',
        '    environments:\n      tset:\n        workload: { replicas: 2 }',
      );
    const r = parseConfig(bad, 'bad.yaml');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const paths = r.problems.map((p) => p.path);
    expect(paths).toContain('apps.ledger.namespace');
    expect(paths).toContain('apps.payments.environments.tset');
    expect(r.problems.find((p) => p.path === 'apps.ledger.namespace')?.message).toContain('DNS-1123');
  });
});

describe('workload: the pod spec from the config', () => {
  it('layers Ferry defaults, the app and the environment', () => {
    const c = exampleConfig();
    const prod = workloadOf(c, 'billing', 'prod');
    const test = workloadOf(c, 'billing', 'test');
    expect(prod.replicas).toBe(4);
    expect(test.replicas).toBe(3);
    // the environment raises the limit; the app's request stays
    expect(prod.resources).toEqual({ requests: { cpu: '50m', memory: '256Mi' }, limits: { memory: '2Gi' } });
    expect(test.resources.limits.memory).toBe('1Gi');
    // an app without a workload gets the sample app's contract
    expect(workloadOf(c, 'checkout', 'test').probes.readiness?.httpGet).toEqual({
      path: '/ready',
      port: 8080,
    });
  });

  it('derives -Xmx from the memory limit', () => {
    expect(
      expandEnvValue('-Xmx{memoryLimitMiB:75%}m', { resources: { requests: {}, limits: { memory: '2Gi' } } }),
    ).toBe('-Xmx1536m');
    expect(
      expandEnvValue('{memoryLimitMiB}', { resources: { requests: {}, limits: { memory: '512Mi' } } }),
    ).toBe('512');
    // no limit: left as written, so the mistake is visible in the pod
    expect(expandEnvValue('-Xmx{memoryLimitMiB:75%}m', { resources: { requests: {}, limits: {} } })).toBe(
      '-Xmx{memoryLimitMiB:75%}m',
    );
  });

  it('turns the workload into a pod template a platform engineer would write', () => {
    const c = exampleConfig();
    const t = placementOf(c, 'billing', 'prod', 'eu-west');
    const tpl = podTemplate(
      t,
      'a',
      'reg/billing@sha256:1',
      'v2',
      workloadOf(c, 'billing', 'prod'),
    ) as Template;
    const ctr = tpl.spec.containers[0] as Container;
    expect(ctr.name).toBe('billing');
    expect(ctr.env).toContainEqual({ name: 'JAVA_OPTS', value: '-Xmx1536m -XX:+ExitOnOutOfMemoryError' });
    expect(ctr.env).toContainEqual({
      name: 'DB_PASSWORD',
      valueFrom: { secretKeyRef: { name: 'billing-db', key: 'password', optional: true } },
    });
    expect(ctr.env.slice(0, 3).map((e) => e.name)).toEqual(['FERRY_ENV', 'FERRY_APP', 'FERRY_VERSION']);
    expect(ctr.envFrom).toEqual([{ configMapRef: { name: 'billing-settings', optional: true } }]);
    expect(ctr.resources).toEqual({ requests: { cpu: '50m', memory: '256Mi' }, limits: { memory: '2Gi' } });
    expect(ctr.startupProbe).toMatchObject({ httpGet: { path: '/ready', port: 8080 }, failureThreshold: 30 });
    expect(ctr.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 8080 } });
    expect(ctr.volumeMounts).toEqual([{ name: 'tomcat-logs', mountPath: '/usr/local/tomcat/logs' }]);
    expect(tpl.spec.volumes).toEqual([{ name: 'tomcat-logs', emptyDir: { sizeLimit: '1Gi' } }]);
    expect(tpl.spec.terminationGracePeriodSeconds).toBe(30);
    expect(tpl.metadata.labels).toMatchObject({
      team: 'payments',
      'app.kubernetes.io/name': 'billing-prod',
      'ferry.dev/app': 'billing',
      'ferry.dev/environment': 'prod',
      'ferry.dev/track': 'a',
    });
    expect(tpl.metadata.annotations['prometheus.io/scrape']).toBe('true');
  });

  it("never lets a team's labels or env override Ferry's own", () => {
    const c = exampleConfig();
    (c.apps.ledger as FerryConfig['apps'][string]).workload = {
      labels: { 'ferry.dev/environment': 'test', 'ferry.dev/track': 'b', 'app.kubernetes.io/name': 'x' },
      env: { FERRY_ENV: 'test' },
    };
    const t = placementOf(c, 'ledger', 'prod', 'eu-west');
    const tpl = podTemplate(t, 'a', 'img', 'v1', workloadOf(c, 'ledger', 'prod')) as Template;
    expect(tpl.metadata.labels).toMatchObject({
      'ferry.dev/environment': 'prod',
      'ferry.dev/track': 'a',
      'app.kubernetes.io/name': 'ledger-prod',
    });
    expect(tpl.spec.containers[0]?.env.filter((e) => e.name === 'FERRY_ENV')).toEqual([
      { name: 'FERRY_ENV', value: 'prod' },
    ]);
  });

  it('is deterministic, so re-applying a batch never restarts pods', () => {
    const c = exampleConfig();
    const t = placementOf(c, 'billing', 'prod', 'eu-west');
    const one = JSON.stringify(podTemplate(t, 'b', 'img', 'v1', workloadOf(c, 'billing', 'prod')));
    const two = JSON.stringify(podTemplate(t, 'b', 'img', 'v1', workloadOf(c, 'billing', 'prod')));
    expect(one).toBe(two);
  });

  it('bounds the surge: a count, a share of the replicas, at least one pod', () => {
    expect(surgePods('1', 4)).toBe(1);
    expect(surgePods('2', 4)).toBe(2);
    expect(surgePods('25%', 8)).toBe(2);
    expect(surgePods('25%', 2)).toBe(1);
    expect(surgePods('100%', 3)).toBe(3);
  });
});

describe('the steps inside a batch (surgeSteps)', () => {
  it('never leave fewer than the replica count, never surge past the limit, and end at the batch size', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 500 }),
        fc.integer({ min: 1, max: 50 }),
        fc.nat(),
        fc.nat(),
        (total, surge, rawCurrent, rawTarget) => {
          const target = rawTarget % (total + 1);
          const current = rawCurrent % (target + 1);
          const steps = surgeSteps(current, target, total, surge);
          let before = { next: current, old: total - current };
          for (const s of steps) {
            // While the new pods start, old and new together run at most `surge` over the total…
            expect(s.next + before.old).toBeLessThanOrEqual(total + surge);
            // …and once they are Ready the old track shrinks by as many: never below the total.
            expect(s.next + s.old).toBe(total);
            expect(s.next).toBeGreaterThanOrEqual(before.next);
            before = s;
          }
          expect(steps.at(-1)?.next).toBe(target);
          // No step is wasted: all but the last grow by the whole surge.
          expect(steps.length).toBe(Math.max(1, Math.ceil((target - current) / surge)));
        },
      ),
    );
  });

  it('a re-run of a batch already applied repeats its one last step and nothing before it', () => {
    expect(surgeSteps(2, 2, 4, 1)).toEqual([{ next: 2, old: 2 }]);
    expect(surgeSteps(0, 3, 4, 1)).toEqual([
      { next: 1, old: 3 },
      { next: 2, old: 2 },
      { next: 3, old: 1 },
    ]);
  });
});
