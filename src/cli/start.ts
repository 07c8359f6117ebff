// `ferry start`: the whole of Ferry on one machine. Brings up the local
// infrastructure (unless --no-infra), starts the Slack emulator with its chat
// console, then the bot, the worker and the watcher as separate processes —
// the same processes production runs — and prints where to go. Ctrl-C stops
// everything it started. `--chat matrix` runs the same flow on the local
// Synapse instead of the emulator (and prints how to log in with a Matrix
// client); `--chat slack,matrix` runs both, cards mirrored.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SlackEmulator } from '../../dev/slack-emulator/index.ts';
import { loadConfigOrThrow } from '../config/load.ts';
import { FERRY_REPO, ferryCache } from '../config/paths.ts';
import { appsWithoutPlace } from '../domain/config.ts';
import { platformIdOf } from '../domain/people.ts';
import { type ChatPlatform, noPlaceMessage, parseChatPlatforms } from './chat-platforms.ts';
import type { CliIO, ProcessOptions } from './io.ts';

interface SynapseJson {
  url: string;
  serverName: string;
  botUser: string;
  users: Record<string, { userId: string; password: string }>;
}

interface InfraJson {
  redis?: { url: string };
  kubernetes?: { kubeconfig: string };
}

function runInfra(args: string[], io: CliIO): Promise<number> {
  return new Promise((resolve) => {
    const p = spawn('bash', [join(FERRY_REPO, 'infra', 'infra.sh'), ...args], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    p.on('exit', (code) => resolve(code ?? 1));
    p.on('error', (err) => {
      io.err(`ferry start: ${err.message}`);
      resolve(1);
    });
  });
}

function prefixLines(name: string, stream: NodeJS.ReadableStream | null, write: (l: string) => void): void {
  let buf = '';
  stream?.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) write(`${name.padEnd(6)} | ${l}`);
  });
}

export async function run(opts: ProcessOptions, io: CliIO): Promise<number> {
  const configPath =
    opts.configPath === 'ferry.yaml' && !existsSync('ferry.yaml')
      ? join(FERRY_REPO, 'examples', 'ferry.yaml')
      : opts.configPath;
  const config = loadConfigOrThrow(configPath);
  const env: NodeJS.ProcessEnv = { ...process.env, FERRY_CONFIG: configPath };
  let platforms: ChatPlatform[];
  try {
    platforms = parseChatPlatforms(opts.chat ?? process.env.FERRY_CHAT);
  } catch (err) {
    io.err(`ferry start: ${(err as Error).message}`);
    return 2;
  }
  const homeless = appsWithoutPlace(config, platforms);
  if (homeless.length) {
    io.err(`ferry start: ${noPlaceMessage(homeless, platforms)}`);
    return 2;
  }
  const slackOn = platforms.includes('slack');
  const matrixOn = platforms.includes('matrix');
  let matrixLogin: SynapseJson | undefined;

  if (!opts.noInfra) {
    io.err(
      'ferry start: bringing up the local infrastructure (the first run builds Kubernetes; later runs only start processes)…',
    );
    // Matrix adds the local Synapse (infra/lib/synapse.sh) to the default parts.
    const parts = matrixOn ? ['redis', 'registries', 'images', 'k8s', 'synapse'] : [];
    if ((await runInfra(['up', ...parts], io)) !== 0) {
      io.err('ferry start: the infrastructure did not come up; see the log named above.');
      return 1;
    }
    const info = JSON.parse(
      readFileSync(join(process.env.FERRY_RUN_DIR ?? join(ferryCache(), 'run'), 'infra.json'), 'utf8'),
    ) as InfraJson;
    if (info.redis) env.REDIS_URL = info.redis.url;
    if (info.kubernetes) env.KUBECONFIG = info.kubernetes.kubeconfig;
    process.env.KUBECONFIG = env.KUBECONFIG;
    const { ensureNamespaces } = await import('../kube/namespaces.ts');
    const created = await ensureNamespaces(config);
    if (created.length) io.err(`ferry start: created namespaces ${created.join(', ')}`);
    if (matrixOn) {
      const synapse = JSON.parse(
        readFileSync(
          join(process.env.FERRY_RUN_DIR ?? join(ferryCache(), 'run'), 'synapse', 'synapse.json'),
          'utf8',
        ),
      ) as SynapseJson;
      Object.assign(env, {
        MATRIX_HOMESERVER_URL: synapse.url,
        MATRIX_USER: synapse.botUser,
        MATRIX_PASSWORD: synapse.users.ferry?.password ?? '',
        // The example config's rooms (#releases:ferry.local, …) are made on first start.
        MATRIX_CREATE_ROOMS: '1',
      });
      matrixLogin = synapse;
    }
  } else if (matrixOn && (!env.MATRIX_HOMESERVER_URL || !env.MATRIX_USER)) {
    io.err(
      'ferry start --no-infra --chat matrix: set MATRIX_HOMESERVER_URL, MATRIX_USER and MATRIX_PASSWORD.',
    );
    return 2;
  } else if (!env.REDIS_URL || !env.KUBECONFIG) {
    io.err(
      'ferry start --no-infra: set REDIS_URL and KUBECONFIG (and the registry URLs in the config) to your systems.',
    );
    return 2;
  }

  const port = Number(env.PORT ?? 3000);
  const consolePort = Number(env.FERRY_CONSOLE_PORT ?? 3333);
  const signingSecret = env.SLACK_SIGNING_SECRET ?? 'local-signing-secret';
  const botToken = env.SLACK_BOT_TOKEN ?? 'xoxb-local-ferry';
  // The emulator is Slack: people with a Slack id (a Matrix-only person is not in its workspace).
  const people = Object.entries(config.people).flatMap(([name, entry]) => {
    const id = platformIdOf(entry, 'slack');
    return id ? [{ id, name, realName: name[0]?.toUpperCase() + name.slice(1) }] : [];
  });
  const channelIds = new Set(
    Object.values(config.apps).flatMap((a) => (a.channels ? [a.channels.releases, a.channels.alerts] : [])),
  );
  const emulator = !slackOn
    ? undefined
    : await SlackEmulator.start({
        port: consolePort,
        signingSecret,
        botToken,
        botEventsUrl: `http://127.0.0.1:${port}/slack/events`,
        users: people,
        channels: [...channelIds].map((id) => ({
          id,
          name: id.replace(/^C_/, '').toLowerCase().replace(/_/g, '-'),
        })),
      });
  if (emulator)
    Object.assign(env, {
      SLACK_API_URL: emulator.apiUrl,
      SLACK_SIGNING_SECRET: signingSecret,
      SLACK_BOT_TOKEN: botToken,
      PORT: String(port),
    });
  delete env.SLACK_APP_TOKEN;

  const children: ChildProcess[] = [];
  const start = (name: string, args: string[]) => {
    const child = spawn(
      process.execPath,
      [join(FERRY_REPO, 'bin', 'ferry.mjs'), ...args, '--config', configPath],
      {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    prefixLines(name, child.stdout, io.out);
    prefixLines(name, child.stderr, io.out);
    child.on('exit', (code, signal) => {
      if (!stopping) io.err(`ferry start: ${name} exited (${signal ?? code}); stopping everything.`);
      if (!stopping) void stop(1);
    });
    children.push(child);
  };
  let stopping = false;
  let done: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => {
    done = resolve;
  });
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    io.err('ferry start: stopping…');
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null) return resolve();
            const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
            c.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    await emulator?.close();
    if (!opts.noInfra && process.env.FERRY_KEEP_INFRA !== '1') await runInfra(['down'], io);
    done(code);
  };
  process.once('SIGINT', () => void stop(0));
  process.once('SIGTERM', () => void stop(0));

  start('bot', ['bot', '--chat', platforms.join(',')]);
  start('worker', ['worker']);
  start('watch', ['watch']);

  const app = Object.keys(config.apps)[0] ?? 'payments';
  const lines = [''];
  if (emulator)
    lines.push(
      `Ferry is running. Open the chat console: ${emulator.url}`,
      `  as alice (a developer):   /release ${app} v2 to test     then   /release ${app} v2`,
      '  as bob (an approver):     click Approve on the card',
      `  a factor's plan:          /release plan ${app} v3 degraded`,
      `  logs:                     /release logs ${app} to test file gc lines 50`,
      `Bot: http://127.0.0.1:${port}/slack/events   Slack API (emulated): ${emulator.apiUrl}`,
    );
  if (matrixOn) {
    const hs = env.MATRIX_HOMESERVER_URL ?? '';
    const rooms = config.apps[app]?.rooms;
    const login = (name: string) =>
      matrixLogin?.users[name] ? `${name} / ${matrixLogin.users[name].password}` : `${name} (your password)`;
    lines.push(
      `Ferry is on Matrix: log in with any Matrix client (Element Desktop, nheko, gomuks…) — homeserver ${hs}`,
      `  as alice, ${login('alice')} (a developer); as bob, ${login('bob')} (an approver).`,
      `  join ${rooms?.releases ?? 'the releases room'} and type:   !release ${app} v2 to test     then   !release ${app} v2`,
      '  as bob: react ✅ on the card (❌ rejects), or type  !release approve <id>',
      `  answers come in a thread on your message; steps in the card's thread; OOM alerts in ${rooms?.alerts ?? "the app's alert room"}`,
      `  or by hand:  curl -s -XPOST ${hs}/_matrix/client/v3/login -d '{"type":"m.login.password","user":"alice","password":"…"}'`,
    );
  }
  lines.push('Ctrl-C stops everything.', '');
  io.out(lines.join('\n'));
  return finished;
}
