// Stacks that matter, end to end with real buildah, a real registry and real
// Redis (sync and rollout recorded): apps are built on the stack digest the
// config's tag names, the version record carries the stack and base digests,
// the stack is patched (a new image pushed under the same tag), and
// `/release rebuild stack` — typed as a person would, through the command
// handler — releases exactly the apps on the old digest, one at a time under
// a limit of 1, onto the new one.
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handleText } from '../../commands/handle.ts';
import type { CommandServices } from '../../commands/handler.ts';
import { chooseStorageDriver, storageArgs } from '../../src/build/storage.ts';
import type { FerryConfig } from '../../src/domain/config.ts';
import type { Release } from '../../src/domain/release.ts';
import { logger } from '../../src/logging.ts';
import { type RunningWorkers, startWorkers } from '../../src/queue/worker.ts';
import { buildRunner } from '../../src/runners/real.ts';
import { commandServices, createRuntime, jobContext, type Runtime } from '../../src/runtime.ts';
import {
  buildBusyboxBase,
  runInImage,
  startRegistry,
  storage,
  type TestRegistry,
  tempDir,
} from '../support/build-fixtures.ts';
import { fastConfig, waitForState } from '../support/lifecycle.ts';
import { RecordingRunners } from '../support/recording-runners.ts';
import { TestRedis } from '../support/redis.ts';

const exec = promisify(execFile);

let registry: TestRegistry;
let redis: TestRedis;
let rt: Runtime;
let workers: RunningWorkers;
let services: CommandServices;
let work: string;
let fixtureStore: string;
let stackTag: string;
let baseDigest: string;
let s1: string;

const CAROL = { userId: 'U_CAROL', channel: 'C_RELEASES' }; // platform: may release every app
const ALICE = { userId: 'U_ALICE', channel: 'C_RELEASES' }; // payments-devs: not checkout
const BOB = { userId: 'U_BOB', channel: 'C_RELEASES' }; // approvers

async function buildah(args: string[], cwd?: string): Promise<string> {
  const { stdout } = await exec('buildah', [...storage(fixtureStore), ...args], {
    maxBuffer: 64 << 20,
    ...(cwd ? { cwd } : {}),
  });
  return stdout.trim();
}

async function digestOf(image: string): Promise<string> {
  const [host, ...rest] = image.split('/');
  const path = rest.join('/');
  const res = await fetch(
    `http://${host}/v2/${path.slice(0, path.lastIndexOf(':'))}/manifests/${path.slice(path.lastIndexOf(':') + 1)}`,
    {
      method: 'HEAD',
      headers: {
        accept:
          'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
      },
    },
  );
  const d = res.headers.get('docker-content-digest');
  if (!res.ok || !d) throw new Error(`${image}: HTTP ${res.status}`);
  return d;
}

/** A git repo with one tag, v1, holding `files`. */
async function gitRepo(dir: string, files: Record<string, string>): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  const git = (args: string[]) =>
    exec(
      'git',
      ['-c', 'user.name=T', '-c', 'user.email=t@example.invalid', '-c', 'init.defaultBranch=main', ...args],
      {
        cwd: dir,
      },
    );
  await git(['init', '-q']);
  await git(['add', '.']);
  await git(['commit', '-q', '-m', 'v1']);
  await git(['tag', 'v1']);
  return dir;
}

/** The storage flags of the builds' own cache: whichever driver "auto" chose on this machine. */
async function buildStorage(): Promise<string[]> {
  const cacheDir = join(work, 'cache');
  const { driver } = await chooseStorageDriver(cacheDir, 'auto');
  return storageArgs(cacheDir, driver);
}

async function succeeded(id: string | undefined): Promise<Release> {
  expect(id).toMatch(/^r\d+$/);
  // Any end, so a failed build fails the test at once, with its reason.
  const r = await waitForState(
    rt,
    id as string,
    ['succeeded', 'failed', 'rejected', 'expired', 'aborted', 'rolled-back'],
    300_000,
  );
  expect(`${r.state} ${r.error ?? ''}`.trim()).toBe('succeeded');
  return r;
}

beforeAll(async () => {
  registry = await startRegistry();
  redis = await TestRedis.start();
  work = await tempDir('stack-rebuild');
  fixtureStore = join(work, 'fixture-store');
  // ferry/base plays the base, and a stack built FROM it says so in its labels,
  // as infra/images/stack-shell/Dockerfile does.
  const base = `${registry.host}/fixture/base:1`;
  await buildBusyboxBase({ image: base, marker: 'base 1', storeDir: fixtureStore });
  baseDigest = await digestOf(base);
  stackTag = `${registry.host}/fixture/stack-shell:1`;
  const ctxDir = join(work, 'stack-ctx');
  await mkdir(ctxDir, { recursive: true });
  await writeFile(
    join(ctxDir, 'Dockerfile'),
    [
      `FROM ${base}`,
      'RUN echo "stack 1" > /etc/stack-release',
      `LABEL io.ferry.base.name="${registry.host}/fixture/base" io.ferry.base.digest="${baseDigest}"`,
      '',
    ].join('\n'),
  );
  await buildah([
    'bud',
    '--isolation',
    'chroot',
    '--tls-verify=false',
    '--timestamp',
    '0',
    '-t',
    stackTag,
    ctxDir,
  ]);
  await buildah(['push', '--tls-verify=false', stackTag, `docker://${stackTag}`]);
  s1 = await digestOf(stackTag);

  const ferryStackApp = await gitRepo(join(work, 'repo-arg'), {
    Dockerfile: [
      'ARG FERRY_STACK',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a Dockerfile variable, not a JS one
      'FROM ${FERRY_STACK}',
      'COPY app.txt /app/app.txt',
      'RUN cat /etc/stack-release > /app/built-on',
      '',
    ].join('\n'),
    'app.txt': 'hello\n',
  });
  // An app whose Dockerfile names the stack's tag itself: still recorded truthfully.
  const literalApp = await gitRepo(join(work, 'repo-literal'), {
    Dockerfile: [`FROM ${stackTag}`, 'COPY app.txt /app/app.txt', ''].join('\n'),
    'app.txt': 'literal\n',
  });
  const config: FerryConfig = fastConfig((c) => {
    c.primaryRegistry = { url: registry.url, insecure: true, pullThrough: false };
    (c.stacks.shell as FerryConfig['stacks'][string]).image = stackTag;
    for (const [name, app] of Object.entries(c.apps))
      app.repo = name === 'checkout' ? literalApp : ferryStackApp;
    c.build = { ...c.build, cacheDir: join(work, 'cache') };
    c.limits = { ...c.limits, parallelRebuilds: 1 };
  });
  rt = createRuntime({ config, redisUrl: redis.url, prefix: 'sr', name: 'stack-rebuild' });
  const recorded = new RecordingRunners(rt.store, { stepMs: 10, replicas: 2 }, 'sr');
  workers = startWorkers(
    jobContext(
      rt,
      {
        build: buildRunner(config),
        sync: recorded.sync.bind(recorded),
        rollout: recorded.rollout.bind(recorded),
        verify: recorded.verify.bind(recorded),
      },
      100,
    ),
    { connection: rt.queue, prefix: 'sr', log: logger('stack-rebuild').child({}, { level: 'warn' }) },
  );
  services = await commandServices(rt);
}, 300_000);

afterAll(async () => {
  await workers?.close();
  await rt?.close();
  await redis?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('stacks that matter', () => {
  it('builds on the digest the stack tag names and records the stack and its base', async () => {
    for (const app of ['payments', 'checkout']) {
      const r = await handleText(`/release ${app} v1 to test`, CAROL, services);
      expect(r.ok, r.text).toBe(true);
      await succeeded(r.releaseId);
      const img = (await rt.versions.get(app, 'v1'))?.images.test;
      expect(img?.stack).toEqual({ name: `${registry.host}/fixture/stack-shell`, digest: s1 });
      expect(img?.base).toEqual({ name: `${registry.host}/fixture/base`, digest: baseDigest });
    }
    // The FERRY_STACK app really ran on the stack: its build step read the stack's file.
    const image = (await rt.versions.get('payments', 'v1'))?.images.test?.image as string;
    const out = await runInImage(await buildStorage(), image, ['cat', '/app/built-on']);
    expect(out.stdout.trim()).toBe('stack 1');
    // Every environment of a version is built on the stack it was first built on.
    expect((await rt.versions.get('payments', 'v1'))?.stack?.digest).toBe(s1);
  }, 600_000);

  it('after a stack patch, rebuilds exactly the apps on the old digest onto the new one', async () => {
    // Patch the stack: the same tag, one file more.
    const patchFile = join(work, 'patch.txt');
    await writeFile(patchFile, 'CVE-0000-0001 fixed\n');
    const ctr = await buildah(['from', '--pull=never', stackTag]);
    await buildah(['copy', ctr, patchFile, '/etc/stack-patch']);
    await buildah(['commit', '--timestamp', '0', ctr, stackTag]);
    await buildah(['rm', ctr]);
    await buildah(['push', '--tls-verify=false', stackTag, `docker://${stackTag}`]);
    const s2 = await digestOf(stackTag);
    expect(s2).not.toBe(s1);

    // ledger is released after the patch: already on the new digest, not listed.
    const ledger = await handleText('/release ledger v1 to test', CAROL, services);
    await succeeded(ledger.releaseId);
    expect((await rt.versions.get('ledger', 'v1'))?.images.test?.stack?.digest).toBe(s2);

    const newVersion = `v1-stack.${s2.slice(7, 19)}`;
    const dry = await handleText('/release rebuild stack shell to test plan', CAROL, services);
    expect(dry.ok, dry.text).toBe(true);
    const listed = (text: string) =>
      [...text.matchAll(/^• (\S+) v1 in test \(stack (\w+)\) → \S+ (\S+)$/gm)].map((m) => [m[1], m[2], m[3]]);
    expect(listed(dry.text)).toEqual([
      ['payments', s1.slice(7, 19), newVersion],
      ['checkout', s1.slice(7, 19), newVersion],
    ]);
    expect(dry.text).toContain('ledger v1 in test: already on');
    expect(dry.text).toContain('Nothing requested (plan)');
    expect(await rt.versions.get('payments', newVersion)).toBeUndefined();

    // alice may not release checkout: nothing is requested for anyone.
    const refused = await handleText('/release rebuild stack shell to test', ALICE, services);
    expect(refused.ok).toBe(false);
    expect(refused.text).toContain('You may not release checkout to test, so nothing was requested');
    expect(await rt.versions.get('payments', newVersion)).toBeUndefined();

    const run = await handleText('/release rebuild stack shell to test', CAROL, services);
    expect(run.ok, run.text).toBe(true);
    expect(listed(run.text).map((l) => l[0])).toEqual(['payments', 'checkout']);
    expect(run.text).toContain('1 more wait');

    const releaseOf = async (app: string) =>
      (await rt.releases.byApp(app, 20)).find((r) => r.version === newVersion && r.environment === 'test');
    const first = await succeeded((await releaseOf('payments'))?.id);
    expect(first.requestedBy).toBe('U_CAROL');
    await expect.poll(() => releaseOf('checkout'), { timeout: 60_000, interval: 200 }).toBeDefined();
    const second = await succeeded((await releaseOf('checkout'))?.id);
    expect(second.requestedBy).toBe('U_CAROL');
    // The limit of 1: checkout was requested only once payments had ended.
    const firstEnded = (await rt.releases.audit(first.id)).find((a) => a.to === 'succeeded')?.at as number;
    expect(second.requestedAt).toBeGreaterThanOrEqual(firstEnded);

    for (const app of ['payments', 'checkout']) {
      const old = await rt.versions.get(app, 'v1');
      const rebuilt = await rt.versions.get(app, newVersion);
      expect(rebuilt?.images.test?.stack).toEqual({
        name: `${registry.host}/fixture/stack-shell`,
        digest: s2,
      });
      expect(rebuilt?.images.test?.base?.digest).toBe(baseDigest);
      expect(rebuilt?.images.test?.digest).not.toBe(old?.images.test?.digest);
      expect(rebuilt?.ref).toBe('v1');
      expect(rebuilt?.commit).toBe(old?.commit);
      expect(rebuilt?.rebuildOf).toBe('v1');
    }
    // The rebuilt image runs on the patched stack.
    const image = (await rt.versions.get('payments', newVersion))?.images.test?.image as string;
    const patched = await runInImage(await buildStorage(), image, ['cat', '/etc/stack-patch']);
    expect(patched.stdout).toContain('CVE-0000-0001 fixed');

    // `/release versions` shows both stacks, and the base.
    const versions = await handleText('/release versions payments', CAROL, services);
    expect(versions.text).toContain(`stack ${registry.host}/fixture/stack-shell@${s1}`);
    expect(versions.text).toContain(`stack ${registry.host}/fixture/stack-shell@${s2}`);
    expect(versions.text).toContain(`base ${registry.host}/fixture/base@${baseDigest}`);
    expect(versions.text).toContain(`rebuild of v1 on stack shell`);

    // Now nothing is outdated in test.
    const again = await handleText('/release rebuild stack shell to test', CAROL, services);
    expect(again.text).toContain('Nothing to rebuild.');
  }, 900_000);

  it('promotes like any release: prod keeps the stack its version was pinned to, and the rebuild waits for approval', async () => {
    const s2 = await digestOf(stackTag);
    // v1 was first built on S1: prod gets S1 too, although the tag names S2 now.
    const v1 = await handleText('/release payments v1 to prod', CAROL, services);
    expect(v1.ok, v1.text).toBe(true);
    await waitForState(rt, v1.releaseId as string, 'awaiting-approval', 60_000);
    expect((await handleText(`/release approve ${v1.releaseId}`, BOB, services)).ok).toBe(true);
    await succeeded(v1.releaseId);
    expect((await rt.versions.get('payments', 'v1'))?.images.prod?.stack?.digest).toBe(s1);

    // Only payments runs in prod; its rebuild passed test above, so the promotion rule lets it go.
    const newVersion = `v1-stack.${s2.slice(7, 19)}`;
    const run = await handleText('/release rebuild stack shell to prod', CAROL, services);
    expect(run.ok, run.text).toBe(true);
    expect(run.text).toContain(`• payments v1 in prod (stack ${s1.slice(7, 19)}) → payments ${newVersion}`);
    expect(run.text).not.toContain('checkout');
    const rebuilt = (await rt.releases.byApp('payments', 20)).find(
      (r) => r.version === newVersion && r.environment === 'prod',
    );
    // The environment's usual plan: an approval from approvers, not from the requester.
    await waitForState(rt, rebuilt?.id as string, 'awaiting-approval', 60_000);
    expect((await handleText(`/release approve ${rebuilt?.id}`, CAROL, services)).ok).toBe(false);
    expect((await handleText(`/release approve ${rebuilt?.id}`, BOB, services)).ok).toBe(true);
    await succeeded(rebuilt?.id);
    expect((await rt.versions.get('payments', newVersion))?.images.prod?.stack?.digest).toBe(s2);
  }, 900_000);
});
