// Logs from chat end to end on the real eu-west cluster: the GC-style log
// file read through a bounded exec, container output through the log API,
// secrets planted in both redacted before anything is posted, the snippet in
// the thread and the whole text as a file.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandPorts } from '../../commands/command.ts';
import { handleText } from '../../commands/handle.ts';
import type { LogsCommand } from '../../commands/logs.ts';
import type { FerryConfig } from '../../src/domain/config.ts';
import type { Outbound } from '../../src/domain/ports.ts';
import type { Release } from '../../src/domain/release.ts';
import { KubeLogService } from '../../src/logs/service.ts';
import { QueueAnnouncer } from '../../src/queue/announcer.ts';
import { QUEUES } from '../../src/queue/names.ts';
import { ReleaseStore } from '../../src/store/releases.ts';
import { exampleConfig } from '../support/config.ts';
import {
  ensureInfra,
  type InfraInfo,
  kubectl,
  kubectlJson,
  newNamespace,
  type TestNamespace,
  waitFor,
} from '../support/infra.ts';
import { TestRedis } from '../support/redis.ts';

type Posted = Extract<Outbound, { kind: 'reply' | 'message' }>;

let info: InfraInfo;
let server: TestRedis;
let store: Redis;
let queueConn: Redis;
let ns: TestNamespace;
let config: FerryConfig;
let announcer: QueueAnnouncer;
let notify: Queue<Outbound>;
let releases: ReleaseStore;
let service: KubeLogService;
let pod: string;
const prefix = `l${Date.now().toString(36)}`;
const PASSWORD = 'hunter2';
const AWS_KEY = 'AKIAIOSFODNN7EXAMPLE';
const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

async function posted(): Promise<Posted[]> {
  // Replies and messages wait as prioritized jobs (what a person waits for goes ahead of them).
  const jobs = await notify.getJobs(['waiting', 'prioritized', 'active', 'completed'], 0, -1, true);
  return jobs
    .sort((a, b) => Number(a.id) - Number(b.id))
    .map((j) => j.data)
    .filter((m): m is Posted => m.kind === 'reply' || m.kind === 'message');
}

const alice = { userId: 'U_ALICE', channel: 'C_RELEASES' };

beforeAll(async () => {
  info = await ensureInfra(['redis', 'registries', 'images', 'k8s']);
  server = await TestRedis.start();
  store = new Redis(server.url);
  queueConn = new Redis(server.url, { maxRetriesPerRequest: null });
  ns = await newNamespace('eu-west', 'logs');
  config = exampleConfig();
  const payments = config.apps.payments as FerryConfig['apps'][string];
  payments.namespace = ns.name;
  // the fixture below is prod's workload, made by kubectl as a team would have it
  payments.environments = { ...payments.environments, prod: { deployment: 'payments' } };
  config.redaction = [{ name: 'card', pattern: '\\b(?:\\d{4}-){3}\\d{4}\\b' }];
  announcer = new QueueAnnouncer(queueConn, prefix);
  notify = new Queue(QUEUES.notify, { connection: queueConn, prefix });
  releases = new ReleaseStore(store, prefix);
  service = new KubeLogService({ config: () => config, announcer, releases });
  await kubectl('eu-west', ['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'payments', namespace: ns.name },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'payments' } },
        template: {
          metadata: { labels: { app: 'payments' } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [
              {
                name: 'app',
                image: `${info.images.sampleApp.image}:v1`,
                resources: { limits: { memory: '64Mi' } },
              },
            ],
          },
        },
      },
    }),
  });
  pod = await waitFor(
    async () => {
      const l = await kubectlJson<{ items: { metadata: { name: string }; status: { phase: string } }[] }>(
        'eu-west',
        ['-n', ns.name, 'get', 'pods', '-l', 'app=payments'],
      );
      return l.items.find((p) => p.status.phase === 'Running')?.metadata.name;
    },
    { timeoutMs: 180_000, intervalMs: 1000, what: 'a running payments pod' },
  );
  // ferry-run writes a GC line every 2 s: wait for the first, so the file has its own lines too
  await waitFor(
    async () =>
      (await kubectl('eu-west', ['-n', ns.name, 'exec', pod, '--', 'cat', '/var/log/app/gc.log'])).includes(
        'Pause Full',
      ),
    { timeoutMs: 60_000, what: 'a GC line in gc.log' },
  );
  // secrets in the GC log (planted by a shell in the container) and in the app's output (its HTTP endpoint)
  const plant = [
    `[gc] heap dump settings password=${PASSWORD} user=ops`,
    `[gc] uploader aws_access_key_id=${AWS_KEY}`,
    `[gc] uploader aws_secret_access_key=${AWS_SECRET}`,
    '[gc] card 4111-1111-1111-1111 seen',
    '-----BEGIN PRIVATE KEY-----',
    'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7PLANTEDKEYLINE',
    '-----END PRIVATE KEY-----',
  ];
  await kubectl('eu-west', [
    '-n',
    ns.name,
    'exec',
    pod,
    '--',
    'sh',
    '-c',
    `for i in $(seq 1 300); do echo "[filler] GC($i) Pause Young 4M->2M(16M) 0.1ms"; done >> /var/log/app/gc.log; printf '%s\\n' ${plant.map((l) => `'${l}'`).join(' ')} >> /var/log/app/gc.log`,
  ]);
  await kubectl('eu-west', [
    '-n',
    ns.name,
    'exec',
    pod,
    '--',
    'wget',
    '-qO-',
    `http://127.0.0.1:8080/control/log?msg=${encodeURIComponent(`login ok password=${PASSWORD} key ${AWS_KEY}`)}`,
  ]);
}, 3_600_000);

afterAll(async () => {
  await ns?.remove().catch(() => {});
  await notify?.close();
  await announcer?.close();
  store?.disconnect();
  queueConn?.disconnect();
  await server?.stop();
});

describe('logs from chat on a real cluster', () => {
  it('the GC log: snippet in the channel, the whole file attached, planted secrets redacted', async () => {
    const cmd: LogsCommand = { kind: 'logs', app: 'payments', file: 'gc', lines: 1000 };
    const reply = await service.read(cmd, alice);
    expect(reply.ok, reply.text).toBe(true);
    expect(reply.visibility).toBe('ephemeral');
    expect(reply.text).toContain('<#C_RELEASES>');
    const msg = (await posted()).at(-1) as Posted;
    expect(msg.kind).toBe('message');
    expect(msg.kind === 'message' && msg.channel).toBe('C_RELEASES');
    const file = msg.file?.text ?? '';
    expect(file).toContain('[filler] GC(1) Pause Young');
    expect(file).toContain('Pause Full (System.gc())'); // ferry-run's own GC lines
    expect(file).toContain('[gc] heap dump settings password=[REDACTED] user=ops');
    expect(file).toContain('[REDACTED PRIVATE KEY]');
    expect(file).toContain('[REDACTED:card]');
    for (const secret of [PASSWORD, AWS_KEY, AWS_SECRET, 'PLANTEDKEYLINE', '4111-1111']) {
      expect(file).not.toContain(secret);
      expect(msg.snippet).not.toContain(secret);
      expect(msg.text).not.toContain(secret);
    }
    expect(msg.snippet?.length).toBeLessThanOrEqual(3000);
    expect(msg.snippet?.split('\n').length).toBeLessThanOrEqual(40);
    expect(msg.file?.name).toMatch(/^payments-prod-eu-west-.*-gc\.log$/);
    expect(msg.text).toContain('secrets redacted');
  });

  it('container output with lines and grep, in the thread of the release in flight', async () => {
    const release: Release = {
      id: 'R-LOGS-1',
      app: 'payments',
      version: 'v1',
      environment: 'prod',
      regions: ['eu-west'],
      factors: [],
      plan: {} as Release['plan'],
      requestedBy: 'U_ALICE',
      requestedAt: Date.now(),
      state: 'deploying',
      stateSince: Date.now(),
      approvals: [],
      rev: 1,
      thread: { channel: 'C_RELEASES', ts: '1.000' },
    };
    await releases.create(release, 'test');
    const reply = await service.read({ kind: 'logs', app: 'payments', lines: 200, grep: 'login ok' }, alice);
    expect(reply.ok, reply.text).toBe(true);
    expect(reply.releaseId).toBe(release.id);
    expect(reply.text).toContain('thread of release R-LOGS-1');
    const msg = (await posted()).at(-1) as Posted;
    expect(msg).toMatchObject({ kind: 'reply', releaseId: release.id });
    expect(msg.file?.text).toContain('login ok password=[REDACTED] key [REDACTED AWS KEY]');
    expect(msg.file?.text.trim().split('\n')).toHaveLength(1);
    expect(msg.file?.text).not.toContain(PASSWORD);
    // the whole output, access log included (the secret went there URL-encoded)
    const all = await service.read({ kind: 'logs', app: 'payments', lines: 500 }, alice);
    expect(all.ok, all.text).toBe(true);
    const whole = (await posted()).at(-1) as Posted;
    expect(whole.file?.text).toContain('/control/log?msg=');
    for (const secret of [PASSWORD, AWS_KEY]) expect(whole.file?.text).not.toContain(secret);
  });

  it('a log larger than the byte cap is streamed and capped: the newest part is kept', async () => {
    config.limits.logBytes = 4096;
    try {
      const reply = await service.read({ kind: 'logs', app: 'payments', file: 'gc', lines: 5000 }, alice);
      expect(reply.ok, reply.text).toBe(true);
      const msg = (await posted()).at(-1) as Posted;
      expect(Buffer.byteLength(msg.file?.text ?? '')).toBeLessThanOrEqual(4096 + 1);
      expect(msg.file?.text).toContain('[REDACTED PRIVATE KEY]'); // near the end of the file
      expect(msg.file?.text).not.toContain('GC(1) Pause Young'); // the start fell off
      expect(msg.text).toMatch(/earlier left out: 5000-line \/ 4096-byte cap/);
    } finally {
      config.limits.logBytes = 5_000_000;
    }
  });

  it('refuses without permission, and says what is wrong for an unknown pod', async () => {
    const before = (await posted()).length;
    // The command checks the permission (the domain policy) before the log service is asked at all.
    const ports = { config: () => config, logs: service } as unknown as CommandPorts;
    const denied = await handleText('logs payments', { userId: 'U_ERIN', channel: 'C_RELEASES' }, ports);
    expect(denied.ok).toBe(false);
    expect(denied.text).toContain('may not read the logs of payments');
    const nopod = await service.read({ kind: 'logs', app: 'payments', pod: 'nope' }, alice);
    expect(nopod.ok).toBe(false);
    expect(nopod.text).toContain(pod);
    expect((await posted()).length).toBe(before);
  });

  it('refuses a named pod that is not the app’s, or runs for another environment, naming the app’s pods', async () => {
    // Two pods in payments' namespace: another app's, and one of payments that says it runs for test.
    const bare = (name: string, labels: Record<string, string>) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns.name, labels },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'app', image: `${info.images.sampleApp.image}:v1` }],
      },
    });
    await kubectl('eu-west', ['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          bare('intruder-1', { app: 'intruder' }),
          // payments' test workload (its own Deployment name, payments-test), as Ferry labels it
          bare('payments-test-1', {
            app: 'payments-test',
            'ferry.dev/app': 'payments',
            'ferry.dev/environment': 'test',
          }),
        ],
      }),
    });
    const before = (await posted()).length;
    const foreign = await service.read({ kind: 'logs', app: 'payments', pod: 'intruder-1' }, alice);
    expect(foreign.ok).toBe(false);
    expect(foreign.text).toContain('"intruder-1" is not a pod of payments in prod');
    expect(foreign.text).toContain(pod);
    const otherEnv = await service.read({ kind: 'logs', app: 'payments', pod: 'payments-test-1' }, alice);
    expect(otherEnv.ok).toBe(false);
    expect(otherEnv.text).toContain('it runs for test');
    // The refusal lists the app's pods in the environment asked for, never the others.
    expect(otherEnv.text).not.toMatch(/intruder-1|Pods of payments there: .*payments-test-1/);
    // …and the same pod is readable when asked for in its own environment.
    const ownEnv = await service.read(
      { kind: 'logs', app: 'payments', environment: 'test', pod: 'payments-test-1' },
      alice,
    );
    expect(ownEnv.text).not.toContain('is not a pod of payments');
    expect((await posted()).length).toBe(before + (ownEnv.ok ? 1 : 0));
    // Without a pod named, the newest pod read is still the app's in prod: once the test pod runs (it
    // is the newest, and labelled app=payments), it must not be picked for prod.
    await waitFor(
      async () =>
        (
          await kubectlJson<{ status: { phase: string } }>('eu-west', [
            '-n',
            ns.name,
            'get',
            'pod',
            'payments-test-1',
          ])
        ).status.phase === 'Running',
      { timeoutMs: 120_000, intervalMs: 1000, what: 'payments-test-1 running' },
    );
    const newest = await service.read({ kind: 'logs', app: 'payments' }, alice);
    expect(newest.ok, newest.text).toBe(true);
    expect(newest.text).toContain(`from \`${pod}\``);
  });
});
