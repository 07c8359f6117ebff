// Benchmark: building three environment variants (test, uat, prod) of one app
// version with Ferry (one Dockerfile + env tail, shared layers, persistent
// layer cache) versus the naive approach (one independent `buildah bud` per
// environment: a Dockerfile per env with the env's packages installed before
// the app, no --layers, no --timestamp, separate storage).
//
// Same machine, same run, same base image, same app, same package bundles.
// Each approach pushes to its own fresh docker-registry (pre-seeded with the
// base image), so "bytes pushed" is the growth of that registry's storage.
//
//   node bench/build.ts            → bench/results/build.json and build.md

import { execFile } from 'node:child_process';
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type BuildResult, buildVariant, type StorageDriver, storageArgs } from '../src/build/builder.ts';
import { getManifest } from '../src/build/registry-client.ts';
import { chooseStorageDriver } from '../src/build/storage.ts';
import type { TailSpec } from '../src/build/tail.ts';
import {
  buildBusyboxBase,
  makeAppRepo,
  makePackageDir,
  pseudoRandom,
  startRegistry,
  type TestRegistry,
  tempDir,
} from '../test/support/build-fixtures.ts';

const exec = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

const MB = 1024 * 1024;
const SIZES = {
  /** The stack part of the base image (think JDK + Tomcat). */
  stackBytes: 24 * MB,
  /** The app's own files (jar, assets). */
  appBytes: 8 * MB,
  packages: { testtools: 6 * MB, debugtools: 3 * MB, monitoring: 1 * MB } as Record<string, number>,
};

const TAILS: Record<string, TailSpec> = {
  test: {
    packages: ['testtools', 'debugtools'],
    env: { FERRY_ENV: 'test' },
    run: ['pytest-lite > /app/selftest.txt'],
  },
  uat: { packages: ['debugtools', 'monitoring'], env: { FERRY_ENV: 'uat' } },
  prod: { packages: ['monitoring'], env: { FERRY_ENV: 'prod' } },
};
const ENVS = Object.keys(TAILS);

interface ApproachResult {
  wallMs: number;
  perEnv: { env: string; ms: number; digest: string; layers: number }[];
  registryBytesGrowth: number;
  uniqueLayerBytes: number;
  uniqueLayers: number;
}

async function uniqueLayers(reg: TestRegistry, repository: string, tags: string[], exclude: Set<string>) {
  const seen = new Map<string, number>();
  for (const tag of tags) {
    const m = await getManifest({ url: reg.url, insecure: true }, repository, tag);
    for (const l of m?.manifest.layers ?? []) if (!exclude.has(l.digest)) seen.set(l.digest, l.size);
  }
  return { count: seen.size, bytes: [...seen.values()].reduce((a, b) => a + b, 0) };
}

async function baseLayers(reg: TestRegistry, repository: string, tag: string): Promise<Set<string>> {
  const m = await getManifest({ url: reg.url, insecure: true }, repository, tag);
  return new Set((m?.manifest.layers ?? []).map((l) => l.digest));
}

async function runFerry(
  reg: TestRegistry,
  repoDir: string,
  packageDir: string,
  cacheDir: string,
  version: string,
  driver: StorageDriver,
  opts: { parallelTails?: boolean; repository?: string } = {},
): Promise<ApproachResult> {
  const repository = opts.repository ?? 'bench/app';
  const base = await baseLayers(reg, 'bench/base', '1');
  const before = await reg.storageBytes();
  const t0 = performance.now();
  const perEnv: ApproachResult['perEnv'] = [];
  const buildEnv = async (env: string) => {
    const s = performance.now();
    const r: BuildResult = await buildVariant({
      app: 'bench',
      version,
      ref: version,
      repoUrl: repoDir,
      tail: TAILS[env]!,
      envName: env,
      registry: { url: reg.url, insecure: true },
      repository,
      cacheDir,
      packageDir,
      storageDriver: driver,
      isolation: isolationFor(driver),
    });
    perEnv.push({ env, ms: Math.round(performance.now() - s), digest: r.digest, layers: r.layers.length });
  };
  if (opts.parallelTails) {
    // what the build coordinator does: the first environment alone (the shared layers), then the tails at once
    await buildEnv(ENVS[0]!);
    await Promise.all(ENVS.slice(1).map(buildEnv));
  } else {
    for (const env of ENVS) await buildEnv(env);
  }
  const wallMs = Math.round(performance.now() - t0);
  const growth = (await reg.storageBytes()) - before;
  const u = await uniqueLayers(
    reg,
    repository,
    ENVS.map((e) => `${version}-${e}`),
    base,
  );
  return { wallMs, perEnv, registryBytesGrowth: growth, uniqueLayerBytes: u.bytes, uniqueLayers: u.count };
}

/**
 * The naive way: per environment a fresh clone, a Dockerfile with the env's
 * packages installed before the app, and an independent build in its own
 * storage without --layers or --timestamp.
 */
async function runNaive(
  reg: TestRegistry,
  repoDir: string,
  packageDir: string,
  workDir: string,
  version: string,
  driver: StorageDriver,
): Promise<ApproachResult> {
  const baseImage = `${reg.host}/bench/base:1`;
  const base = await baseLayers(reg, 'bench/base', '1');
  const before = await reg.storageBytes();
  const t0 = performance.now();
  const perEnv: ApproachResult['perEnv'] = [];
  for (const env of ENVS) {
    const s = performance.now();
    const dir = join(workDir, `naive-${env}`);
    const ctx = join(dir, 'ctx');
    await mkdir(ctx, { recursive: true });
    await exec('git', [
      'clone',
      '--quiet',
      '--depth',
      '1',
      '--branch',
      version,
      `file://${repoDir}`,
      join(ctx, 'app'),
    ]);
    await rm(join(ctx, 'app', '.git'), { recursive: true, force: true });
    const tail = TAILS[env]!;
    const lines = [`FROM ${baseImage}`];
    for (const p of tail.packages ?? []) {
      await cp(join(packageDir, p), join(ctx, 'packages', p), { recursive: true });
      lines.push(`COPY packages/${p}/ /`);
    }
    lines.push(
      ...Object.entries(tail.env ?? {}).map(([k, v]) => `ENV ${k}=${v}`),
      'WORKDIR /app',
      'COPY app/ /app/',
      'RUN sh /app/build.sh',
      ...(tail.run ?? []).map((r) => `RUN ${r}`),
      'CMD ["/bin/sh", "/app/start.sh"]',
    );
    await writeFile(join(ctx, 'Dockerfile'), lines.join('\n') + '\n');
    const image = `${reg.host}/bench/naive:${version}-${env}`;
    await budAndPush(storageArgs(join(dir, 'cache'), driver), driver, image, ctx);
    const m = await getManifest({ url: reg.url, insecure: true }, 'bench/naive', `${version}-${env}`);
    perEnv.push({
      env,
      ms: Math.round(performance.now() - s),
      digest: m!.digest,
      layers: m!.manifest.layers.length,
    });
  }
  const wallMs = Math.round(performance.now() - t0);
  const growth = (await reg.storageBytes()) - before;
  const u = await uniqueLayers(
    reg,
    'bench/naive',
    ENVS.map((e) => `${version}-${e}`),
    base,
  );
  return { wallMs, perEnv, registryBytesGrowth: growth, uniqueLayerBytes: u.bytes, uniqueLayers: u.count };
}

/** `buildah bud` of a context into `image` with the given storage, then its push. */
async function budAndPush(st: string[], driver: StorageDriver, image: string, ctx: string): Promise<void> {
  await exec(
    'buildah',
    [...st, 'bud', '--isolation', isolationFor(driver), '--tls-verify=false', '-t', image, ctx],
    { maxBuffer: 64 << 20 },
  );
  await exec('buildah', [...st, 'push', '--tls-verify=false', image, `docker://${image}`], {
    maxBuffer: 64 << 20,
  });
}

/**
 * The floor of one more environment: the least a build of a tail can cost with buildah here — a
 * Dockerfile of only `COPY` of the tail's packages onto an image already in the storage, built and
 * pushed. What Ferry's marginal cost is compared with. (The image is pulled once before timing.)
 */
async function copyFloor(
  reg: TestRegistry,
  packageDir: string,
  dir: string,
  driver: StorageDriver,
  fromImage: string,
): Promise<number> {
  const st = storageArgs(join(dir, 'floor-cache'), driver);
  await exec('buildah', [...st, 'pull', '--tls-verify=false', fromImage], { maxBuffer: 64 << 20 });
  const times: number[] = [];
  for (const env of ENVS.slice(1)) {
    const ctx = join(dir, `floor-${env}`);
    await mkdir(ctx, { recursive: true });
    const lines = [`FROM ${fromImage}`];
    for (const p of TAILS[env]?.packages ?? []) {
      await cp(join(packageDir, p), join(ctx, 'packages', p), { recursive: true });
      lines.push(`COPY packages/${p}/ /`);
    }
    await writeFile(join(ctx, 'Dockerfile'), `${lines.join('\n')}\n`);
    const image = `${reg.host}/bench/floor:${env}`;
    const s = performance.now();
    await budAndPush(st, driver, image, ctx);
    times.push(performance.now() - s);
  }
  return Math.round(times.reduce((a, b) => a + b, 0) / Math.max(1, times.length));
}

function marginal(r: ApproachResult): number {
  const rest = r.perEnv.slice(1);
  return Math.round(rest.reduce((a, e) => a + e.ms, 0) / Math.max(1, rest.length));
}

function isolationFor(driver: StorageDriver): 'chroot' | 'oci' {
  return driver === 'overlay' ? 'oci' : 'chroot';
}

function fmtBytes(n: number): string {
  return n >= MB ? `${(n / MB).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

interface Scenario {
  driver: StorageDriver;
  isolation: string;
  naive: ApproachResult;
  ferry: ApproachResult;
  ferryNextVersionWarm: ApproachResult;
  ferryParallelTails: ApproachResult;
  ratios: {
    /** Wall time of the three variants over the first variant alone (target ≤ 1.2). */
    threeVariantsOverFirst: number;
    threeVariantsOverFirstParallelTails: number;
    wallTimeNaiveOverFerry: number;
    bytesPushedNaiveOverFerry: number;
    uniqueLayerBytesNaiveOverFerry: number;
    /** Mean time of an environment after the first one. */
    marginalEnvMsFerry: number;
    marginalEnvMsNaive: number;
    /** The floor of one more environment: a COPY-only build and push of a tail (copyFloor). */
    marginalEnvMsCopyFloor: number;
    /** Next version, all envs, warm cache, vs the naive cold builds. */
    wallTimeNaiveOverFerryNextVersion: number;
    bytesPushedNaiveOverFerryNextVersion: number;
  };
}

async function scenario(driver: StorageDriver): Promise<Scenario> {
  const work = await tempDir(`bench-build-${driver}`);
  const regF = await startRegistry();
  const regN = await startRegistry();
  try {
    const fixtureStore = join(work, 'fixture-store');
    const extra = { 'opt/stack/runtime.bin': pseudoRandom(SIZES.stackBytes, 7) };
    await buildBusyboxBase({
      image: `${regF.host}/bench/base:1`,
      marker: 'bench base',
      storeDir: fixtureStore,
      extra,
    });
    await buildBusyboxBase({
      image: `${regN.host}/bench/base:1`,
      marker: 'bench base',
      storeDir: fixtureStore,
      extra,
    });
    const repo = await makeAppRepo(join(work, 'repo'), `${regF.host}/bench/base:1`, SIZES.appBytes);
    const packageDir = await makePackageDir(join(work, 'packages'), SIZES.packages);

    console.log(`[${driver}] naive: 3 independent builds …`);
    const naive = await runNaive(regN, repo.dir, packageDir, join(work, 'naive'), 'v1', driver);
    console.log(`  ${naive.wallMs} ms, ${fmtBytes(naive.registryBytesGrowth)} pushed`);
    console.log(`[${driver}] ferry: 3 variants, shared layers …`);
    const ferry = await runFerry(regF, repo.dir, packageDir, join(work, 'ferry-cache'), 'v1', driver);
    console.log(`  ${ferry.wallMs} ms, ${fmtBytes(ferry.registryBytesGrowth)} pushed`);
    console.log(`[${driver}] ferry: next version v2 (warm layer cache) …`);
    const ferryV2 = await runFerry(regF, repo.dir, packageDir, join(work, 'ferry-cache'), 'v2', driver);
    console.log(`  ${ferryV2.wallMs} ms, ${fmtBytes(ferryV2.registryBytesGrowth)} pushed`);
    console.log(`[${driver}] ferry: 3 variants, first alone then the tails in parallel (fresh cache) …`);
    const ferryPar = await runFerry(regF, repo.dir, packageDir, join(work, 'ferry-par-cache'), 'v1', driver, {
      parallelTails: true,
      repository: 'bench/app-par',
    });
    console.log(`  ${ferryPar.wallMs} ms, ${fmtBytes(ferryPar.registryBytesGrowth)} pushed`);
    console.log(`[${driver}] floor: a COPY of each tail alone onto the first variant …`);
    const floorMs = await copyFloor(regF, packageDir, work, driver, `${regF.host}/bench/app:v1-${ENVS[0]}`);
    console.log(`  ${floorMs} ms per environment`);
    const overFirst = (r: ApproachResult) => +(r.wallMs / (r.perEnv[0]?.ms ?? r.wallMs)).toFixed(2);
    return {
      driver,
      isolation: isolationFor(driver),
      naive,
      ferry,
      ferryNextVersionWarm: ferryV2,
      ferryParallelTails: ferryPar,
      ratios: {
        threeVariantsOverFirst: overFirst(ferry),
        threeVariantsOverFirstParallelTails: overFirst(ferryPar),
        wallTimeNaiveOverFerry: +(naive.wallMs / ferry.wallMs).toFixed(2),
        bytesPushedNaiveOverFerry: +(naive.registryBytesGrowth / ferry.registryBytesGrowth).toFixed(2),
        uniqueLayerBytesNaiveOverFerry: +(naive.uniqueLayerBytes / ferry.uniqueLayerBytes).toFixed(2),
        marginalEnvMsFerry: marginal(ferry),
        marginalEnvMsNaive: marginal(naive),
        marginalEnvMsCopyFloor: floorMs,
        wallTimeNaiveOverFerryNextVersion: +(naive.wallMs / ferryV2.wallMs).toFixed(2),
        bytesPushedNaiveOverFerryNextVersion: +(
          naive.registryBytesGrowth / ferryV2.registryBytesGrowth
        ).toFixed(2),
      },
    };
  } finally {
    await regF.stop();
    await regN.stop();
    // buildah's overlay storage leaves mounts only while containers exist; none are left here.
    await rm(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  const { stdout: buildahVersion } = await exec('buildah', ['--version']);
  const drivers: StorageDriver[] = process.argv.includes('--vfs-only') ? ['vfs'] : ['vfs', 'overlay'];
  const scenarios: Scenario[] = [];
  for (const d of drivers) scenarios.push(await scenario(d));
  // what the config's default storage ("auto") picks on this host
  const probeDir = await tempDir('bench-build-storage-probe');
  const autoStorage = await chooseStorageDriver(probeDir, 'auto');
  await rm(probeDir, { recursive: true, force: true });

  const result = {
    benchmark: 'build',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, buildah: buildahVersion.trim() },
    setup: {
      environments: ENVS,
      tails: TAILS,
      baseImageBytes: SIZES.stackBytes,
      appPayloadBytes: SIZES.appBytes,
      packageBytes: SIZES.packages,
      note: 'Per storage driver: both approaches start from an empty build storage; each pushes to its own fresh registry already holding the base image. Bytes pushed = growth of the registry storage directory.',
    },
    scenarios,
    totalBenchMs: Math.round(performance.now() - started),
  };
  const outDir = join(here, 'results');
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'build.json'), JSON.stringify(result, null, 2) + '\n');

  const row = (name: string, r: ApproachResult) =>
    `| ${name} | ${(r.wallMs / 1000).toFixed(1)} s | ${r.perEnv.map((e) => `${e.env} ${(e.ms / 1000).toFixed(1)} s`).join(', ')} | ${fmtBytes(r.registryBytesGrowth)} | ${r.uniqueLayers} / ${fmtBytes(r.uniqueLayerBytes)} |`;
  const md = [
    '# Build benchmark: three environment variants of one version',
    '',
    `Run ${result.date} on ${result.machine.cpus} CPUs, ${result.machine.buildah}.`,
    `The config's default storage ("auto") picks **${autoStorage.driver}** on this host${autoStorage.fallbackReason ? `, because ${autoStorage.fallbackReason}` : ' (overlay is set up by buildah here)'}; both drivers are measured below.`,
    `Base image ${fmtBytes(SIZES.stackBytes)} (busybox + stack payload), app payload ${fmtBytes(SIZES.appBytes)},`,
    `packages ${Object.entries(SIZES.packages)
      .map(([k, v]) => `${k} ${fmtBytes(v)}`)
      .join(', ')}.`,
    'Tails: test = testtools + debugtools + a RUN; uat = debugtools + monitoring; prod = monitoring.',
    '',
    '- **ferry**: `buildVariant` per env — the app Dockerfile + env tail, `--layers --timestamp 0`, one persistent storage (empty at start).',
    '- **naive**: per env a fresh clone, a Dockerfile with the env packages installed *before* the app, `buildah bud` without `--layers`/`--timestamp`, separate storage each.',
    '- **ferry, next version (warm)**: v2 (one source file changed) of all three envs after v1, same storage.',
    '- **ferry, tails in parallel after the first**: as the build coordinator schedules them — the first environment alone (it builds the shared layers), then the other two at once on the same storage (fresh cache, v1).',
    '',
    ...scenarios.flatMap((sc) => [
      `## storage ${sc.driver}, isolation ${sc.isolation}`,
      '',
      '| approach | wall time (3 envs) | per env | registry growth (bytes pushed) | distinct non-base layers in the 3 manifests |',
      '| --- | --- | --- | --- | --- |',
      row('naive', sc.naive),
      row('ferry', sc.ferry),
      row('ferry, next version (warm)', sc.ferryNextVersionWarm),
      row('ferry, tails in parallel after the first', sc.ferryParallelTails),
      '',
      `- Wall time naive / ferry (3 envs, cold): **${sc.ratios.wallTimeNaiveOverFerry}×**; bytes pushed naive / ferry: **${sc.ratios.bytesPushedNaiveOverFerry}×**.`,
      `- Three variants over the first variant alone (target ≤ 1.2×): sequential **${sc.ratios.threeVariantsOverFirst}×**, tails in parallel **${sc.ratios.threeVariantsOverFirstParallelTails}×**.`,
      `- Marginal cost of one more environment: ferry ${(sc.ratios.marginalEnvMsFerry / 1000).toFixed(1)} s, naive ${(sc.ratios.marginalEnvMsNaive / 1000).toFixed(1)} s; the floor (a \`COPY\` of the tail alone, built and pushed) ${(sc.ratios.marginalEnvMsCopyFloor / 1000).toFixed(1)} s — Ferry ${(sc.ratios.marginalEnvMsFerry / Math.max(1, sc.ratios.marginalEnvMsCopyFloor)).toFixed(2)}× the floor.`,
      `- Next version with a warm cache vs naive: wall **${sc.ratios.wallTimeNaiveOverFerryNextVersion}×**, bytes **${sc.ratios.bytesPushedNaiveOverFerryNextVersion}×**.`,
      '',
    ]),
    '## Reading',
    '',
    'Bytes: with ferry every layer before the tail (app files, build output) is pushed once and reused by the',
    'other environments, and one package bundle is one layer in every environment that names it. The naive builds',
    'produce app layers whose content differs per environment (file times, build output), so the registry stores',
    'the app once per environment. The saving grows with the number of environments and the app size.',
    '',
    'Time: ferry pays for `--layers` (one layer commit per step, costly on vfs, which copies the whole rootfs per',
    'layer) on the first environment, then reuses the cache, so every further environment costs only its tail.',
    'The naive build commits one squashed layer per build. See the per-env column: the first ferry variant is the',
    'expensive one; the others are the marginal cost of an environment.',
    '',
    `Reproduce: \`node bench/build.ts\` (total ${(result.totalBenchMs / 1000).toFixed(0)} s here).`,
    '',
  ].join('\n');
  await writeFile(join(outDir, 'build.md'), md);
  console.log(md);
}

await main();
