// Live config reload under a running bot (the real Bolt app through the Slack
// emulator, real Redis, in-process workers with recording runners): a team
// file added to the config directory makes a new app answer without a
// restart; a broken edit keeps the running config and is posted, with file
// and line, to the ops channel — once per content, whichever process sees it.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import type { RunningBot } from '../../src/chat/slack/app.ts';
import { startSlackBot } from '../../src/cli/bot.ts';
import type { Outbound } from '../../src/domain/ports.ts';
import { logger } from '../../src/logging.ts';
import { type RunningWorkers, startWorkers } from '../../src/queue/worker.ts';
import { createRuntime, jobContext, type Runtime, reportRefusedConfig } from '../../src/runtime.ts';
import { EXAMPLE_CONFIG_PATH } from '../support/config.ts';
import { waitForState } from '../support/lifecycle.ts';
import { RecordingRunners } from '../support/recording-runners.ts';
import { TestRedis } from '../support/redis.ts';

const SECRET = 'reload-test-signing-secret';
const BOT = 'xoxb-ferry-reload-test';
const OPS = 'C_FERRY_OPS';

const platform = `${readFileSync(EXAMPLE_CONFIG_PATH, 'utf8')}\nops:\n  channel: ${OPS}\n`;
const teamFile = (stack: string) =>
  [
    'apps:',
    '  notes:',
    '    repo: https://git.example.com/notes/notes.git',
    `    stack: ${stack}`,
    '    owners: [payments-devs]',
    '    channels: { releases: C_RELEASES, alerts: C_PAY_ALERTS }',
    '    defaultEnvironment: test',
    'rules:',
    '  - groups: [payments-devs]',
    '    apps: [notes]',
    '    actions: [request]',
    '',
  ].join('\n');

let redis: TestRedis;
let emu: SlackEmulator;
let rt: Runtime;
let workers: RunningWorkers;
let bot: RunningBot;
let dir: string;
const prefix = `cr${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  redis = await TestRedis.start();
  dir = mkdtempSync(join(tmpdir(), 'ferry-reload-'));
  writeFileSync(join(dir, '00-platform.yaml'), platform);
  emu = await SlackEmulator.start({
    signingSecret: SECRET,
    botToken: BOT,
    channels: [
      { id: 'C_RELEASES', name: 'releases' },
      { id: OPS, name: 'ferry-ops' },
    ],
  });
  rt = createRuntime({ config: dir, watchConfig: true, redisUrl: redis.url, prefix, name: 'reload-test' });
  workers = startWorkers(
    jobContext(rt, new RecordingRunners(rt.store, { stepMs: 20, replicas: 2 }, prefix), 100),
    {
      connection: rt.queue,
      prefix,
      lockDuration: 5000,
      log: logger('reload-worker').child({}, { level: 'warn' }),
    },
  );
  bot = await startSlackBot({ runtime: rt, token: BOT, signingSecret: SECRET, apiUrl: emu.apiUrl, port: 0 });
  emu.botEventsUrl = bot.url;
}, 120_000);

afterAll(async () => {
  await bot?.stop();
  await workers?.close();
  await rt?.close();
  await emu?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function release(user: string, text: string): Promise<string | undefined> {
  const before = new Set((await rt.releases.byApp('notes', 100)).map((r) => r.id));
  const answered = emu.ephemerals(user).length;
  const d = await emu.slashCommand({ userId: user, channelId: 'C_RELEASES', text });
  expect(d.acked).toBe(true);
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    const fresh = (await rt.releases.byApp('notes', 100)).find((r) => !before.has(r.id));
    if (fresh) return fresh.id;
    const answers = emu.ephemerals(user).slice(answered);
    if (answers.some((e) => e.text.includes('notes') && /unknown|no app/i.test(e.text))) return undefined;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('no answer');
}

const opsMessages = () => emu.channelMessages(OPS);

describe('config reload under a running bot', () => {
  it('answers for an app added to the config directory, without a restart', async () => {
    // not known yet: the bot says so, and its help (answered in the ack) does not list it
    const help = async () =>
      String((await emu.slashCommand({ userId: 'U_ALICE', channelId: 'C_RELEASES', text: 'help' })).body);
    expect(await help()).toMatch(/Apps: [^.]*payments/);
    expect(await help()).not.toContain('notes');
    expect(await release('U_ALICE', 'notes v1 to test')).toBeUndefined();
    writeFileSync(join(dir, 'team-notes.yaml'), teamFile('shell'));
    await emu.waitFor(() => rt.config().apps.notes, 10_000);
    // the help is worked out once per config: the new one lists the new app
    expect(await help()).toMatch(/Apps: [^.]*notes/);
    const id = await release('U_ALICE', 'notes v1 to test');
    expect(id).toBeDefined();
    const done = await waitForState(rt, id as string, 'succeeded');
    expect(done.app).toBe('notes');
  });

  it('keeps the running config on a broken edit and posts the problems to the ops channel, once per content', async () => {
    const broken = teamFile('cobol');
    writeFileSync(join(dir, 'team-notes.yaml'), broken);
    const message = await emu.waitFor(() => opsMessages()[0], 15_000);
    const line = broken.split('\n').findIndex((l) => l.includes('stack: cobol')) + 1;
    const posted = JSON.stringify(message);
    expect(posted).toContain('A config change was refused: 1 problem.');
    expect(posted).toContain(`${join(dir, 'team-notes.yaml')}:${line}: apps.notes.stack: unknown stack`);
    // the running config is the last good one: notes still releases
    expect(rt.config().apps.notes?.stack).toBe('shell');
    const id = await release('U_ALICE', 'notes v2 to test');
    expect(id).toBeDefined();
    await waitForState(rt, id as string, 'succeeded');

    // the same content read again (a touch, the periodic re-read) is not reported again …
    expect(rt.live.reload()).toMatchObject({ kind: 'refused', again: true });
    // … nor by another process (a worker, a watcher) that sees it too: the first one posted it
    const other = createRuntime({
      config: dir.concat('/00-platform.yaml'),
      redisUrl: redis.url,
      prefix,
      name: 'other',
    });
    try {
      const refused = rt.live.reload();
      if (refused.kind !== 'refused') throw new Error('expected the content to be refused');
      await reportRefusedConfig(
        { log: other.log, store: other.store, announcer: other.announcer, prefix, config: rt.config },
        refused.problems,
        refused.digest,
      );
    } finally {
      await other.close();
    }
    // a different broken content is reported
    writeFileSync(join(dir, 'team-notes.yaml'), teamFile('fortran'));
    await emu.waitFor(() => opsMessages()[1], 15_000);
    const jobs = await rt.announcer.queue.getJobs(
      ['waiting', 'prioritized', 'active', 'completed', 'delayed'],
      0,
      -1,
      true,
    );
    const toOps = jobs
      .map((j) => j.data as Outbound)
      .filter((m) => m.kind === 'message' && m.channel === OPS);
    expect(toOps).toHaveLength(2);
    expect(JSON.stringify(opsMessages()[1])).toMatch(/apps.notes.stack: unknown stack .{1,2}fortran/);
    expect(opsMessages()).toHaveLength(2);
  });
});
