// Slash-command ack latency of `ferry bot` (HTTP mode) against a floor: a
// minimal plain Bolt app that acks immediately and does nothing, measured in
// the same run on the same machine. Also the time from a real
// `/release … to test` to its status card appearing in the channel.
//
//   node bench/ack.ts            → bench/results/ack.json and ack.md
//
// Starts its own redis-server (free port), the Slack emulator (in this
// process: it plays Slack, sending signed requests and timing the acks), and
// the bots as child processes (`ferry bot`, `ferry worker` with recording
// runners, and the floor app), so the emulator's own work does not share an
// event loop with the bot under test.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, LogLevel } from '@slack/bolt';
import { SlackEmulator, signSlackRequest } from '../dev/slack-emulator/index.ts';
import { freePort, TestRedis } from '../test/support/redis.ts';

const SECRET = 'bench-signing-secret';
const TOKEN = 'xoxb-bench';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// ------------------------------------------------------------------ the floor (child mode)
if (process.argv[2] === '--floor') {
  const port = Number(process.argv[3]);
  const app = new App({
    token: TOKEN,
    signingSecret: SECRET,
    logLevel: LogLevel.ERROR,
    clientOptions: { slackApiUrl: process.env.SLACK_API_URL ?? '' },
  });
  app.command('/release', async ({ ack }) => {
    await ack();
  });
  await app.start(port);
  process.stderr.write('floor: ready\n');
  await new Promise<void>((resolve) => process.once('SIGTERM', resolve));
  await app.stop();
  process.exit(0);
}

// ------------------------------------------------------------------ helpers
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

interface Stats {
  n: number;
  errors: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

function stats(values: number[], errors = 0): Stats {
  const s = [...values].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    n: values.length,
    errors,
    p50: r(pct(s, 50)),
    p99: r(pct(s, 99)),
    max: r(s.at(-1) ?? Number.NaN),
    mean: r(values.reduce((a, b) => a + b, 0) / Math.max(1, values.length)),
  };
}

function startChild(
  name: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${err}`)), 30_000);
    child.stderr?.on('data', (b: Buffer) => {
      err += b.toString();
      if (ready.test(err)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited ${code}: ${err}`)));
  });
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Slack's side of the load: signed slash-command POSTs (as Slack sends them) straight from this process
 * over a keep-alive agent, `concurrency` in flight, `total` in all. response_url points at a sink here
 * that answers 200 at once, so the bot's answers cost the emulator nothing and both bots see the same
 * requests. Latency = request written → ack (HTTP response) received.
 */
const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
let sinkUrl = '';
const why = new Map<string, number>();
let seq = 0;
function post(url: string, text: string): Promise<{ ok: boolean; ms: number }> {
  const n = ++seq;
  const body = new URLSearchParams({
    token: 'bench',
    team_id: 'T0FERRY',
    team_domain: 'ferry-dev',
    channel_id: 'C_RELEASES',
    channel_name: 'releases',
    user_id: 'U_ALICE',
    user_name: 'alice',
    command: '/release',
    text,
    api_app_id: 'A_FERRY',
    is_enterprise_install: 'false',
    response_url: `${sinkUrl}/r/${n}`,
    trigger_id: `${Date.now()}.${process.pid}.${n}`,
  }).toString();
  const ts = Math.floor(Date.now() / 1000);
  const headers = {
    'content-type': 'application/x-www-form-urlencoded',
    'content-length': String(Buffer.byteLength(body)),
    'x-slack-request-timestamp': String(ts),
    'x-slack-signature': signSlackRequest(SECRET, ts, body),
  };
  return new Promise((resolve) => {
    const started = performance.now();
    const req = http.request(url, { method: 'POST', headers, agent, timeout: 3000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ok: res.statusCode === 200, ms: performance.now() - started }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => {
      why.set(err.message, (why.get(err.message) ?? 0) + 1);
      resolve({ ok: false, ms: performance.now() - started });
    });
    req.end(body);
  });
}

/** Rounds per concurrency (BENCH_ACK_ROUNDS, default 3). */
const ROUNDS = Number(process.env.BENCH_ACK_ROUNDS ?? 3);

async function load(url: string, text: string, concurrency: number, total: number) {
  const lat: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < total) {
      next++;
      const r = await post(url, text);
      if (r.ok && r.ms < 3000) lat.push(r.ms);
      else errors++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const wall = performance.now() - started;
  return { lat, errors, wall, total };
}

/** Waits until the bot has finished the work behind its acks (no answer for 500 ms), so runs do not overlap. */
async function settle(): Promise<void> {
  const until = Date.now() + 60_000;
  let last = -1;
  while (Date.now() < until && answered !== last) {
    last = answered;
    await sleep(500);
  }
}

// ------------------------------------------------------------------ the run
const t0 = Date.now();
const loadStart = os.loadavg();
let answered = 0;
const sink = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    answered++;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
});
await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;
const redis = await TestRedis.start();
const emu = await SlackEmulator.start({ signingSecret: SECRET, botToken: TOKEN, ackTimeoutMs: 3000 });
const cache = mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-'));
const prefix = `bench${Date.now().toString(36)}`;
const ferryPort = await freePort();
const floorPort = await freePort();
const env = {
  REDIS_URL: redis.url,
  FERRY_CONFIG: path.join(root, 'examples', 'ferry.yaml'),
  FERRY_CACHE: cache,
  FERRY_PREFIX: prefix,
  RECORDING_STEP_MS: '20',
  SLACK_BOT_TOKEN: TOKEN,
  SLACK_SIGNING_SECRET: SECRET,
  SLACK_API_URL: emu.apiUrl,
  LOG_LEVEL: 'warn',
};
let bot: ChildProcess | undefined;
let worker: ChildProcess | undefined;
let floor: ChildProcess | undefined;
const ack: Record<string, unknown>[] = [];
let release: Stats | undefined;
let card: Stats | undefined;
try {
  // As the image does when it is built: the bot starts from compiled code, as in a pod.
  execFileSync(process.execPath, ['bin/ferry.mjs', 'warm-cache'], { cwd: root, stdio: 'inherit' });
  [bot, worker, floor] = await Promise.all([
    startChild('ferry bot', ['bin/ferry.mjs', 'bot'], { ...env, PORT: String(ferryPort) }, /listening on/),
    startChild('ferry worker', ['test/support/recording-worker.ts'], env, /running/),
    startChild('floor', ['bench/ack.ts', '--floor', String(floorPort)], env, /ready/),
  ]);
  const targets = {
    ferry: `http://127.0.0.1:${ferryPort}/slack/events`,
    floor: `http://127.0.0.1:${floorPort}/slack/events`,
  };
  const plan: [number, number][] = [
    [1, 200],
    [50, 1000],
    [200, 2000],
  ];
  for (const url of Object.values(targets)) {
    await load(url, 'help', 200, 400); // warm-up: open the connections every run reuses
    await settle();
  }
  // Interleaved so both see the same background load, in ROUNDS rounds per concurrency with the order
  // turned each round (each run goes first once): the first run after a pause pays for reopening the
  // connections its server closed meanwhile, and one stall in a single run decides a p99. Each row
  // pools its rounds' latencies; the per-round p99s are kept too.
  const runs = [
    ['ferry', 'help'],
    ['ferry', 'status'],
    ['floor', 'help'],
  ] as const;
  for (const [c, n] of plan) {
    const pooled = new Map<
      string,
      { lat: number[]; errors: number; wall: number; total: number; p99s: number[] }
    >();
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < runs.length; k++) {
        const [target, text] = runs[(k + round) % runs.length] as (typeof runs)[number];
        // Every measured run starts with its `c` connections open: one request on each first. Without
        // it, the run that came first at a new concurrency (or after the server closed idle sockets,
        // 5 s) opened ~150 connections at once, and a 200–350 ms loopback stall in that opening, on
        // whichever bot it fell, decided the pooled p99.
        await load(targets[target], text, c, c);
        const r = await load(targets[target], text, c, n);
        const p = pooled.get(`${target} ${text}`) ?? { lat: [], errors: 0, wall: 0, total: 0, p99s: [] };
        p.lat.push(...r.lat);
        p.errors += r.errors;
        p.wall += r.wall;
        p.total += r.total;
        p.p99s.push(stats(r.lat).p99);
        pooled.set(`${target} ${text}`, p);
        if (why.size) process.stderr.write(`errors: ${JSON.stringify([...why])}\n`);
        why.clear();
        process.stderr.write(
          `${target} ${text} c=${c} round ${round + 1}: p99 ${stats(r.lat).p99} ms (${r.errors} errors)\n`,
        );
        await settle();
      }
    }
    const floor = stats(pooled.get('floor help')?.lat ?? []).p99;
    for (const [target, text] of runs) {
      const p = pooled.get(`${target} ${text}`);
      if (!p) continue;
      const st = stats(p.lat, p.errors);
      ack.push({
        target,
        text,
        concurrency: c,
        ...st,
        rps: Math.round((p.total / p.wall) * 1000),
        roundP99s: p.p99s,
        vsFloor: target === 'floor' ? 1 : Math.round((st.p99 / floor) * 100) / 100,
        loadavg1m: Math.round(os.loadavg()[0] ?? 0),
      });
    }
  }

  // Real releases: ack, and command → card in the channel.
  emu.botEventsUrl = targets.ferry;
  const ackLat: number[] = [];
  const cardLat: number[] = [];
  let errors = 0;
  for (let i = 1; i <= 25; i++) {
    const before = emu.channelMessages('C_RELEASES').length;
    const start = performance.now();
    const seen = emu.waitFor(() => emu.channelMessages('C_RELEASES').length > before || undefined, 10_000);
    const d = await emu.slashCommand({
      userId: 'U_ALICE',
      channelId: 'C_RELEASES',
      text: `payments v${i} to test`,
    });
    if (!d.acked) errors++;
    else ackLat.push(d.latencyMs);
    try {
      await seen;
      cardLat.push(performance.now() - start);
    } catch {
      errors++;
    }
  }
  release = stats(ackLat, errors);
  card = stats(cardLat);
  process.stderr.write(`release ack p50 ${release.p50} ms; card p50 ${card.p50} p99 ${card.p99} ms\n`);
} finally {
  await Promise.all([stop(bot), stop(worker), stop(floor)]);
  await emu.close();
  await redis.stop();
  sink.close();
}

const result = {
  when: new Date().toISOString(),
  loadavgAtStart: loadStart.map((x) => Math.round(x * 10) / 10),
  machine: {
    cpus: os.cpus().length,
    model: os.cpus()[0]?.model,
    node: process.version,
    platform: os.platform(),
  },
  method:
    "This process plays Slack: it sends signed slash-command POSTs (Slack's form body and v0 signature) to each bot over HTTP, `concurrent` in flight; latency = request written → HTTP ack received; a request not acked (or not within 3,000 ms) counts as not acked. The bots are child processes on the same machine, with Redis and a `ferry worker` (recording runners). ferry = `ferry bot` (Bolt HTTPReceiver; parses the command, acks, then does the work: dedupe in Redis, the command, the answer POSTed to response_url — a sink in this process). floor = a plain Bolt app whose handler only acks (no work). The Slack emulator serves the Web API (cards, ephemerals) and drives the real-release run.",
  ack,
  responseUrlPosts: answered,
  release: {
    text: '/release payments vN to test (25, one after another)',
    ack: release,
    commandToCard: card,
  },
  seconds: Math.round((Date.now() - t0) / 1000),
};
mkdirSync(path.join(root, 'bench', 'results'), { recursive: true });
writeFileSync(path.join(root, 'bench', 'results', 'ack.json'), `${JSON.stringify(result, null, 2)}\n`);
const row = (r: Record<string, unknown>) =>
  `| ${r['target']} | \`/release ${r['text']}\` | ${r['concurrency']} | ${r['n']} | ${r['p50']} | ${r['p99']} | ${(r['roundP99s'] as number[]).join(' / ')} | ${r['vsFloor']}× | ${r['max']} | ${r['rps']} | ${r['errors']} | ${r['loadavg1m']} |`;
const md = [
  '# Slash-command ack latency: `ferry bot` vs a plain Bolt app',
  '',
  `Run ${result.when} on ${result.machine.cpus} × ${result.machine.model}, Node ${result.machine.node}; ${result.seconds} s in all. The machine is shared with other work (load average ${result.loadavgAtStart.join(', ')} at the start, on ${result.machine.cpus} CPUs), so absolute figures are noisy; ferry and the floor run interleaved at each concurrency, in turned order, so they see the same background load.`,
  '',
  result.method,
  '',
  `Each row pools ${ROUNDS} rounds (the order of the three runs turned each round); "p99 per round" shows their spread; "vs floor" is the pooled p99 over the floor's at the same concurrency (target: at most 1.5×).`,
  '',
  '| bot | command | concurrent | acked | p50 ms | p99 ms | p99 per round | vs floor | max ms | req/s | not acked | load 1m |',
  '| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ...ack.map(row),
  '',
  '## Real releases',
  '',
  `25 × \`/release payments vN to test\`, one after another (each creates a release, a card and a BullMQ flow; workers run recording runners):`,
  '',
  '| measure | n | p50 ms | p99 ms | max ms |',
  '| --- | ---: | ---: | ---: | ---: |',
  `| ack | ${release?.n} | ${release?.p50} | ${release?.p99} | ${release?.max} |`,
  `| command → card in #releases | ${card?.n} | ${card?.p50} | ${card?.p99} | ${card?.max} |`,
  '',
  'Slack allows 3,000 ms for an ack. Reproduce: `node bench/ack.ts`.',
  '',
].join('\n');
writeFileSync(path.join(root, 'bench', 'results', 'ack.md'), md);
process.stdout.write(md);
process.exit(0);
