// The alert pipeline without a cluster: findings from the pod status and the
// node agent, dedupe across sources, crash-loop counts, silences, stale kills,
// the release thread — on a real redis-server.
import type { V1Pod } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FerryConfig } from '../../src/domain/config.ts';
import type { Outbound } from '../../src/domain/ports.ts';
import type { Release } from '../../src/domain/release.ts';
import type { ClusterReader } from '../../src/kube/logs.ts';
import { logger } from '../../src/logging.ts';
import { Alerter, appOf } from '../../src/watch/alerter.ts';
import { AlertDedupe } from '../../src/watch/dedupe.ts';
import { parseCgroupPath, parseOomKill } from '../../src/watch/node-agent.ts';
import { type OomFinding, oomFromEvent, oomFromPod, podRefFromKernelMessage } from '../../src/watch/oom.ts';
import { Silences } from '../../src/watch/silence.ts';
import { exampleConfig } from '../support/config.ts';
import { TestRedis } from '../support/redis.ts';

let server: TestRedis;
let redis: Redis;
beforeAll(async () => {
  server = await TestRedis.start();
  redis = new Redis(server.url);
});
afterAll(async () => {
  redis.disconnect();
  await server.stop();
});

const CID1 = 'a'.repeat(64);
const CID2 = 'b'.repeat(64);
const UID = '0f9e8d7c-1234-4abc-8def-0123456789ab';

function pod(restarts: number, lastCid: string | undefined, finishedAt = new Date()): V1Pod {
  return {
    metadata: {
      name: 'payments-6df4d5b5cd-mr87w',
      namespace: 'payments',
      uid: UID,
      labels: { app: 'payments', 'pod-template-hash': '6df4d5b5cd' },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'payments-6df4d5b5cd',
          uid: 'x',
          controller: true,
        },
      ],
    },
    spec: {
      nodeName: 'ferry-eu-west',
      containers: [
        { name: 'app', image: 'x', resources: { limits: { memory: '64Mi' }, requests: { memory: '32Mi' } } },
      ],
    },
    status: {
      phase: 'Running',
      containerStatuses: [
        {
          name: 'app',
          image: 'x',
          imageID: 'x',
          ready: true,
          restartCount: restarts,
          containerID: `containerd://${CID2}`,
          state: { running: {} },
          lastState: lastCid
            ? {
                terminated: {
                  reason: 'OOMKilled',
                  exitCode: 137,
                  containerID: `containerd://${lastCid}`,
                  finishedAt,
                },
              }
            : {},
        },
      ],
    },
  };
}

describe('OOM sources', () => {
  it('reads OOMKilled from the pod status with limit, request, restarts, node and owner', () => {
    const [f, ...rest] = oomFromPod(pod(3, CID1), 'eu-west');
    expect(rest).toHaveLength(0);
    expect(f).toMatchObject({
      source: 'pod-status',
      container: 'app',
      owner: 'payments',
      node: 'ferry-eu-west',
      restartCount: 3,
      memoryLimit: '64Mi',
      memoryRequest: '32Mi',
      occurrence: `main:${CID1}`,
      victim: 'main',
    });
    expect(oomFromPod(pod(0, undefined), 'eu-west')).toEqual([]);
  });

  it('maps cgroup paths (cgroupfs and systemd) and kill counters', () => {
    expect(
      parseCgroupPath(`/sys/fs/cgroup/memory/ferry-eu-west/kubepods/burstable/pod${UID}/${CID1}`),
    ).toEqual({
      podUid: UID,
      containerId: CID1,
    });
    const systemd = `/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replace(/-/g, '_')}.slice/cri-containerd-${CID1}.scope`;
    expect(parseCgroupPath(systemd)).toEqual({ podUid: UID, containerId: CID1 });
    expect(parseCgroupPath(`/sys/fs/cgroup/memory/kubepods/burstable/pod${UID}`)).toBeUndefined();
    expect(parseOomKill('oom_kill_disable 0\nunder_oom 0\noom_kill 3\n')).toBe(3);
    expect(parseOomKill('low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n')).toBe(2);
    expect(
      podRefFromKernelMessage(
        `oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/kubepods/burstable/pod${UID}/${CID1},task=hog`,
      ),
    ).toEqual({
      podUid: UID,
      containerId: CID1,
    });
  });

  it('reads OOM events about a pod; an event for a kill the status shows is the same occurrence', () => {
    const now = new Date();
    const ev = {
      metadata: { name: 'e1', namespace: 'payments', uid: 'ev-1' },
      involvedObject: {
        kind: 'Pod',
        name: 'payments-6df4d5b5cd-mr87w',
        namespace: 'payments',
        uid: UID,
        fieldPath: 'spec.containers{app}',
      },
      reason: 'OOMKilling',
      message: 'Memory cgroup out of memory: Killed process 4242 (hog)',
      count: 1,
      lastTimestamp: now,
      source: { host: 'ferry-eu-west' },
    };
    const known = oomFromEvent(ev, pod(1, CID1, now), 'eu-west');
    expect(known).toMatchObject({
      source: 'event',
      container: 'app',
      occurrence: `main:${CID1}`,
      memoryLimit: '64Mi',
      victim: 'main',
    });
    const other = oomFromEvent(ev, pod(0, undefined), 'eu-west');
    expect(other).toMatchObject({
      occurrence: 'event:ev-1:1',
      victim: 'unknown',
      detail: expect.stringContaining('Killed process 4242'),
    });
    expect(
      oomFromEvent({ ...ev, involvedObject: { kind: 'Node', name: 'n' } }, undefined, 'eu-west'),
    ).toBeUndefined();
  });

  it('finds the app of a namespace, and by owner where apps share one', () => {
    const c = exampleConfig();
    expect(appOf(c, { namespace: 'payments', owner: 'payments-prod' })).toBe('payments');
    expect(appOf(c, { namespace: 'nobody', owner: 'x' })).toBeUndefined();
    (c.apps.ledger as FerryConfig['apps'][string]).namespace = 'payments';
    expect(appOf(c, { namespace: 'payments', owner: 'ledger-test' })).toBe('ledger');
    expect(appOf(c, { namespace: 'payments', owner: 'ledger-prod-b' })).toBe('ledger');
    // apps sharing a namespace, an owner that is neither: not guessed
    expect(appOf(c, { namespace: 'payments', owner: 'someone-else' })).toBeUndefined();
    // Ferry's labels say it outright
    expect(appOf(c, { namespace: 'payments', owner: 'x', labels: { 'ferry.dev/app': 'ledger' } })).toBe(
      'ledger',
    );
  });
});

describe('alerter', () => {
  function setup(prefix: string, releases: Release[] = []) {
    const sent: Outbound[] = [];
    const config = exampleConfig();
    const silences = new Silences(redis, prefix);
    const noCluster = {
      streamLog: async () => {
        throw new Error('no cluster in unit tests');
      },
    } as unknown as ClusterReader;
    const alerter = new Alerter({
      config: () => config,
      announcer: { announce: async (m) => void sent.push(m) },
      releases: { active: async () => releases },
      dedupe: new AlertDedupe(redis, prefix),
      silences,
      cluster: () => noCluster,
      log: logger('test').child({}, { level: 'silent' }),
    });
    const alerts = () => sent.filter((m): m is Extract<Outbound, { kind: 'alert' }> => m.kind === 'alert');
    return { alerter, alerts, silences };
  }

  it('one kill seen by the node agent and by the pod status is one alert', async () => {
    const { alerter, alerts } = setup('a1');
    const fromStatus = oomFromPod(pod(1, CID1), 'eu-west')[0] as OomFinding;
    const fromAgent: OomFinding = { ...fromStatus, source: 'cgroup', restartCount: 0 };
    expect(await alerter.handle(fromAgent)).toBe('alerted');
    expect(await alerter.handle(fromStatus)).toBe('duplicate');
    expect(await alerter.handle(fromStatus)).toBe('duplicate'); // a re-list
    expect(alerts()).toHaveLength(1);
    const a = alerts()[0];
    expect(a).toMatchObject({
      channel: 'C_PAY_ALERTS',
      count: 1,
      silenceKey: 'oom/eu-west/payments/payments/app',
    });
    expect(a?.fields).toContainEqual(['Memory limit', '64Mi']);
    expect(a?.title).toBe('OOM kill: payments app in prod/eu-west');
  });

  it('a crash loop is one alert whose count goes up; the key stays', async () => {
    const r = { id: 'R1', app: 'payments', environment: 'prod', regions: ['eu-west'] } as Release;
    const { alerter, alerts } = setup('a2', [r]);
    for (let i = 1; i <= 4; i++) {
      const cid = String(i).repeat(64);
      const f = oomFromPod(pod(i, cid), 'eu-west')[0] as OomFinding;
      expect(await alerter.handle(f)).toBe(i === 1 ? 'alerted' : 'updated');
    }
    const list = alerts();
    expect(list.map((a) => a.count)).toEqual([1, 2, 3, 4]);
    expect(new Set(list.map((a) => a.key)).size).toBe(1);
    expect(list.every((a) => a.releaseId === 'R1')).toBe(true);
    expect(list.at(-1)?.fields).toContainEqual(['Restarts', '4']);
  });

  it('the environment comes from the pod (FERRY_ENV) and picks the release in flight for it', async () => {
    const rTest = { id: 'RT', app: 'payments', environment: 'test', regions: ['eu-west'] } as Release;
    const rProd = { id: 'RP', app: 'payments', environment: 'prod', regions: ['eu-west'] } as Release;
    const { alerter, alerts } = setup('a5', [rTest, rProd]);
    const p = pod(1, CID1);
    (p.spec?.containers[0] as { env?: { name: string; value: string }[] }).env = [
      { name: 'FERRY_ENV', value: 'test' },
    ];
    expect(await alerter.handle(oomFromPod(p, 'eu-west')[0] as OomFinding)).toBe('alerted');
    expect(alerts()[0]).toMatchObject({ releaseId: 'RT', title: 'OOM kill: payments app in test/eu-west' });
  });

  it('a child-process kill from the node agent is its own alert', async () => {
    const { alerter, alerts } = setup('a3');
    const base = oomFromPod(pod(0, CID1), 'eu-west')[0] as OomFinding;
    const child: OomFinding = { ...base, source: 'cgroup', victim: 'child', occurrence: `cgroup:${CID2}:1` };
    expect(await alerter.handle(child)).toBe('alerted');
    expect(alerts()[0]?.title).toContain('a child process');
    expect(alerts()[0]?.fields).toContainEqual(['Detected by', 'node agent (memory cgroup oom_kill)']);
  });

  it('silenced: counted, not announced; stale and unmanaged kills are ignored', async () => {
    const { alerter, alerts, silences } = setup('a4');
    await silences.silence('oom/eu-west/payments/payments/app', 60_000, 'U_ALICE');
    expect(await alerter.handle(oomFromPod(pod(1, CID1), 'eu-west')[0] as OomFinding)).toBe('silenced');
    const old = oomFromPod(pod(1, CID2, new Date(Date.now() - 3_600_000)), 'eu-west')[0] as OomFinding;
    expect(await alerter.handle(old)).toBe('stale');
    const elsewhere = { ...(oomFromPod(pod(1, CID2), 'eu-west')[0] as OomFinding), namespace: 'kube-system' };
    expect(await alerter.handle(elsewhere)).toBe('unmanaged');
    expect(alerts()).toHaveLength(0);
  });
});
