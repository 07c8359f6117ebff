// The real Bolt app (ferry bot) driven through the Slack emulator, on a real
// Redis with in-process workers and recording runners, in HTTP mode and in
// Socket Mode. Assertions are about what people in the workspace see.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import type { StoredMessage } from '../../dev/slack-emulator/types.ts';
import type { RunningBot } from '../../src/chat/slack/app.ts';
import { startSlackBot } from '../../src/cli/bot.ts';
import type { Outbound } from '../../src/domain/ports.ts';
import { type Harness, harness, waitForState } from '../support/lifecycle.ts';
import { TestRedis } from '../support/redis.ts';

const SECRET = 'bot-test-signing-secret';
const BOT = 'xoxb-ferry-bot-test';
const APP = 'xapp-1-A_FERRY-bot-test';
const CH = 'C_RELEASES';

type Mode = 'http' | 'socket';

interface Env {
  redis: TestRedis;
  emu: SlackEmulator;
  h: Harness;
  bot: RunningBot;
}

async function setup(redis: TestRedis, mode: Mode): Promise<Env> {
  const emu = await SlackEmulator.start({
    signingSecret: SECRET,
    botToken: BOT,
    ...(mode === 'socket' ? { appToken: APP } : {}),
  });
  const h = harness(redis.url);
  h.startWorkers();
  const bot = await startSlackBot({
    runtime: h.rt,
    token: BOT,
    signingSecret: SECRET,
    ...(mode === 'socket' ? { appToken: APP, socketMode: true } : {}),
    apiUrl: emu.apiUrl,
    port: 0,
  });
  if (mode === 'http') emu.botEventsUrl = bot.url;
  else await emu.waitForSocket();
  return { redis, emu, h, bot };
}

const blockIds = (m: StoredMessage | undefined) => (m?.blocks ?? []).map((b) => String(b['block_id']));
const actionIds = (m: StoredMessage | undefined) =>
  (m?.blocks ?? [])
    .filter((b) => b['type'] === 'actions')
    .flatMap((b) => (b['elements'] as { action_id: string }[]).map((e) => e.action_id));
const flat = (m: StoredMessage | undefined) => JSON.stringify(m?.blocks ?? []);

/** The card (top-level message) of a release, found by its footer/button values. */
function cardsOf(emu: SlackEmulator, id: string): StoredMessage[] {
  return emu
    .channelMessages(CH)
    .filter((m) => m.subtype !== 'thread_broadcast' && flat(m).includes(`"${id} ·`));
}

async function cardOf(emu: SlackEmulator, id: string, pred: (m: StoredMessage) => boolean = () => true) {
  return emu.waitFor(() => {
    const cards = cardsOf(emu, id);
    return cards.length === 1 && pred(cards[0] as StoredMessage) ? cards[0] : undefined;
  }, 30_000);
}

async function notifyJobs(h: Harness): Promise<{ id: number; data: Outbound }[]> {
  const jobs = await h.rt.announcer.queue.getJobs(
    ['waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized'],
    0,
    -1,
    true,
  );
  return jobs.map((j) => ({ id: Number(j.id), data: j.data as Outbound })).sort((a, b) => a.id - b.id);
}

async function idle(h: Harness): Promise<void> {
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    const c = await h.rt.announcer.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    if (Object.values(c).every((n) => n === 0)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('notify queue did not drain');
}

async function request(env: Env, user: string, text: string): Promise<string> {
  const app = text.split(' ')[0] as string;
  const before = new Set((await env.h.rt.releases.byApp(app, 100)).map((r) => r.id));
  const d = await env.emu.slashCommand({ userId: user, channelId: CH, text });
  expect(d.acked).toBe(true);
  return newRelease(env, app, before);
}

async function newRelease(env: Env, app: string, before: Set<string>): Promise<string> {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    const fresh = (await env.h.rt.releases.byApp(app, 100)).find((r) => !before.has(r.id));
    if (fresh) return fresh.id;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no new release of ${app}`);
}

let redis: TestRedis;
beforeAll(async () => {
  redis = await TestRedis.start();
});
afterAll(async () => {
  await redis?.stop();
});

for (const mode of ['http', 'socket'] as const) {
  describe(`ferry bot over ${mode === 'http' ? 'HTTP' : 'Socket Mode'}`, () => {
    let env: Env;
    beforeAll(async () => {
      env = await setup(redis, mode);
    });
    afterAll(async () => {
      await env.bot.stop();
      await env.h.close();
      await env.emu.close();
    });

    it('test release: one thread, the card edited in place until succeeded', async () => {
      const { emu, h } = env;
      const id = await request(env, 'U_ALICE', 'payments v2 to test');
      const done = await waitForState(h.rt, id, 'succeeded');
      expect(done.thread?.channel).toBe(CH);
      await idle(h);
      const card = await cardOf(emu, id, (m) => flat(m).includes('succeeded'));
      expect(card.ts).toBe(done.thread?.ts);
      expect(cardsOf(emu, id)).toHaveLength(1);
      // a finished release keeps Show logs (its pods run on)
      expect(actionIds(card)).toEqual(['logs']);
      const updates = emu.calls.filter((c) => c.method === 'chat.update' && c.args['ts'] === card.ts);
      // Edited in place, never posted again; how many edits is timing (states that pass while the
      // thread's lane is busy merge into one edit).
      expect(updates.length).toBeGreaterThanOrEqual(1);
      const replies = emu.thread(CH, card.ts).slice(1);
      expect(replies.map((m) => m.text).join('\n')).toMatch(/Built \(recorded\)/);
      // The requester got an ephemeral answer, not a channel message.
      expect(emu.ephemerals('U_ALICE').some((e) => e.text.includes(id))).toBe(true);
    });

    it('prod release: plan card with Approve/Reject; refusals change nothing; Bob approves; it succeeds', async () => {
      const { emu, h } = env;
      await h.rt.versions.recordPassed('payments', 'v2', 'test');
      const id = await request(env, 'U_ALICE', 'payments v2 to prod');
      await waitForState(h.rt, id, 'awaiting-approval');
      const card = await cardOf(emu, id, (m) => actionIds(m).includes('approve'));
      expect(actionIds(card)).toEqual(['approve', 'reject']);
      expect(blockIds(card)).toEqual(
        expect.arrayContaining(['title', 'facts', 'plan', 'sources', 'approvals']),
      );
      expect(flat(card)).toContain('1 approval from *approvers*');
      expect(flat(card)).toContain('3 batches');
      expect(flat(card)).toContain('environment prod');
      // The card's thread is stored on the release just after the post: the refusals are measured from there.
      await vi.waitFor(async () => expect((await h.rt.releases.get(id))?.thread).toBeDefined());
      const rev = (await h.rt.releases.get(id))?.rev;

      // Dave is a developer, not an approver; Alice asked for it herself.
      for (const user of ['U_DAVE', 'U_ALICE']) {
        const d = await emu.clickButton({
          userId: user,
          channelId: CH,
          messageTs: card.ts,
          actionId: 'approve',
        });
        expect(d.acked).toBe(true);
        await emu.waitFor(() =>
          emu.ephemerals(user).find((e) => /approve|Approvals for/i.test(e.text) && e.text.includes(id)),
        );
      }
      expect(emu.ephemerals('U_DAVE').at(-1)?.text).toMatch(/come from group approvers/);
      const still = await h.rt.releases.get(id);
      expect(still?.state).toBe('awaiting-approval');
      expect(still?.approvals).toEqual([]);
      expect(still?.rev).toBe(rev);

      const approve = await emu.clickButton({
        userId: 'U_BOB',
        channelId: CH,
        messageTs: card.ts,
        actionId: 'approve',
      });
      expect(approve.acked).toBe(true);
      await waitForState(h.rt, id, [
        'approved',
        'building',
        'syncing',
        'deploying',
        'verifying',
        'succeeded',
      ]);
      // Slack delivers the click again: no second approval, no message.
      const again = await emu.redeliver(approve, { retryNum: 1, reason: 'http_timeout' });
      expect(again.acked).toBe(true);
      await cardOf(emu, id, (m) => flat(m).includes('Approved by <@U_BOB> at'));

      const done = await waitForState(h.rt, id, 'succeeded', 60_000);
      expect(done.approvals.map((a) => a.by)).toEqual(['U_BOB']);
      await idle(h);
      const final = await cardOf(emu, id, (m) => flat(m).includes('succeeded'));
      expect(final.ts).toBe(card.ts);
      expect(cardsOf(emu, id)).toHaveLength(1);
      expect(flat(final)).toContain('Approved by <@U_BOB> at');
      expect(flat(final)).toMatch(/batch 3\/3/);
      // Edited in place as it moved (posted waiting for approval, now succeeded). How many edits is timing:
      // an edit draws the release as it is when sent, so states that pass while its thread's lane is busy
      // merge, down to one.
      expect(final.history?.length ?? 0).toBeGreaterThanOrEqual(1);
      expect(emu.ephemerals('U_BOB')).toEqual([]);
      const audit = await h.rt.releases.audit(id);
      expect(audit.filter((a) => a.event === 'approve')).toHaveLength(1);
    });

    it('a replayed slash command (Slack retry) creates nothing new', async () => {
      const { emu, h } = env;
      await h.rt.versions.recordPassed('ledger', 'v1', 'test');
      const d = await emu.slashCommand({ userId: 'U_ALICE', channelId: CH, text: 'ledger v1 to test' });
      const id = await newRelease(env, 'ledger', new Set());
      const r1 = await emu.redeliver(d, { retryNum: 1, reason: 'http_timeout' });
      const r2 = await emu.redeliver(d, { retryNum: 2, reason: 'http_timeout' });
      expect(r1.acked && r2.acked).toBe(true);
      await waitForState(h.rt, id, 'succeeded');
      await idle(h);
      expect(await h.rt.releases.byApp('ledger', 10)).toHaveLength(1);
      expect(cardsOf(emu, id)).toHaveLength(1);
    });

    it('a bad command gets an ephemeral with the suggestion and queues nothing', async () => {
      const { emu, h } = env;
      await idle(h);
      const jobsBefore = (await notifyJobs(h)).length;
      const releasesBefore = (await h.rt.releases.active()).length;
      const msgsBefore = emu.channelMessages(CH).length;
      const d = await emu.slashCommand({ userId: 'U_ALICE', channelId: CH, text: 'paymnts v2' });
      expect(d.acked).toBe(true);
      const e = emu.ephemerals('U_ALICE').at(-1);
      expect(e?.text).toMatch(/paymnts/);
      expect(e?.text).toMatch(/payments/);
      // The answer is the handler's last act: by now anything it queued would be there.
      expect((await notifyJobs(h)).length).toBe(jobsBefore);
      expect((await h.rt.releases.active()).length).toBe(releasesBefore);
      expect(emu.channelMessages(CH).length).toBe(msgsBefore);
    });

    it('Reject opens a modal; the reason is required; submitting rejects and shows it on the card', async () => {
      const { emu, h } = env;
      await h.rt.versions.recordPassed('ledger', 'v2', 'test');
      const id = await request(env, 'U_ALICE', 'ledger v2 to prod');
      await waitForState(h.rt, id, 'awaiting-approval');
      const card = await cardOf(emu, id, (m) => actionIds(m).includes('reject'));
      // Dave may not reject someone else's release: refusal, no modal.
      await emu.clickButton({ userId: 'U_DAVE', channelId: CH, messageTs: card.ts, actionId: 'reject' });
      await emu.waitFor(() => emu.ephemerals('U_DAVE').find((e) => e.text.includes(`Rejections of ${id}`)));
      expect(emu.openView('U_DAVE')).toBeUndefined();

      await emu.clickButton({ userId: 'U_BOB', channelId: CH, messageTs: card.ts, actionId: 'reject' });
      const modal = await emu.waitFor(() => emu.openView('U_BOB'));
      expect(modal.callback_id).toBe('reject_reason');
      const bad = await emu.submitView({ userId: 'U_BOB', viewId: modal.id, values: { reason: 'no' } });
      expect(bad.response).toMatchObject({ response_action: 'errors' });
      expect((await h.rt.releases.get(id))?.state).toBe('awaiting-approval');
      const ok = await emu.submitView({
        userId: 'U_BOB',
        viewId: modal.id,
        values: { reason: 'Not during the <sale> & freeze' },
      });
      expect(ok.acked).toBe(true);
      const r = await waitForState(h.rt, id, 'rejected');
      expect(r.rejection).toMatchObject({ by: 'U_BOB', reason: 'Not during the <sale> & freeze' });
      const final = await cardOf(emu, id, (m) => flat(m).includes('Rejected by <@U_BOB>'));
      expect(flat(final)).toContain('Not during the &lt;sale&gt; &amp; freeze');
      expect(actionIds(final)).toEqual([]);
      expect(emu.openView('U_BOB')).toBeUndefined();
    });

    it('a double click approves once and answers nothing twice', async () => {
      const { emu, h } = env;
      const id = await request(env, 'U_ALICE', 'ledger v2 to prod');
      await waitForState(h.rt, id, 'awaiting-approval');
      const card = await cardOf(emu, id, (m) => actionIds(m).includes('approve'));
      const before = emu.ephemerals('U_CAROL').length;
      const click = () =>
        emu.clickButton({ userId: 'U_CAROL', channelId: CH, messageTs: card.ts, actionId: 'approve' });
      const [a, b] = await Promise.all([click(), click()]);
      expect(a.acked && b.acked).toBe(true);
      const r = await waitForState(h.rt, id, 'succeeded', 60_000);
      expect(r.approvals.map((x) => x.by)).toEqual(['U_CAROL']);
      await idle(h);
      expect(emu.ephemerals('U_CAROL').length).toBe(before);
      expect((await h.rt.releases.audit(id)).filter((x) => x.event === 'approve')).toHaveLength(1);
    });

    it('a 429 storm on chat.postMessage delays messages but loses none and keeps their order', async () => {
      const { emu, h } = env;
      await idle(h);
      const callsBefore = emu.calls.length;
      emu.inject({ method: 'chat.postMessage', status: 429, retryAfter: 1, times: 4 });
      const id = await request(env, 'U_ALICE', 'payments v3 to test');
      await waitForState(h.rt, id, 'succeeded');
      await idle(h);
      const rel = await h.rt.releases.get(id);
      const ts = rel?.thread?.ts as string;
      expect(ts).toBeTruthy();
      const limited = emu.calls
        .slice(callsBefore)
        .filter((c) => c.method === 'chat.postMessage' && c.status === 429);
      expect(limited).toHaveLength(4);
      const announced = (await notifyJobs(h))
        .filter((j) => j.data.kind === 'reply' && j.data.releaseId === id)
        .map((j) => (j.data as { text: string }).text);
      const replies = emu
        .thread(CH, ts)
        .slice(1)
        .filter((m) => !m.files?.length)
        .map((m) => m.text);
      expect(replies).toEqual(announced);
      expect(replies.length).toBeGreaterThanOrEqual(4);
      expect(cardsOf(emu, id)).toHaveLength(1);
    });

    if (mode === 'socket') {
      it('reconnects after the socket drops and keeps serving commands', async () => {
        const { emu, h } = env;
        const opened = emu.socketConnectionsOpened;
        emu.socketDrop();
        await emu.waitForSocket({ opened: opened + 1, timeoutMs: 20_000 });
        // Alice may not release checkout: the refusal reaches her over the new socket.
        const c = await emu.slashCommand({ userId: 'U_ALICE', channelId: CH, text: 'checkout v1 to test' });
        expect(c).toMatchObject({ via: 'socket', acked: true });
        await emu.waitFor(() =>
          emu.ephemerals('U_ALICE').find((e) => /may not release checkout/.test(e.text)),
        );
        const d = await emu.slashCommand({ userId: 'U_ALICE', channelId: CH, text: 'status' });
        expect(d).toMatchObject({ via: 'socket', acked: true });
        expect((await h.rt.releases.byApp('checkout', 5)).length).toBe(0);
      });
    }

    if (mode === 'http') {
      it('forged, stale or unsigned requests get 401 and change nothing', async () => {
        const { emu, h } = env;
        const before = (await h.rt.releases.byApp('checkout', 10)).length;
        const forged = await emu.slashCommand({
          userId: 'U_ALICE',
          channelId: CH,
          text: 'payments v1 to test',
          signingSecret: 'not-the-secret',
        });
        expect(forged.status).toBe(401);
        const stale = await emu.slashCommand({
          userId: 'U_ALICE',
          channelId: CH,
          text: 'payments v1 to test',
          timestamp: Math.floor(Date.now() / 1000) - 6 * 60,
        });
        expect(stale.status).toBe(401);
        const unsigned = await fetch(env.bot.url as string, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'command=%2Frelease&text=payments+v1+to+test&user_id=U_ALICE&channel_id=C_RELEASES',
        });
        expect(unsigned.status).toBe(401);
        // A signed command sent after it is answered: the bot has handled everything before it.
        const answered = env.emu.ephemerals('U_ALICE').length;
        await env.emu.slashCommand({ userId: 'U_ALICE', channelId: CH, text: 'help' });
        await env.emu.waitFor(() => env.emu.ephemerals('U_ALICE').length > answered || undefined);
        expect((await h.rt.releases.byApp('payments', 50)).some((r) => r.version === 'v1')).toBe(false);
        expect((await h.rt.releases.byApp('checkout', 10)).length).toBe(before);
      });

      it('acks a slash command well within 3 s', async () => {
        const d = await env.emu.slashCommand({ userId: 'U_ALICE', channelId: CH, text: 'status' });
        expect(d.acked).toBe(true);
        expect(d.latencyMs).toBeLessThan(1000);
        await env.emu.waitFor(() => env.emu.ephemerals('U_ALICE').find((e) => /in flight/i.test(e.text)));
      });
    }
  });
}
