// The builder against real buildah and a real docker-registry.

import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BuildResult,
  type BuildVariantRequest,
  buildVariant,
  rebuildOnto,
  storageArgs,
} from '../../src/build/builder.ts';
import { BuildCoordinator, MemoryBuildRecordStore } from '../../src/build/coordinator.ts';
import { BuildFailed, UnknownRefError } from '../../src/build/errors.ts';
import { getDiffIds, getManifest } from '../../src/build/registry-client.ts';
import { composeDockerfile, type TailSpec } from '../../src/build/tail.ts';
import {
  type AppRepo,
  buildBusyboxBase,
  countingBuildah,
  layerPaths,
  makeAppRepo,
  makePackageDir,
  runInImage,
  startRegistry,
  type TestRegistry,
  tempDir,
} from '../support/build-fixtures.ts';

const exec = promisify(execFile);

const TAILS: Record<string, TailSpec> = {
  test: {
    packages: ['testtools'],
    files: [{ path: '/etc/ferry/env.conf', content: 'ENV=test\n' }],
    env: { FERRY_ENV: 'test', PATH: '/usr/local/bin:/bin' },
    run: ['pytest-lite > /app/selftest.txt'],
  },
  uat: {
    packages: ['debugtools', 'monitoring'],
    env: { FERRY_ENV: 'uat' },
  },
  prod: {
    packages: ['monitoring'],
    files: [{ path: '/etc/ferry/env.conf', content: 'ENV=prod\n', mode: 0o600 }],
    env: { FERRY_ENV: 'prod' },
  },
};

let registry: TestRegistry;
let work: string;
let repo: AppRepo;
let packageDir: string;
let cacheDir: string;
let counter: Awaited<ReturnType<typeof countingBuildah>>;
let baseImage: string;
const REPOSITORY = 'fixture/app';
const built: Record<string, BuildResult> = {};

function request(envName: string, ref: string, version: string, extra: Partial<BuildVariantRequest> = {}) {
  return {
    app: 'fixture',
    version,
    ref,
    repoUrl: repo.dir,
    tail: TAILS[envName] ?? {},
    envName,
    registry: { url: registry.url, insecure: true },
    repository: REPOSITORY,
    cacheDir,
    packageDir,
    buildah: counter.path,
    ...extra,
  } satisfies BuildVariantRequest;
}

function tailLayers(envName: string): number {
  return composeDockerfile('FROM x\n', TAILS[envName] ?? {}, { envName }).tailLayerCount;
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await tempDir('build-it');
  cacheDir = join(work, 'cache');
  baseImage = `${registry.host}/fixture/base:1`;
  await buildBusyboxBase({ image: baseImage, marker: 'base 1', storeDir: join(work, 'fixture-store') });
  repo = await makeAppRepo(join(work, 'repo'), baseImage);
  packageDir = await makePackageDir(join(work, 'packages'));
  counter = await countingBuildah(join(work, 'bin'));
});

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('buildVariant', () => {
  it('builds test, uat and prod from v1: every layer before the tail is shared, only the tail differs', async () => {
    const lines: string[] = [];
    for (const env of ['test', 'uat', 'prod']) {
      built[env] = await buildVariant(
        request(env, 'v1', 'v1', env === 'test' ? { onLog: (l) => lines.push(l) } : {}),
      );
    }
    expect(lines.some((l) => /^STEP \d+\/\d+: COPY \. \/app/.test(l))).toBe(true);

    const manifests = Object.fromEntries(
      await Promise.all(
        ['test', 'uat', 'prod'].map(async (env) => {
          const m = await getManifest({ url: registry.url, insecure: true }, REPOSITORY, `v1-${env}`);
          return [env, m!] as const;
        }),
      ),
    );
    for (const env of ['test', 'uat', 'prod']) {
      const r = built[env]!;
      expect(r.cached).toBe(false);
      expect(r.image).toBe(`${registry.host}/${REPOSITORY}:v1-${env}`);
      expect(r.digest).toBe(manifests[env]!.digest);
      expect(r.layers.map((l) => l.digest)).toEqual(manifests[env]!.manifest.layers.map((l) => l.digest));
      expect(r.configDigest).toBe(manifests[env]!.manifest.config.digest);
      expect(r.commit).toMatch(/^[0-9a-f]{40}$/);
    }

    const prefixLen = (env: string) => manifests[env]!.manifest.layers.length - tailLayers(env);
    const p = prefixLen('test');
    expect(p).toBeGreaterThanOrEqual(3); // base + app layers
    expect(prefixLen('uat')).toBe(p);
    expect(prefixLen('prod')).toBe(p);
    const prefix = (env: string) => manifests[env]!.manifest.layers.slice(0, p).map((l) => l.digest);
    const tail = (env: string) => manifests[env]!.manifest.layers.slice(p).map((l) => l.digest);
    expect(prefix('uat')).toEqual(prefix('test'));
    expect(prefix('prod')).toEqual(prefix('test'));
    // Uncompressed too.
    const diff = async (env: string) =>
      (await getDiffIds({ url: registry.url, insecure: true }, REPOSITORY, built[env]!.configDigest)).slice(
        0,
        p,
      );
    expect(await diff('prod')).toEqual(await diff('test'));

    // Tails: the test tail's layers appear in no other image.
    for (const d of tail('test')) {
      expect(manifests['prod']!.manifest.layers.map((l) => l.digest)).not.toContain(d);
      expect(manifests['uat']!.manifest.layers.map((l) => l.digest)).not.toContain(d);
    }
    // The same bundle gives the same layer in every environment (monitoring in uat and prod).
    const shared = tail('uat').filter((d) => tail('prod').includes(d));
    expect(shared).toHaveLength(1);
    expect(new Set([built['test']!.digest, built['uat']!.digest, built['prod']!.digest]).size).toBe(3);
  });

  it('the prod image carries none of the test packages', async () => {
    const st = storageArgs(cacheDir);
    const inProd = await runInImage(st, built['prod']!.image, ['sh', '-c', 'which pytest-lite; ls /opt']);
    expect(inProd.stdout).not.toContain('pytest-lite');
    expect(inProd.stdout).not.toContain('testtools');
    expect(inProd.stdout).toContain('monitoring');
    const inTest = await runInImage(st, built['test']!.image, [
      'sh',
      '-c',
      'which pytest-lite && cat /app/selftest.txt /etc/ferry/env.conf && echo "env=$FERRY_ENV"',
    ]);
    expect(inTest.code).toBe(0);
    expect(inTest.stdout).toContain('/usr/local/bin/pytest-lite');
    expect(inTest.stdout).toContain('3 passed');
    expect(inTest.stdout).toContain('ENV=test');
    expect(inTest.stdout).toContain('env=test');
    const prodConf = await runInImage(st, built['prod']!.image, [
      'sh',
      '-c',
      'stat -c %a /etc/ferry/env.conf; cat /etc/ferry/env.conf; echo "env=$FERRY_ENV"; ls /app/selftest.txt',
    ]);
    expect(prodConf.stdout).toContain('600');
    expect(prodConf.stdout).toContain('ENV=prod');
    expect(prodConf.stdout).toContain('env=prod');
    expect(prodConf.code).not.toBe(0); // no /app/selftest.txt in prod

    // What a node pulls from the registry: no layer of prod contains test files.
    const prodPaths = (
      await Promise.all(built['prod']!.layers.map((l) => layerPaths(registry.url, REPOSITORY, l.digest)))
    ).flat();
    expect(prodPaths.length).toBeGreaterThan(10);
    expect(prodPaths.some((p) => p.includes('pytest-lite') || p.includes('testtools'))).toBe(false);
    expect(prodPaths.some((p) => p.includes('selftest'))).toBe(false);
    const testPaths = (
      await Promise.all(built['test']!.layers.map((l) => layerPaths(registry.url, REPOSITORY, l.digest)))
    ).flat();
    expect(testPaths).toContain('usr/local/bin/pytest-lite');
  });

  it('returns an existing tag at once without building', async () => {
    const before = await counter.budCount();
    const again = await buildVariant(request('prod', 'v1', 'v1'));
    expect(again.cached).toBe(true);
    expect(again.digest).toBe(built['prod']!.digest);
    expect(again.durationMs).toBeLessThan(2000);
    expect(await counter.budCount()).toBe(before);
  });

  it('a failing RUN throws BuildFailed with the step and the last lines, and pushes nothing', async () => {
    const lines: string[] = [];
    const err = await buildVariant(
      request('prod', 'broken-run', 'v9', { onLog: (l) => lines.push(l) }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildFailed);
    const bf = err as BuildFailed;
    expect(bf.code).toBe('BUILD_FAILED');
    expect(bf.step).toMatch(/^STEP \d+\/\d+: RUN echo "compiling\.\.\."/);
    expect(bf.lastLines.join('\n')).toContain('error: missing symbol');
    expect(bf.lastLines.length).toBeLessThanOrEqual(20);
    expect(bf.message).toContain(bf.step);
    expect(await getManifest({ url: registry.url, insecure: true }, REPOSITORY, 'v9-prod')).toBeUndefined();
    const { readFile } = await import('node:fs/promises');
    const logText = await readFile(bf.logPath, 'utf8');
    expect(logText).toContain('error: missing symbol');
    expect(logText).toContain('STEP 1/');

    // A failing tail RUN is reported the same way.
    const tailErr = (await buildVariant(
      request('canary', 'v1', 'v1', { tail: { run: ['echo tail-broke; exit 7'] } }),
    ).catch((e: unknown) => e)) as BuildFailed;
    expect(tailErr).toBeInstanceOf(BuildFailed);
    expect(tailErr.step).toMatch(/RUN echo tail-broke; exit 7$/);
    expect(tailErr.lastLines).toContain('tail-broke');
    expect(await getManifest({ url: registry.url, insecure: true }, REPOSITORY, 'v1-canary')).toBeUndefined();
  });

  it('a bad Dockerfile throws BuildFailed naming the instruction', async () => {
    const err = (await buildVariant(request('prod', 'bad-dockerfile', 'v8')).catch(
      (e: unknown) => e,
    )) as BuildFailed;
    expect(err).toBeInstanceOf(BuildFailed);
    expect(err.message).toMatch(/FROBNICATE/i);
    expect(await getManifest({ url: registry.url, insecure: true }, REPOSITORY, 'v8-prod')).toBeUndefined();
  });

  it('an unknown ref throws UnknownRefError naming the ref and the known tags', async () => {
    const err = (await buildVariant(request('prod', 'v7', 'v7')).catch((e: unknown) => e)) as UnknownRefError;
    expect(err).toBeInstanceOf(UnknownRefError);
    expect(err).toBeInstanceOf(BuildFailed);
    expect(err.code).toBe('UNKNOWN_REF');
    expect(err.ref).toBe('v7');
    expect(err.knownTags).toEqual(expect.arrayContaining(['v1', 'v2']));
    expect(err.message).toContain('"v7"');
    expect(err.message).toContain('v1, v2');
    expect(await getManifest({ url: registry.url, insecure: true }, REPOSITORY, 'v7-prod')).toBeUndefined();
  });

  it('builds from a commit id or a branch, recording the commit', async () => {
    const { stdout } = await exec('git', ['-C', repo.dir, 'rev-parse', 'v1^{commit}']);
    const sha = stdout.trim();
    const r = await buildVariant(request('prod', sha.slice(0, 10), 'c1'));
    expect(r.commit).toBe(sha);
    // Same code, same tail: the same layers as v1-prod (only the labels differ).
    expect(r.layers.map((l) => l.digest)).toEqual(built['prod']!.layers.map((l) => l.digest));
    const b = await buildVariant(request('prod', 'main', 'main1'));
    const { stdout: mainSha } = await exec('git', ['-C', repo.dir, 'rev-parse', 'main']);
    expect(b.commit).toBe(mainSha.trim());
  });

  it('cancelling a build stops buildah and pushes nothing', async () => {
    const ac = new AbortController();
    const p = buildVariant(
      request('slow', 'v1', 'v1', {
        tail: { run: ['echo sleeping; sleep 60'] },
        signal: ac.signal,
        onLog: (l) => {
          if (l === 'sleeping') ac.abort();
        },
      }),
    );
    const t0 = performance.now();
    const err = (await p.catch((e: unknown) => e)) as BuildFailed;
    expect(err).toBeInstanceOf(BuildFailed);
    expect(err.code).toBe('CANCELLED');
    expect(performance.now() - t0).toBeLessThan(30_000);
    expect(await getManifest({ url: registry.url, insecure: true }, REPOSITORY, 'v1-slow')).toBeUndefined();
  });

  it('rebuilds a version onto an updated base: app layer identical, digests above the base change', async () => {
    const base2 = `${registry.host}/fixture/base:2`;
    await buildBusyboxBase({
      image: base2,
      marker: 'base 2 (security update)',
      storeDir: join(work, 'fixture-store'),
    });
    const rebased = await rebuildOnto({ ...request('prod', 'v1', 'v1'), baseImageOverride: base2 });
    const original = built['prod']!;
    expect(rebased.cached).toBe(false);
    expect(rebased.tag).toMatch(/^v1-prod-on-[0-9a-f]{12}$/);
    expect(rebased.baseImage).toMatch(/fixture\/base@sha256:/);
    // The original tag is untouched.
    const orig = await getManifest({ url: registry.url, insecure: true }, REPOSITORY, 'v1-prod');
    expect(orig!.digest).toBe(original.digest);

    const reg = { url: registry.url, insecure: true };
    const d1 = await getDiffIds(reg, REPOSITORY, original.configDigest);
    const d2 = await getDiffIds(reg, REPOSITORY, rebased.configDigest);
    expect(d2.length).toBe(d1.length);
    expect(d2[0]).not.toBe(d1[0]); // the base layer changed

    // Find the app layer (COPY . /app) by content.
    const paths = await Promise.all(
      original.layers.map((l) => layerPaths(registry.url, REPOSITORY, l.digest)),
    );
    const appIdx = paths.findIndex((p) => p.includes('app/src/main.txt'));
    const runIdx = paths.findIndex((p) => p.includes('app/out/build-info.txt'));
    expect(appIdx).toBeGreaterThan(0);
    expect(d2[appIdx]).toBe(d1[appIdx]); // same uncompressed content
    expect(rebased.layers[appIdx]!.digest).toBe(original.layers[appIdx]!.digest);
    // The RUN reads /etc/base-release, so its output (and digest) moves with the base.
    expect(d2[runIdx]).not.toBe(d1[runIdx]);
    expect(rebased.configDigest).not.toBe(original.configDigest);
    expect(rebased.digest).not.toBe(original.digest);
    const info = await runInImage(storageArgs(cacheDir), rebased.image, ['cat', '/app/out/build-info.txt']);
    expect(info.stdout).toContain('base 2');

    // Rebasing again onto the same base is a no-op.
    const again = await rebuildOnto({ ...request('prod', 'v1', 'v1'), baseImageOverride: base2 });
    expect(again.cached).toBe(true);
    expect(again.digest).toBe(rebased.digest);
  });
});

describe('BuildCoordinator with buildah', () => {
  it('two concurrent identical requests build once; a later request is answered from the record', async () => {
    const store = new MemoryBuildRecordStore();
    const coordinator = new BuildCoordinator({ store, concurrency: 2 });
    const before = await counter.budCount();
    const [a, b] = await Promise.all([
      coordinator.request(request('test', 'v2', 'v2')),
      coordinator.request(request('test', 'v2', 'v2')),
    ]);
    expect(await counter.budCount()).toBe(before + 1);
    expect(coordinator.buildsStarted).toBe(1);
    expect(a.digest).toBe(b.digest);
    expect([a.shared, b.shared].sort()).toEqual([false, true]);
    expect(a.cached).toBe(false);

    const t0 = performance.now();
    const c = await coordinator.request(request('test', 'v2', 'v2'));
    expect(performance.now() - t0).toBeLessThan(50);
    expect(c.fromRecord).toBe(true);
    expect(c.cached).toBe(true);
    expect(c.digest).toBe(a.digest);
    expect(await counter.budCount()).toBe(before + 1);

    // v2 shares the base layer with v1 and reuses the cached layers it can.
    const rec = await store.get('fixture', 'v2', 'test');
    expect(rec?.layers[0]?.digest).toBe(built['test']!.layers[0]!.digest);
    const { stdout } = await exec('git', ['-C', repo.dir, 'rev-parse', 'v2^{commit}']);
    expect(rec?.commit).toBe(stdout.trim());
  });
});
