// Ferry on Matrix, end to end: a real Synapse (infra/lib/synapse.sh), the real
// Matrix bot, the worker with the real runners (buildah, registry sync,
// rollouts on both local clusters), the real OOM watcher, a real Redis.
// People are Matrix users talking through the client-server API:
// - alice asks for a prod release in the releases room;
// - dave, who is no approver (and calls himself "bob"), reacts ✅: nothing changes;
// - bob reacts ✅: the release is built, synced and rolled out to completion;
// - carol, who took no part, reads the card (edited in place, batch by batch)
//   and its thread;
// - an OOM kill in the app's pods arrives in the app's alert room, and bob's
//   📜 on it brings the killed container's pod's output into its thread.
// The app names Matrix rooms and no Slack channel: a Matrix-only app.
import { Method } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningMatrixBot } from '../../src/chat/matrix/bot.ts';
import type { MatrixChat, MatrixEvent } from '../../src/chat/matrix/client.ts';
import { startMatrixChatBot } from '../../src/cli/bot.ts';
import type { FerryConfig } from '../../src/domain/config.ts';
import { platformIdOf } from '../../src/domain/people.ts';
import { ensureNamespaces } from '../../src/kube/namespaces.ts';
import { logger } from '../../src/logging.ts';
import { type RunningWorkers, startWorkers } from '../../src/queue/worker.ts';
import { realRunners } from '../../src/runners/real.ts';
import { commandServices, createRuntime, jobContext, type Runtime } from '../../src/runtime.ts';
import { localTargets } from '../../src/watch/targets.ts';
import { startWatch, type WatchHandle } from '../../src/watch/watcher.ts';
import { ensureInfra, kubectl, kubectlJson, waitFor } from '../support/infra.ts';
import { fastConfig, waitForState } from '../support/lifecycle.ts';
import { TestRedis } from '../support/redis.ts';
import { ensureSynapse, newUser, registerUser, type SynapseInfo, uniqueName } from '../support/synapse.ts';

const quiet = (name: string) => logger(name).child({}, { level: 'warn' });

let info: SynapseInfo;
let redis: TestRedis;
let rt: Runtime;
let bot: RunningMatrixBot;
let workers: RunningWorkers;
let watch: WatchHandle;
let config: FerryConfig;
let namespace: string;
let suffix: string;
const people: Record<string, Awaited<ReturnType<typeof newUser>>> = {};

const user = (name: string) => people[name] as Awaited<ReturnType<typeof newUser>>;
const bodies = (events: MatrixEvent[]) =>
  events.filter((e) => e.type === 'm.room.message').map((e) => String(e.content.body));

beforeAll(async () => {
  await ensureInfra(['redis', 'registries', 'images', 'k8s']);
  info = await ensureSynapse();
  redis = await TestRedis.start();
  suffix = uniqueName('e').slice(2);
  namespace = `mx-${suffix}`.slice(0, 63);
  const botPassword = `bot-${suffix}`;
  const botId = await registerUser(info.url, info.registrationSecret, `ferry-${suffix}`, botPassword);
  for (const name of ['alice', 'bob', 'carol', 'dave'])
    people[name] = await newUser(info.url, info.registrationSecret, `${name}-${suffix}`);
  config = fastConfig((c) => {
    // Only this run's users are on Matrix (the example's own Matrix ids are the local flow's).
    for (const [name, entry] of Object.entries(c.people)) {
      const slack = platformIdOf(entry, 'slack');
      if (slack) c.people[name] = slack;
    }
    for (const [name, u] of Object.entries(people)) {
      const slack = c.people[name] && platformIdOf(c.people[name], 'slack');
      c.people[name] = { ...(slack ? { slack } : {}), matrix: u.userId };
    }
    const payments = c.apps.payments as FerryConfig['apps'][string];
    delete payments.channels;
    payments.namespace = namespace;
    payments.workload = { ...payments.workload, replicas: 2 };
    payments.rooms = {
      releases: `#releases-${suffix}:${info.serverName}`,
      alerts: `#payments-alerts-${suffix}:${info.serverName}`,
    };
    c.apps = { payments };
    // The release starts at prod: no earlier test release needed for this test.
    delete (c.environments.prod as FerryConfig['environments'][string]).requiresPassed;
  });
  rt = createRuntime({ config, redisUrl: redis.url, name: 'matrix-e2e' });
  await ensureNamespaces(config);
  workers = startWorkers(jobContext(rt, await realRunners(rt), 250), {
    connection: rt.queue,
    log: quiet('matrix-e2e-worker'),
  });
  watch = startWatch({
    config: () => config,
    redis: rt.store,
    announcer: rt.announcer,
    releases: rt.releases,
    log: quiet('matrix-e2e-watch'),
    regions: ['eu-west'],
    nodeAgents: localTargets(config).filter((t) => t.region === 'eu-west'),
    pollMs: 250,
  });
  await watch.ready;
  bot = await startMatrixChatBot({
    runtime: rt,
    // The log reader, for the alert's 📜.
    services: { logs: (await commandServices(rt)).logs },
    homeserverUrl: info.url,
    userId: botId,
    password: botPassword,
    createRooms: true,
    log: quiet('matrix-e2e-bot'),
  });
  const payments = config.apps.payments?.rooms as { releases: string; alerts: string };
  for (const u of Object.values(people)) await u.client.join(payments.releases);
  await user('alice').client.join(payments.alerts);
}, 3_600_000);

afterAll(async () => {
  await bot?.stop();
  await watch?.stop();
  await workers?.close();
  for (const region of ['eu-west', 'us-east'])
    await kubectl(region, ['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found']).catch(
      () => {},
    );
  await rt?.close();
  await redis?.stop();
});

/** The card as a member reads it now (its latest edit), and every text it had. */
async function cardHistory(reader: MatrixChat, at: { room: string; event: string }): Promise<string[]> {
  const original = String((await reader.event(at.room, at.event)).content.body);
  const edits = await reader.relations(at.room, at.event, 'm.replace', 500);
  return [original, ...edits.map((e) => String((e.content['m.new_content'] as { body: string }).body))];
}

async function directMessages(name: string): Promise<string[]> {
  const u = user(name);
  const dm = await rt.store.get(`ferry:matrix:dm:${u.userId}`);
  if (!dm) return [];
  await u.client.join(dm);
  return bodies(await u.client.messages(dm));
}

describe('a prod release on Matrix', () => {
  it('asked by alice, approved by a ✅ from bob (not by a forged one), rolled out, read by carol; an OOM alert in the alert room', async () => {
    const rooms = config.apps.payments?.rooms as { releases: string; alerts: string };
    const releasesRoom = bot.rooms.get(rooms.releases) as string;
    const alertsRoom = bot.rooms.get(rooms.alerts) as string;
    const alice = user('alice').client;

    const ask = await alice.sendMessage(releasesRoom, { body: '!release payments v2' });
    const id = await waitFor(async () => (await rt.releases.active()).find((r) => r.app === 'payments')?.id, {
      timeoutMs: 60_000,
      what: 'the release',
    });
    // alice's answer: in a thread on her message, naming the release.
    await waitFor(
      async () =>
        (await alice.relations(releasesRoom, ask, 'm.thread')).some((e) =>
          String(e.content.body).includes(id),
        ),
      { timeoutMs: 60_000, what: "the answer to alice's command" },
    );
    const card = await waitFor(() => bot.delivery.cardOf(id), { timeoutMs: 60_000, what: 'the card' });
    const carol = user('carol').client;
    await waitFor(async () => (await cardHistory(carol, card)).at(-1)?.includes('awaiting-approval'), {
      timeoutMs: 60_000,
      what: 'the card waiting for approval',
    });

    // dave may not approve; calling himself "bob" and naming bob in the content changes nothing.
    const dave = user('dave');
    await dave.client.request(
      Method.Put,
      `/profile/${encodeURIComponent(dave.userId)}/displayname`,
      undefined,
      { displayname: 'bob' },
    );
    await dave.client.send(card.room, 'm.reaction', {
      'm.relates_to': { rel_type: 'm.annotation', event_id: card.event, key: '✅' },
      sender: user('bob').userId,
    });
    const refusal = await waitFor(
      async () => (await directMessages('dave')).find((b) => b.includes('approv')),
      {
        timeoutMs: 60_000,
        what: "Ferry's answer to dave",
      },
    );
    expect(refusal).toContain('approvers');
    const still = await rt.releases.get(id);
    expect(still?.state).toBe('awaiting-approval');
    expect(still?.approvals).toEqual([]);

    await user('bob').client.react(card.room, card.event, '✅');
    const done = await waitForState(rt, id, ['succeeded', 'failed', 'rolled-back', 'aborted'], 1_500_000);
    expect(done.state, done.error).toBe('succeeded');
    expect(done.approvals.map((a) => a.by)).toEqual(['U_BOB']);

    // carol reads the card: edited in place through the batches of both regions, to the end.
    const history = await waitFor(
      async () => {
        const h = await cardHistory(carol, card);
        return h.at(-1)?.includes('succeeded') ? h : undefined;
      },
      { timeoutMs: 120_000, what: 'the card to say succeeded' },
    );
    expect(history.at(-1)).toContain('Approved by bob');
    expect(history.some((t) => /eu-west batch \d\/3/.test(t))).toBe(true);
    expect(history.some((t) => /us-east batch \d\/3/.test(t))).toBe(true);
    // ...and its thread: the build, then each region's rollout in batches.
    const thread = await waitFor(
      async () => {
        const t = bodies(await carol.relations(card.room, card.event, 'm.thread', 500)).join('\n');
        return t.includes('us-east: all') ? t : undefined;
      },
      { timeoutMs: 120_000, what: 'the thread to reach the end' },
    );
    expect(thread).toContain('Approved by bob');
    expect(thread).toMatch(/eu-west: rolling out to 2 pods in 3 batches/);
    expect(thread).toContain('eu-west: all 2 pods on v2');
    expect(thread).toContain('us-east: all 2 pods on v2');

    // An OOM kill in one of prod's pods in eu-west: the alert comes to the app's alert room.
    const pods = await kubectlJson<{ items: { metadata: { name: string }; status: { phase: string } }[] }>(
      'eu-west',
      ['-n', namespace, 'get', 'pods', '-l', 'ferry.dev/app=payments,ferry.dev/environment=prod'],
    );
    const pod = pods.items.find((p) => p.status.phase === 'Running')?.metadata.name as string;
    expect(pod).toBeTruthy();
    await kubectl('eu-west', [
      '-n',
      namespace,
      'exec',
      pod,
      '--',
      'wget',
      '-qO-',
      'http://127.0.0.1:8080/control/oom',
    ]).catch(
      () => {}, // the connection dies with the process
    );
    const alert = await waitFor(
      async () => bodies(await alice.messages(alertsRoom)).find((b) => b.includes('OOM kill: payments')),
      { timeoutMs: 180_000, what: 'the OOM alert in the alert room' },
    );
    expect(alert).toContain('prod/eu-west');
    expect(alert).toContain(pod);
    expect(alert).toContain('react 📜 for the logs');

    // bob reacts 📜 on the alert: the killed container's pod's output comes into the alert's thread.
    const alertEvent = (await alice.messages(alertsRoom)).find(
      (e) => e.type === 'm.room.message' && String(e.content.body).includes('OOM kill: payments'),
    ) as MatrixEvent;
    await user('bob').client.join(alertsRoom);
    await user('bob').client.react(alertsRoom, alertEvent.event_id, '📜');
    const logs = await waitFor(
      async () =>
        bodies(await alice.relations(alertsRoom, alertEvent.event_id, 'm.thread')).find((b) =>
          b.includes(`of payments in prod/eu-west, pod \`${pod}\``),
        ),
      { timeoutMs: 120_000, what: "the pod's output in the alert's thread" },
    );
    expect(logs).toContain('Requested by');
  }, 3_600_000);
});
