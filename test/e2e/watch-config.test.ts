// The watcher follows the config on the real eu-west cluster: a namespace an
// app added to the config directory brings is listed and watched without a
// restart, and removing the app stops the watches of its namespace.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LiveConfig } from '../../src/config/live.ts';
import { logger } from '../../src/logging.ts';
import { QueueAnnouncer } from '../../src/queue/announcer.ts';
import { ReleaseStore } from '../../src/store/releases.ts';
import { startWatch, type WatchHandle } from '../../src/watch/watcher.ts';
import { EXAMPLE_CONFIG_PATH } from '../support/config.ts';
import { ensureInfra, newNamespace, type TestNamespace, waitFor } from '../support/infra.ts';
import { TestRedis } from '../support/redis.ts';

let server: TestRedis;
let store: Redis;
let queueConn: Redis;
let announcer: QueueAnnouncer;
let ns: TestNamespace;
let live: LiveConfig;
let watch: WatchHandle;
let dir: string;
const prefix = `wc${Date.now().toString(36)}`;

const teamFile = (namespace: string) =>
  [
    'apps:',
    '  watched:',
    '    repo: https://git.example.com/watched.git',
    '    stack: shell',
    '    channels: { releases: C_RELEASES, alerts: C_PAY_ALERTS }',
    '    defaultEnvironment: test',
    `    namespace: ${namespace}`,
    '',
  ].join('\n');

beforeAll(async () => {
  await ensureInfra(['redis', 'k8s']);
  server = await TestRedis.start();
  store = new Redis(server.url);
  queueConn = new Redis(server.url, { maxRetriesPerRequest: null });
  announcer = new QueueAnnouncer(queueConn, prefix);
  ns = await newNamespace('eu-west', 'watchcfg');
  dir = mkdtempSync(join(tmpdir(), 'ferry-watch-config-'));
  writeFileSync(join(dir, '00-platform.yaml'), readFileSync(EXAMPLE_CONFIG_PATH, 'utf8'));
  live = LiveConfig.load(dir, { debounceMs: 100, pollMs: 0 }).watch();
  watch = startWatch({
    config: live.get,
    redis: store,
    prefix,
    announcer,
    releases: new ReleaseStore(store, prefix),
    log: logger('watch-config-test').child({}, { level: 'warn' }),
    regions: ['eu-west'],
    configChanges: (listener) => live.onChange(listener),
  });
  await watch.ready;
}, 600_000);

afterAll(async () => {
  await watch?.stop();
  live?.close();
  await ns?.remove().catch(() => {});
  await announcer?.close();
  store?.disconnect();
  queueConn?.disconnect();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const watched = () => watch.watches.map((w) => w.name);

it('watches the namespace of an app added to the config, and stops when the app is removed', async () => {
  expect(watched()).not.toContain(`eu-west/pods/${ns.name}`);
  writeFileSync(join(dir, 'team-watched.yaml'), teamFile(ns.name));
  await waitFor(async () => watched().includes(`eu-west/pods/${ns.name}`), {
    timeoutMs: 30_000,
    what: 'a pod watch on the added namespace',
  });
  // the new watches have listed the namespace on the API server
  await watch.settled();
  expect(watched()).toContain(`eu-west/events/${ns.name}`);
  // the running watches of the other namespaces were kept, not restarted
  expect(watched()).toContain('eu-west/pods/payments');

  rmSync(join(dir, 'team-watched.yaml'));
  await waitFor(async () => !watched().includes(`eu-west/pods/${ns.name}`), {
    timeoutMs: 30_000,
    what: 'the watch of the removed namespace stopped',
  });
  expect(watched()).toContain('eu-west/pods/payments');
});
