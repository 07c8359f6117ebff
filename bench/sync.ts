// Benchmark: syncing a release train of images from the primary registry to
// two regional registries with
//   (a) Ferry's syncImages (both regions at once, each blob read once),
//   (b) `skopeo copy` per image per region (what a script would do),
//   (c) `skopeo sync` (docker → docker) per repository per region,
//   plus re-runs against up-to-date regions and skopeo copy with both regions
//   in parallel (same bytes, fairer wall time).
//
// Same machine, same run, same images. Each approach gets two fresh, empty
// region registries. The primary sits behind a byte-counting HTTP proxy that
// all three read through, so "bytes read from the primary" is measured the
// same way for everyone. Layer content is random (incompressible), so sizes
// are honest.
//
//   node bench/sync.ts            → bench/results/sync.json and sync.md

import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { RegistryClient, type RegistryEndpoint } from '../src/registry/client.ts';
import { syncImages } from '../src/registry/sync.ts';
import {
  type BuiltImage,
  buildImage,
  type CountingProxy,
  type Layer,
  pushImage,
  randomLayer,
  type StartedRegistry,
  startCountingProxy,
  startRegistry,
} from '../test/support/registry.ts';

const exec = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const MB = 1024 * 1024;

const APPS = ['api', 'web', 'worker'];
const VERSIONS = ['1.0.0', '1.1.0', '1.2.0'];
const SIZES = {
  /** OS base layer, shared by every app and version. */
  base: 30 * MB,
  /** Runtime layer (JDK, node…), one per app, shared by its versions. */
  runtime: 20 * MB,
  /** The app itself, new in every version. */
  app: 12 * MB,
};

interface RunResult {
  tool: string;
  description: string;
  wallMs: number;
  /** Response bytes the primary served (blobs, manifests, API JSON). */
  primaryBytesServed: number;
  /** Of which blob bytes. */
  primaryBlobBytes: number;
  primaryBlobGets: number;
  primaryRequests: number;
  invocations: number;
  verified: boolean;
  notes?: string;
}

const host = (url: string) => url.replace(/^http:\/\//, '');

async function main() {
  const t0 = Date.now();
  const log = (m: string) => console.error(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}`);

  // ---------------------------------------------------------------- data set
  const primary = await startRegistry();
  const direct = new RegistryClient({ name: 'primary', url: primary.url });
  log('generating layers');
  const base = randomLayer(SIZES.base, 'base');
  const images: { repo: string; tag: string; image: BuiltImage }[] = [];
  const uniqueBlobs = new Map<string, number>();
  for (const app of APPS) {
    const runtime = randomLayer(SIZES.runtime, `${app}-runtime`);
    for (const version of VERSIONS) {
      const own: Layer = randomLayer(SIZES.app, `${app}-${version}`);
      const image = buildImage([base, runtime, own], { label: `${app} ${version}` });
      images.push({ repo: `apps/${app}`, tag: version, image });
      uniqueBlobs.set(image.config.digest, image.config.bytes.byteLength);
      for (const l of image.layers) uniqueBlobs.set(l.digest, l.size);
    }
  }
  log('pushing to the primary');
  for (const i of images) await pushImage(direct, i.repo, i.tag, i.image);
  const uniqueBytes = [...uniqueBlobs.values()].reduce((a, b) => a + b, 0);
  const imageBytes = images.reduce(
    (s, i) => s + i.image.config.bytes.byteLength + i.image.layers.reduce((a, l) => a + l.size, 0),
    0,
  );
  log(
    `${images.length} images, ${uniqueBlobs.size} distinct blobs, ${(uniqueBytes / MB).toFixed(1)} MiB distinct`,
  );

  const proxy: CountingProxy = await startCountingProxy(primary.url);
  const source: RegistryEndpoint = { name: 'primary', url: proxy.url };

  async function withRegions<T>(fn: (a: StartedRegistry, b: StartedRegistry) => Promise<T>): Promise<T> {
    const [a, b] = await Promise.all([startRegistry(), startRegistry()]);
    try {
      return await fn(a, b);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  }

  async function verify(regions: StartedRegistry[]): Promise<boolean> {
    for (const r of regions) {
      const c = new RegistryClient({ name: 'verify', url: r.url });
      for (const i of images) {
        const d = await c.headManifest(i.repo, i.tag);
        if (d?.digest !== i.image.manifest.digest) {
          console.error(`verify: ${r.url}/${i.repo}:${i.tag} is ${d?.digest ?? 'missing'}`);
          return false;
        }
      }
    }
    return true;
  }

  async function measure(
    tool: string,
    description: string,
    fn: (a: StartedRegistry, b: StartedRegistry) => Promise<{ invocations: number; notes?: string }>,
    opts: { regions?: [StartedRegistry, StartedRegistry] } = {},
  ): Promise<RunResult> {
    const body = async (a: StartedRegistry, b: StartedRegistry) => {
      proxy.reset();
      const start = performance.now();
      const { invocations, notes } = await fn(a, b);
      const wallMs = Math.round(performance.now() - start);
      const blobGets = proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:'));
      const result: RunResult = {
        tool,
        description,
        wallMs,
        primaryBytesServed: proxy.served,
        primaryBlobBytes: [...proxy.servedByBlob.values()].reduce((x, y) => x + y, 0),
        primaryBlobGets: blobGets.length,
        primaryRequests: proxy.requests.length,
        invocations,
        verified: await verify([a, b]),
        ...(notes ? { notes } : {}),
      };
      log(
        `${tool}: ${(wallMs / 1000).toFixed(1)} s, ${(result.primaryBlobBytes / MB).toFixed(1)} MiB of blobs from the primary, verified=${result.verified}`,
      );
      return result;
    };
    return opts.regions ? body(...opts.regions) : withRegions(body);
  }

  const allImages = images.map(({ repo, tag }) => ({ repo, tag }));
  const results: RunResult[] = [];

  // (a) Ferry, then a second Ferry run against the same (now synced) regions.
  const [fa, fb] = await Promise.all([startRegistry(), startRegistry()]);
  try {
    const ep = (r: StartedRegistry, name: string): RegistryEndpoint => ({ name, url: r.url });
    results.push(
      await measure(
        'ferry',
        'syncImages to both regions at once (each blob read once, teed to both uploads; mounts across repositories)',
        async (a, b) => {
          const report = await syncImages({
            source,
            targets: [ep(a, 'region-a'), ep(b, 'region-b')],
            images: allImages,
          });
          if (!report.ok)
            throw new Error(`ferry sync failed: ${JSON.stringify(report.targets.map((t) => t.errors))}`);
          const t = report.targets[0]!;
          return {
            invocations: 1,
            notes: `per region: ${t.blobsCopied} blobs copied, ${t.blobsMounted} mounted, ${t.manifestsPushed} manifests`,
          };
        },
        { regions: [fa, fb] },
      ),
    );
    results.push(
      await measure(
        'ferry (re-run, up to date)',
        'the same sync again: every image already in both regions',
        async (a, b) => {
          const report = await syncImages({
            source,
            targets: [ep(a, 'region-a'), ep(b, 'region-b')],
            images: allImages,
          });
          if (!report.ok) throw new Error('ferry re-sync failed');
          const copied = report.targets.reduce((s, t) => s + t.bytesCopied, 0);
          return { invocations: 1, notes: `${copied} bytes copied` };
        },
        { regions: [fa, fb] },
      ),
    );
  } finally {
    await Promise.all([fa.stop(), fb.stop()]);
  }

  // (b) skopeo copy, one image to one region at a time.
  const tls = ['--src-tls-verify=false', '--dest-tls-verify=false'];
  results.push(
    await measure(
      'skopeo copy',
      'skopeo copy --all per image per region, one after the other',
      async (a, b) => {
        let n = 0;
        for (const region of [a, b]) {
          for (const { repo, tag } of allImages) {
            await exec('skopeo', [
              'copy',
              '-q',
              '--all',
              '--preserve-digests',
              ...tls,
              `docker://${host(proxy.url)}/${repo}:${tag}`,
              `docker://${host(region.url)}/${repo}:${tag}`,
            ]);
            n++;
          }
        }
        return { invocations: n };
      },
    ),
  );

  // (c) skopeo sync, docker → docker, every tag of each repository, one region at a time; then again.
  const skopeoSync = async (a: StartedRegistry, b: StartedRegistry) => {
    let n = 0;
    for (const region of [a, b]) {
      for (const app of APPS) {
        await exec('skopeo', [
          'sync',
          '--src',
          'docker',
          '--dest',
          'docker',
          '--all',
          '--preserve-digests',
          ...tls,
          `${host(proxy.url)}/apps/${app}`,
          `${host(region.url)}/apps`,
        ]);
        n++;
      }
    }
    return { invocations: n };
  };
  const [sa, sb] = await Promise.all([startRegistry(), startRegistry()]);
  try {
    results.push(
      await measure(
        'skopeo sync',
        'skopeo sync --src docker --dest docker per repository per region',
        skopeoSync,
        {
          regions: [sa, sb],
        },
      ),
    );
    results.push(
      await measure('skopeo sync (re-run, up to date)', 'the same skopeo sync again', skopeoSync, {
        regions: [sa, sb],
      }),
    );
  } finally {
    await Promise.all([sa.stop(), sb.stop()]);
  }

  // (b') skopeo copy, the two regions in parallel (one skopeo process per region at a time).
  results.push(
    await measure(
      'skopeo copy (regions in parallel)',
      'skopeo copy --all per image, the two regions copied concurrently',
      async (a, b) => {
        const perRegion = async (region: StartedRegistry) => {
          for (const { repo, tag } of allImages) {
            await exec('skopeo', [
              'copy',
              '-q',
              '--all',
              '--preserve-digests',
              ...tls,
              `docker://${host(proxy.url)}/${repo}:${tag}`,
              `docker://${host(region.url)}/${repo}:${tag}`,
            ]);
          }
        };
        await Promise.all([perRegion(a), perRegion(b)]);
        return { invocations: allImages.length * 2 };
      },
    ),
  );

  await proxy.stop();
  await primary.stop();

  const ferry = results[0]!;
  const ratio = (x: number, y: number) => Math.round((x / y) * 100) / 100;
  const others = results.filter((r) => r.tool.startsWith('skopeo') && !r.tool.includes('re-run'));
  const out = {
    benchmark: 'image sync: primary → 2 regions',
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? '?',
      loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
      node: process.version,
      registry: (await exec('docker-registry', ['--version'])).stdout.trim(),
      skopeo: (await exec('skopeo', ['--version'])).stdout.trim(),
    },
    dataset: {
      apps: APPS,
      versions: VERSIONS,
      images: images.length,
      layerSizesMiB: {
        base: SIZES.base / MB,
        runtimePerApp: SIZES.runtime / MB,
        appPerVersion: SIZES.app / MB,
      },
      distinctBlobs: uniqueBlobs.size,
      distinctBytes: uniqueBytes,
      sumOfImageSizes: imageBytes,
      regions: 2,
    },
    results,
    ratios: Object.fromEntries(
      others.map((o) => [
        o.tool,
        {
          primaryBlobBytesVsFerry: ratio(o.primaryBlobBytes, ferry.primaryBlobBytes),
          wallTimeVsFerry: ratio(o.wallMs, ferry.wallMs),
        },
      ]),
    ),
    totalBenchSeconds: Math.round((Date.now() - t0) / 1000),
  };
  const dir = join(here, 'results');
  await writeFile(join(dir, 'sync.json'), `${JSON.stringify(out, null, 2)}\n`);

  const mib = (n: number) => (n / MB).toFixed(1);
  const md = [
    '# Image sync benchmark: primary → 2 regions',
    '',
    `Run ${out.date} on ${out.machine.cpus} cores (${out.machine.cpuModel}), load average at the end ${out.machine.loadAverageAtEnd.join(' / ')} — the machine is shared, so wall times are noisy; bytes are exact.`,
    `${out.machine.registry}; ${out.machine.skopeo}; Node ${out.machine.node}.`,
    '',
    `Data set: ${APPS.length} apps × ${VERSIONS.length} versions = ${images.length} images (layers: a ${SIZES.base / MB} MiB base shared by all, a ${SIZES.runtime / MB} MiB runtime per app, a ${SIZES.app / MB} MiB app layer per version; random, incompressible). ` +
      `${uniqueBlobs.size} distinct blobs, ${mib(uniqueBytes)} MiB distinct; ${mib(imageBytes)} MiB if every image is counted whole. ` +
      'Each approach starts with two empty region registries; the primary is read through a byte-counting proxy.',
    '',
    '| approach | wall time | blob bytes read from primary | blob GETs | all bytes served by primary | process runs | verified |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...results.map(
      (r) =>
        `| ${r.tool} | ${(r.wallMs / 1000).toFixed(1)} s | ${mib(r.primaryBlobBytes)} MiB | ${r.primaryBlobGets} | ${mib(r.primaryBytesServed)} MiB | ${r.invocations} | ${r.verified ? 'yes' : 'NO'} |`,
    ),
    '',
    'Ratios against Ferry (first run, fresh regions):',
    '',
    ...others.map(
      (o) =>
        `- ${o.tool}: reads ${ratio(o.primaryBlobBytes, ferry.primaryBlobBytes)}× the primary's blob bytes, takes ${ratio(o.wallMs, ferry.wallMs)}× the wall time.`,
    ),
    '',
    'Notes:',
    '',
    ...results.filter((r) => r.notes).map((r) => `- ${r.tool}: ${r.notes}`),
    '- skopeo copies one destination at a time, so every blob is read from the primary once per region at best; Ferry tees one read into both regions.',
    '- "verified": every tag in both regions resolves to the primary\'s manifest digest.',
    '- Order: Ferry runs first; the later runs read the primary with a warmer page cache, which if anything favours them.',
    "- Ferry verifies every blob's sha256 while streaming (the registries verify again on commit); skopeo verifies too.",
    '',
  ].join('\n');
  await writeFile(join(dir, 'sync.md'), md);
  log(`done in ${out.totalBenchSeconds}s → bench/results/sync.json, sync.md`);
}

await main();
