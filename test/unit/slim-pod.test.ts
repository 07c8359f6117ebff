// The watcher's pod index keeps projections (slimPod), not whole pods: every
// OOM source must give the same answer for the projection as for the pod.
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { environmentOfPod, oomFromEvent, oomFromPod } from '../../src/watch/oom.ts';
import { PodIndex, slimPod } from '../../src/watch/pods.ts';

const killedAt = new Date('2026-12-01T10:00:00Z');

function fullPod(): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'payments-prod-7d9f8c6b5-x2x4z',
      namespace: 'payments',
      uid: 'uid-1',
      labels: { app: 'payments', 'pod-template-hash': '7d9f8c6b5' },
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(5000) },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'payments-prod-7d9f8c6b5',
          uid: 'rs-1',
          controller: true,
        },
      ],
      managedFields: [
        { manager: 'kube-controller-manager', operation: 'Update', fieldsV1: { big: 'x'.repeat(5000) } },
      ],
    },
    spec: {
      nodeName: 'node-7',
      containers: [
        {
          name: 'app',
          image: 'registry/payments:v3',
          env: [
            { name: 'FERRY_ENV', value: 'prod' },
            { name: 'JAVA_OPTS', value: '-Xmx384m' },
          ],
          resources: { requests: { cpu: '50m', memory: '256Mi' }, limits: { memory: '512Mi', cpu: '1' } },
          volumeMounts: [{ name: 'logs', mountPath: '/var/log/app' }],
        },
        { name: 'sidecar', image: 'registry/proxy:1' },
      ],
      volumes: [{ name: 'logs', emptyDir: {} }],
    },
    status: {
      phase: 'Running',
      podIP: '10.0.0.7',
      conditions: [{ type: 'Ready', status: 'True' }],
      containerStatuses: [
        {
          name: 'app',
          image: 'registry/payments:v3',
          imageID: 'sha256:abc',
          ready: true,
          restartCount: 3,
          containerID: 'containerd://new',
          state: { running: { startedAt: killedAt } },
          lastState: {
            terminated: {
              reason: 'OOMKilled',
              exitCode: 137,
              finishedAt: killedAt,
              containerID: 'containerd://old',
            },
          },
        },
        { name: 'sidecar', image: 'registry/proxy:1', imageID: 'sha256:def', ready: true, restartCount: 0 },
      ],
    },
  };
}

describe('slimPod', () => {
  it('gives oomFromPod the same findings as the whole pod', () => {
    const pod = fullPod();
    const now = killedAt.getTime() + 1000;
    const full = oomFromPod(pod, 'eu-west', now);
    expect(full).toHaveLength(1);
    expect(oomFromPod(slimPod(pod), 'eu-west', now)).toEqual(full);
    expect(environmentOfPod(slimPod(pod))).toBe('prod');
  });

  it('gives oomFromEvent the same finding as the whole pod', () => {
    const pod = fullPod();
    const ev: CoreV1Event = {
      metadata: { name: 'e1', namespace: 'payments', uid: 'ev-1' },
      involvedObject: { kind: 'Pod', name: pod.metadata?.name, namespace: 'payments', uid: 'uid-1' },
      reason: 'OOMKilling',
      message: 'Memory cgroup out of memory: Killed process 42 (java)',
      count: 1,
      lastTimestamp: killedAt,
    };
    const now = killedAt.getTime() + 1000;
    expect(oomFromEvent(ev, slimPod(pod), 'eu-west', now)).toEqual(oomFromEvent(ev, pod, 'eu-west', now));
  });

  it('drops what the watcher never reads', () => {
    const slim = slimPod(fullPod());
    const text = JSON.stringify(slim);
    expect(text).not.toContain('managedFields');
    expect(text).not.toContain('last-applied-configuration');
    expect(text).not.toContain('JAVA_OPTS');
    expect(text).not.toContain('volumeMounts');
    expect(text.length).toBeLessThan(JSON.stringify(fullPod()).length / 10);
  });

  it('is what the index keeps', async () => {
    const index = new PodIndex();
    index.put(fullPod());
    const kept = await index.byUid('uid-1');
    expect(kept).toEqual(slimPod(fullPod()));
  });
});
