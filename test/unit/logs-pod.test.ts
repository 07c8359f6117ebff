// Point 9 of issue 13: a pod named in `/release logs … pod <name>` must be the
// app's, in the environment asked for. Pods are built the way Ferry's rollout
// labels them (podTemplate), and the way other tools do (an `app` label, a
// ReplicaSet owner); the check on a real cluster is in test/e2e/logs.test.ts.
import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../commands/index.ts';
import { workloadOf } from '../../src/domain/workload.ts';
import { appTarget, podTemplate } from '../../src/kube/rollout.ts';
import { notAppPod } from '../../src/logs/read.ts';
import { exampleConfig } from '../support/config.ts';

const config = exampleConfig();

/** A pod of a Deployment, as the ReplicaSet controller makes it from the template. */
function podOf(app: string, environment: string, track: 'a' | 'b' = 'a'): V1Pod {
  const t = appTarget(config, app, environment, 'eu-west');
  const tpl = podTemplate(
    t,
    track,
    'registry/x@sha256:0',
    'v2',
    workloadOf(config, app, environment),
  ) as unknown as V1Pod;
  const deployment = track === 'a' ? t.name : `${t.name}-b`;
  return {
    ...tpl,
    metadata: {
      ...tpl.metadata,
      name: `${deployment}-7d9f8b6c5-x2x9z`,
      namespace: t.namespace,
      labels: { ...tpl.metadata?.labels, 'pod-template-hash': '7d9f8b6c5' },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: `${deployment}-7d9f8b6c5`,
          uid: 'u',
          controller: true,
        },
      ],
    },
  };
}

describe('a named pod must be the app’s, in the environment asked for', () => {
  it('takes the app’s pods on both of Ferry’s tracks', () => {
    expect(notAppPod(podOf('payments', 'prod'), 'payments-prod', 'prod', 'payments')).toBeUndefined();
    expect(notAppPod(podOf('payments', 'prod', 'b'), 'payments-prod', 'prod', 'payments')).toBeUndefined();
  });

  it('refuses another app’s pod in the same namespace, naming whose it is', () => {
    expect(notAppPod(podOf('ledger', 'prod'), 'payments-prod', 'prod', 'payments')).toBe(
      'it belongs to Deployment ledger-prod',
    );
  });

  it('refuses the app’s pod that runs for another environment', () => {
    expect(notAppPod(podOf('payments', 'test'), 'payments-prod', 'prod', 'payments')).toBe(
      'it runs for test',
    );
  });

  it('refuses pre-warm pods and bare pods that merely share the name', () => {
    const prewarm = podOf('payments', 'prod');
    prewarm.metadata = { ...prewarm.metadata, labels: { 'ferry.dev/prewarm': 'payments' } };
    expect(notAppPod(prewarm, 'payments-prod', 'prod', 'payments')).toMatch(/pre-warm/);
    const bare: V1Pod = { metadata: { name: 'payments', labels: {} } };
    expect(notAppPod(bare, 'payments-prod', 'prod', 'payments')).toBe(
      'it belongs to no deployment of the app',
    );
  });

  it('takes a pod another tool labelled app=<deployment>', () => {
    const pod: V1Pod = { metadata: { name: 'payments-x', labels: { app: 'payments-prod' } } };
    expect(notAppPod(pod, 'payments-prod', 'prod', 'payments')).toBeUndefined();
  });

  it.each(['../kube-system/x', 'x;y', 'Payments-1', `p${'a'.repeat(253)}`, '-x', 'x_y'])(
    'the parser refuses %s as a pod name before anything reaches the cluster',
    (pod) => {
      const parsed = parseCommand(`/release logs payments pod ${pod}`, { config });
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) expect(parsed.error.message).toContain('is not a pod name');
    },
  );

  it('the parser takes a real pod name', () => {
    expect(parseCommand('/release logs payments pod payments-7d9f8b6c5-x2x9z', { config }).ok).toBe(true);
  });
});
