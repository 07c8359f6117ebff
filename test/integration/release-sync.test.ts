// The sync step as a release uses it, on real registries: the config's
// granularity rules pick the regions, the thread shows per-region figures,
// `/release sync` copies on demand, and a region that lacks the image gets it
// back-to-source before its deploy.

import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandPorts } from '../../commands/command.ts';
import { handleCommand } from '../../commands/handle.ts';
import { type JobContext, stepIO } from '../../jobs/context.ts';
import { syncImagesJob } from '../../jobs/sync-images.ts';
import type { FerryConfig } from '../../src/domain/config.ts';
import type { Attachment, Outbound, StepIO } from '../../src/domain/ports.ts';
import type { Release } from '../../src/domain/release.ts';
import type { Operation, SyncRequest } from '../../src/ports.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import { ensureInRegion, repositoryOf, syncRunner, syncTargets } from '../../src/runners/real.ts';
import { syncVersion } from '../../src/runners/sync-service.ts';
import { ReleaseStore } from '../../src/store/releases.ts';
import { exampleConfig } from '../support/config.ts';
import { TestRedis } from '../support/redis.ts';
import {
  buildImage,
  pushImage,
  randomLayer,
  type StartedRegistry,
  skopeoInspect,
  startRegistry,
} from '../support/registry.ts';

let primary: StartedRegistry;
let eu: StartedRegistry;
let us: StartedRegistry;
let config: FerryConfig;
const host = (r: StartedRegistry) => new URL(r.url).host;

beforeAll(async () => {
  [primary, eu, us] = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
  config = exampleConfig();
  config.primaryRegistry = { url: primary.url, insecure: true, pullThrough: false };
  (config.regions['eu-west'] as FerryConfig['regions'][string]).registry = {
    url: eu.url,
    insecure: true,
    pullThrough: false,
  };
  (config.regions['us-east'] as FerryConfig['regions'][string]).registry = {
    url: us.url,
    insecure: true,
    pullThrough: false,
  };
});
afterAll(async () => {
  await Promise.all([primary?.stop(), eu?.stop(), us?.stop()]);
});

function recordingIO(): StepIO & {
  said: { text: string; extra?: { snippet?: string; file?: Attachment } }[];
} {
  const said: { text: string; extra?: { snippet?: string; file?: Attachment } }[] = [];
  return {
    said,
    signal: new AbortController().signal,
    async say(text, extra) {
      said.push({ text, ...(extra ? { extra } : {}) });
    },
  };
}

async function pushVersion(app: string, tag: string): Promise<string> {
  const img = buildImage([randomLayer(2_000_000, 'base'), randomLayer(500_000, 'app')], { label: tag });
  return pushImage(
    new RegistryClient({ name: 'primary', url: primary.url, insecure: true }),
    repositoryOf(app),
    tag,
    img,
  );
}

const release = (env: string, regions: string[]) =>
  ({ id: 'r1', app: 'payments', version: 'v1', environment: env, regions }) as Release;

describe('sync as releases use it', () => {
  it('follows the granularity rules: prod images everywhere, test images to eu-west only', () => {
    expect(syncTargets(config, release('prod', ['eu-west', 'us-east']), 'v1-prod')).toEqual([
      'eu-west',
      'us-east',
    ]);
    expect(syncTargets(config, release('test', ['eu-west']), 'v1-test')).toEqual(['eu-west']);
    const tagged = structuredClone(config);
    tagged.sync = [{ apps: ['payments'], environments: ['*'], tags: 'v*-prod', regions: ['us-east'] }];
    expect(syncTargets(tagged, release('prod', ['eu-west', 'us-east']), 'v1-prod')).toEqual(['us-east']);
    expect(syncTargets(tagged, release('prod', ['eu-west', 'us-east']), 'hotfix-prod')).toEqual([]);
  });

  it('copies a release image to its regions and reports images, bytes copied and skipped, and time per region', async () => {
    const digest = await pushVersion('payments', 'v1-prod');
    const io = recordingIO();
    const image = { image: `${host(primary)}/${repositoryOf('payments')}:v1-prod`, digest, cached: false };
    await syncRunner(config)(release('prod', ['eu-west', 'us-east']), image, io);
    const report = io.said.at(-1)?.text ?? '';
    expect(report).toMatch(/^Synced from the primary \(2\.\d MB read once\):/);
    expect(report).toMatch(/eu-west: 1 image, 2\.\d MB copied, 0\.0 MB skipped, \d/);
    expect(report).toMatch(/us-east: 1 image, 2\.\d MB copied, 0\.0 MB skipped, \d/);
    for (const r of [eu, us]) {
      expect((await skopeoInspect(`${host(r)}/${repositoryOf('payments')}:v1-prod`)).Digest).toBe(digest);
    }
    // Again: everything is there already.
    const again = recordingIO();
    await syncRunner(config)(release('prod', ['eu-west', 'us-east']), image, again);
    expect(again.said.at(-1)?.text).toMatch(/eu-west: 1 image, 0\.0 MB copied, 2\.\d MB skipped/);
  });

  it("says 'synced' once in a release's thread: the flow's sync after the pull-ahead's adds nothing, a failure is said each time", async () => {
    const digest = await pushVersion('payments', 'v4-prod');
    const image = { image: `${host(primary)}/${repositoryOf('payments')}:v4-prod`, digest, cached: false };
    const redis = await TestRedis.start();
    const conn = new Redis(redis.url);
    try {
      const announced: Outbound[] = [];
      const ctx = {
        releases: new ReleaseStore(conn, 'said-once'),
        announcer: { announce: async (m: Outbound) => void announced.push(m) },
      };
      const thread = (id: string) =>
        announced.flatMap((m) => (m.kind === 'reply' && m.releaseId === id ? [m.text] : []));
      const run = (id: string, cfg = config) =>
        syncRunner(cfg)(
          { ...release('prod', ['eu-west', 'us-east']), id },
          image,
          stepIO(ctx, id, new AbortController().signal),
        );
      await run('r-wait'); // the pull-ahead while r-wait waits for approval
      await run('r-wait'); // its flow's own sync step
      expect(thread('r-wait')).toHaveLength(1);
      expect(thread('r-wait')[0]).toMatch(/eu-west: 1 image, 2\.\d MB copied/);
      // Another release of the same image says its own (everything skipped).
      await run('r-other');
      expect(thread('r-other')).toEqual([
        expect.stringMatching(/eu-west: 1 image, 0\.0 MB copied, 2\.\d MB skipped/),
      ]);
      // A region that cannot be reached is said every time, and so is the sync that then succeeds.
      const down = structuredClone(config);
      (down.regions['us-east'] as FerryConfig['regions'][string]).registry.url = 'http://127.0.0.1:9';
      await run('r-down', down);
      await run('r-down', down);
      await run('r-down');
      await run('r-down');
      expect(thread('r-down').map((t) => (t.includes('us-east: FAILED') ? 'failed' : 'synced'))).toEqual([
        'failed',
        'failed',
        'synced',
      ]);
    } finally {
      conn.disconnect();
      await redis.stop();
    }
  });

  it('fetches a missing image back-to-source before a deploy, and says so', async () => {
    const digest = await pushVersion('payments', 'v2-test');
    const io = recordingIO();
    const image = { image: `${host(primary)}/${repositoryOf('payments')}:v2-test`, digest, cached: false };
    // The rules never sent test images to us-east; a deploy there still finds it.
    const ref = await ensureInRegion(config, 'us-east', image, io);
    expect(ref).toBe(`${host(us)}/${repositoryOf('payments')}@${digest}`);
    expect(io.said[0]?.text).toMatch(
      /^us-east: the image was missing from the region's registry; fetched it back-to-source/,
    );
    expect((await skopeoInspect(`${host(us)}/${repositoryOf('payments')}:v2-test`)).Digest).toBe(digest);
    const quiet = recordingIO();
    await ensureInRegion(config, 'us-east', image, quiet);
    expect(quiet.said).toEqual([]);
  });

  it('`/release sync` copies a built version on demand, for people allowed to', async () => {
    const digest = await pushVersion('ledger', 'v3-prod');
    const announced: Outbound[] = [];
    const versions = {
      get: async (app: string, version: string) =>
        app === 'ledger' && version === 'v3'
          ? {
              app,
              version,
              ref: 'v3',
              passed: {},
              images: {
                prod: { image: `${host(primary)}/${repositoryOf('ledger')}:v3-prod`, digest, builtAt: 0 },
              },
            }
          : undefined,
    };
    // The bot's half: the command checks the permission (domain policy) and queues the operation.
    const queued: (Operation & { id: string })[] = [];
    const ports = {
      config: () => config,
      versions,
      operations: {
        enqueue: async (op: Operation, base: string) => {
          queued.push({ ...op, id: `op-${base}` });
          return `op-${base}`;
        },
      },
    } as unknown as CommandPorts;
    const refused = await handleCommand(
      { kind: 'sync', app: 'ledger', version: 'v3', regions: [] },
      { userId: 'U_ERIN', channel: 'C1' },
      ports,
    );
    expect(refused).toMatchObject({
      ok: false,
      text: expect.stringContaining('may not sync images of ledger in prod'),
    });
    const missing = await handleCommand(
      { kind: 'sync', app: 'ledger', version: 'v9', regions: [] },
      { userId: 'U_ALICE', channel: 'C1' },
      ports,
    );
    expect(missing.text).toBe(
      'ledger v9 has not been built yet, so there is nothing to sync. Release it first.',
    );
    expect(queued).toEqual([]);
    const asked = await handleCommand(
      { kind: 'sync', app: 'ledger', version: 'v3', regions: ['us-east'] },
      { userId: 'U_ALICE', channel: 'C1' },
      ports,
    );
    expect(asked.ok).toBe(true);
    expect(queued).toHaveLength(1);
    // The worker's half: the job takes the app's lock, copies, audits and posts the report.
    const redis = await TestRedis.start();
    const conn = new Redis(redis.url);
    try {
      const store = new ReleaseStore(conn, 'sync-test');
      const ctx = {
        config: () => config,
        announcer: { announce: async (m: Outbound) => void announced.push(m) },
        locks: store,
        lifecycle: { start: async () => '' },
        operations: { sync: (req: SyncRequest) => syncVersion(config, versions, req) },
      } as unknown as JobContext;
      const op = queued[0] as Extract<Operation, { kind: 'sync' }> & { id: string };
      expect(await syncImagesJob(op, ctx)).toBe('synced');
      const report = announced.at(-1) as Extract<Outbound, { kind: 'message' }>;
      expect(report.channel).toBe('C_RELEASES');
      expect(report.text).toMatch(/v3-prod → us-east: 2\.\d MB copied/);
      expect(report.text).not.toContain('eu-west');
      const audit = await store.audit(op.id);
      expect(audit).toMatchObject([{ actor: 'U_ALICE', event: 'sync', to: 'succeeded' }]);
      // The lock was freed when the job ended.
      expect(await store.lockHolder('ledger', 'prod')).toBeNull();
    } finally {
      conn.disconnect();
      await redis.stop();
    }
    expect((await skopeoInspect(`${host(us)}/${repositoryOf('ledger')}:v3-prod`)).Digest).toBe(digest);
  });
});
