// Benchmark: syncing a release train of images from the primary registry to
// 1, 2 and 4 regional registries (BENCH_SYNC_REGIONS=1,2,4) with
//   (a) Ferry's syncImages (every region at once, each blob read once),
//   (b) `skopeo copy` per image per region (what a script would do; 2 regions),
//   (c) `skopeo sync` (docker → docker) per repository per region,
//   (d) skopeo copy with the regions in parallel (same bytes, fairer wall time),
//   (e) the floor: `curl | tee | curl` of the distinct blobs, no client checks,
//   plus re-runs against up-to-date regions (2 regions).
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
import { Worker } from 'node:worker_threads';
import { RegistryClient, type RegistryEndpoint } from '../src/registry/client.ts';
import type { SyncReport } from '../src/registry/sync.ts';
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
  regions: number;
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

  /** Starts `n` empty region registries, runs `fn`, stops them. */
  async function withRegions<T>(n: number, fn: (regions: StartedRegistry[]) => Promise<T>): Promise<T> {
    const regions = await Promise.all(Array.from({ length: n }, () => startRegistry()));
    try {
      return await fn(regions);
    } finally {
      await Promise.all(regions.map((r) => r.stop()));
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

  /** Measures `fn` against `regions` (fresh ones when not given); every tag is checked afterwards. */
  async function measure(
    tool: string,
    description: string,
    n: number,
    fn: (regions: StartedRegistry[]) => Promise<{ invocations: number; notes?: string }>,
    opts: { regions?: StartedRegistry[]; verify?: boolean } = {},
  ): Promise<RunResult> {
    const body = async (regions: StartedRegistry[]) => {
      proxy.reset();
      const start = performance.now();
      const { invocations, notes } = await fn(regions);
      const wallMs = Math.round(performance.now() - start);
      const blobGets = proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/sha256:'));
      const result: RunResult = {
        tool,
        regions: n,
        description,
        wallMs,
        primaryBytesServed: proxy.served,
        primaryBlobBytes: [...proxy.servedByBlob.values()].reduce((x, y) => x + y, 0),
        primaryBlobGets: blobGets.length,
        primaryRequests: proxy.requests.length,
        invocations,
        verified: opts.verify === false ? true : await verify(regions),
        ...(notes ? { notes } : {}),
      };
      log(
        `${tool}, ${n} region(s): ${(wallMs / 1000).toFixed(1)} s, ${(result.primaryBlobBytes / MB).toFixed(1)} MiB of blobs from the primary, verified=${result.verified}`,
      );
      return result;
    };
    return opts.regions ? body(opts.regions) : withRegions(n, body);
  }

  const allImages = images.map(({ repo, tag }) => ({ repo, tag }));
  const results: RunResult[] = [];
  const ep = (r: StartedRegistry, i: number): RegistryEndpoint => ({ name: `region-${i + 1}`, url: r.url });

  /** Ferry's sync in a thread of its own (see sync-worker.ts), all regions at once. */
  const ferrySync = async (regions: StartedRegistry[]) => {
    const worker = new Worker(new URL('./sync-worker.ts', import.meta.url), {
      workerData: { source, targets: regions.map(ep), images: allImages },
    });
    const report = await new Promise<SyncReport>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    if (!report.ok)
      throw new Error(`ferry sync failed: ${JSON.stringify(report.targets.map((t) => t.errors))}`);
    const t = report.targets[0]!;
    return {
      invocations: 1,
      notes: `per region: ${t.blobsCopied} blobs copied, ${t.blobsMounted} mounted, ${t.blobsSkipped} skipped, ${t.manifestsPushed} manifests; ${(t.bytesCopied / MB).toFixed(1)} MiB sent`,
    };
  };

  const tls = ['--src-tls-verify=false', '--dest-tls-verify=false'];
  const skopeoCopy = (repo: string, tag: string, region: StartedRegistry) =>
    exec('skopeo', [
      'copy',
      '-q',
      '--all',
      '--preserve-digests',
      ...tls,
      `docker://${host(proxy.url)}/${repo}:${tag}`,
      `docker://${host(region.url)}/${repo}:${tag}`,
    ]);
  /** skopeo sync, docker → docker, every tag of each repository, one region at a time. */
  const skopeoSync = async (regions: StartedRegistry[]) => {
    let n = 0;
    for (const region of regions) {
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
  /** skopeo copy per image, the regions copied concurrently (one process per region at a time). */
  const skopeoCopyParallel = async (regions: StartedRegistry[]) => {
    await Promise.all(
      regions.map(async (region) => {
        for (const { repo, tag } of allImages) await skopeoCopy(repo, tag, region);
      }),
    );
    return { invocations: allImages.length * regions.length };
  };

  /**
   * The floor: every distinct blob read once from the primary by `curl` and
   * piped through `tee` into one monolithic `curl` PUT per region (the
   * registries still hash and store every byte), as many blobs at once as
   * Ferry streams; no verification, mounts, manifests or retries.
   */
  const blobSources = new Map<string, string>();
  for (const i of images) {
    blobSources.set(i.image.config.digest, i.repo);
    for (const l of i.image.layers) blobSources.set(l.digest, i.repo);
  }
  const floorCopy = async (regions: StartedRegistry[]) => {
    const queue = [...blobSources].sort(
      (a, b) => (uniqueBlobs.get(b[0]) ?? 0) - (uniqueBlobs.get(a[0]) ?? 0),
    );
    let runs = 0;
    const one = async ([digest, repo]: [string, string]) => {
      const locations = await Promise.all(
        regions.map(async (r) => {
          const res = await fetch(`${r.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
          await res.body?.cancel();
          const u = new URL(res.headers.get('location') ?? '', r.url);
          u.searchParams.set('digest', digest);
          return u.toString();
        }),
      );
      const put = (loc: string) =>
        `curl -sf -X PUT -H 'content-type: application/octet-stream' -T - '${loc}'`;
      const fifos = locations.slice(0, -1).map((_, i) => `"$d/${i}"`);
      const script = [
        'set -e',
        'd=$(mktemp -d)',
        ...locations
          .slice(0, -1)
          .map((loc, i) => `mkfifo "$d/${i}"; ${put(loc)} < "$d/${i}" > /dev/null & p${i}=$!`),
        `curl -sf '${proxy.url}/v2/${repo}/blobs/${digest}' | tee ${fifos.join(' ')} | ${put(locations.at(-1)!)} > /dev/null`,
        ...locations.slice(0, -1).map((_, i) => `wait $p${i}`),
        'rm -rf "$d"',
      ].join('\n');
      await exec('bash', ['-c', script]);
      runs += 2 + regions.length;
    };
    const workers = Array.from({ length: 4 }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) await one(next);
    });
    await Promise.all(workers);
    return { invocations: runs };
  };
  /** Pure read: `cat` of every distinct blob file of the primary's storage, and `curl` of each to /dev/null. */
  const blobFile = (digest: string) =>
    join(primary.dir, 'data/docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');
  const readFloor = async () => {
    const files = [...blobSources.keys()].map(blobFile);
    const t1 = performance.now();
    await exec('bash', ['-c', `cat ${files.map((f) => `'${f}'`).join(' ')} > /dev/null`]);
    const catMs = performance.now() - t1;
    const t2 = performance.now();
    await exec('bash', [
      '-c',
      [...blobSources]
        .map(([d, repo]) => `curl -sf '${primary.url}/v2/${repo}/blobs/${d}' > /dev/null`)
        .join(' && '),
    ]);
    const curlMs = performance.now() - t2;
    return { catMiBps: uniqueBytes / MB / (catMs / 1000), curlMiBps: uniqueBytes / MB / (curlMs / 1000) };
  };

  const regionCounts = (process.env.BENCH_SYNC_REGIONS ?? '1,2,4').split(',').map(Number);
  const read = await readFloor();
  log(`read floor: cat ${read.catMiBps.toFixed(0)} MiB/s, curl ${read.curlMiBps.toFixed(0)} MiB/s`);
  for (const n of regionCounts) {
    // Ferry, then a second Ferry run against the same (now synced) regions.
    await withRegions(n, async (regions) => {
      results.push(
        await measure(
          'ferry',
          'syncImages to every region at once (each blob read once, teed to every upload; mounts across repositories)',
          n,
          ferrySync,
          { regions },
        ),
      );
      if (n === 2) {
        results.push(
          await measure(
            'ferry (re-run, up to date)',
            'the same sync again: every image already there',
            n,
            ferrySync,
            {
              regions,
            },
          ),
        );
      }
    });
    results.push(
      await measure(
        'floor (curl | tee | curl)',
        'raw copy of the distinct blobs, no client checks',
        n,
        floorCopy,
        { verify: false },
      ),
    );
    if (n === 2) {
      results.push(
        await measure(
          'skopeo copy',
          'skopeo copy --all per image per region, one after the other',
          n,
          async (regions) => {
            for (const region of regions)
              for (const { repo, tag } of allImages) await skopeoCopy(repo, tag, region);
            return { invocations: allImages.length * regions.length };
          },
        ),
      );
    }
    await withRegions(n, async (regions) => {
      results.push(
        await measure(
          'skopeo sync',
          'skopeo sync --src docker --dest docker per repository per region',
          n,
          skopeoSync,
          {
            regions,
          },
        ),
      );
      if (n === 2) {
        results.push(
          await measure('skopeo sync (re-run, up to date)', 'the same skopeo sync again', n, skopeoSync, {
            regions,
          }),
        );
      }
    });
    if (n > 1) {
      results.push(
        await measure(
          'skopeo copy (regions in parallel)',
          'skopeo copy --all per image, the regions copied concurrently',
          n,
          skopeoCopyParallel,
        ),
      );
    }
  }

  await proxy.stop();
  await primary.stop();

  const ratio = (x: number, y: number) => Math.round((x / y) * 100) / 100;
  const find = (tool: string, n: number) => results.find((r) => r.tool === tool && r.regions === n);
  const ferry1 = find('ferry', 1);
  const perRegionCount = regionCounts.map((n) => {
    const ferry = find('ferry', n)!;
    const floor = find('floor (curl | tee | curl)', n);
    const sync = find('skopeo sync', n);
    const copyPar = find('skopeo copy (regions in parallel)', n);
    return {
      regions: n,
      ferryMs: ferry.wallMs,
      floorMs: floor?.wallMs,
      skopeoSyncMs: sync?.wallMs,
      skopeoCopyParallelMs: copyPar?.wallMs,
      /** Higher is better for Ferry: the reference's time over Ferry's. */
      skopeoSyncVsFerry: sync ? ratio(sync.wallMs, ferry.wallMs) : undefined,
      skopeoCopyParallelVsFerry: copyPar ? ratio(copyPar.wallMs, ferry.wallMs) : undefined,
      /** Ferry's throughput as a fraction of the floor's (1 = as fast as raw curl). */
      fractionOfFloor: floor ? ratio(floor.wallMs, ferry.wallMs) : undefined,
      /** Ferry's time for n regions over its time for one (target ≤ 1.2). */
      vsOneRegion: ferry1 ? ratio(ferry.wallMs, ferry1.wallMs) : undefined,
    };
  });
  const out = {
    benchmark: `image sync: primary → ${regionCounts.join(', ')} regions`,
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? '?',
      loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
      node: process.version,
      registry: (await exec('docker-registry', ['--version'])).stdout.trim(),
      skopeo: (await exec('skopeo', ['--version'])).stdout.trim(),
      curl: (await exec('curl', ['--version'])).stdout.split('\n')[0]?.trim(),
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
      regions: regionCounts,
    },
    readFloor: { catMiBps: Math.round(read.catMiBps), curlMiBps: Math.round(read.curlMiBps) },
    results,
    perRegionCount,
    targets: { skopeoSyncVsFerryAt2: 2.5, skopeoSyncVsFerryAt4: 3, nRegionsVsOne: 1.2 },
    totalBenchSeconds: Math.round((Date.now() - t0) / 1000),
  };
  const dir = join(here, 'results');
  await writeFile(join(dir, 'sync.json'), `${JSON.stringify(out, null, 2)}\n`);

  const mib = (n: number) => (n / MB).toFixed(1);
  const sec = (ms: number | undefined) => (ms === undefined ? '—' : `${(ms / 1000).toFixed(1)} s`);
  const x = (v: number | undefined) => (v === undefined ? '—' : `${v}×`);
  const md = [
    `# Image sync benchmark: primary → ${regionCounts.join(', ')} regions`,
    '',
    `Run ${out.date} on ${out.machine.cpus} cores (${out.machine.cpuModel}), load average at the end ${out.machine.loadAverageAtEnd.join(' / ')} — the machine is shared, so wall times are noisy; bytes are exact.`,
    `${out.machine.registry}; ${out.machine.skopeo}; ${out.machine.curl}; Node ${out.machine.node}.`,
    '',
    `Data set: ${APPS.length} apps × ${VERSIONS.length} versions = ${images.length} images (layers: a ${SIZES.base / MB} MiB base shared by all, a ${SIZES.runtime / MB} MiB runtime per app, a ${SIZES.app / MB} MiB app layer per version; random, incompressible). ` +
      `${uniqueBlobs.size} distinct blobs, ${mib(uniqueBytes)} MiB distinct; ${mib(imageBytes)} MiB if every image is counted whole. ` +
      'Each approach starts with empty region registries (`docker-registry`, one process each); the primary is read through a byte-counting proxy. ' +
      "Ferry's sync runs in a worker thread of its own (the proxy serves from the bench's main thread; skopeo and curl are processes of their own).",
    '',
    `Read floor of the same blobs: \`cat\` of the primary's blob files ${out.readFloor.catMiBps} MiB/s, \`curl\` GET from the primary ${out.readFloor.curlMiBps} MiB/s.`,
    '',
    '## Summary',
    '',
    '| regions | Ferry | floor (curl \\| tee \\| curl) | Ferry as a fraction of the floor | skopeo sync | skopeo sync / Ferry | skopeo copy, regions in parallel | that / Ferry | Ferry, N regions / 1 region |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...perRegionCount.map(
      (r) =>
        `| ${r.regions} | ${sec(r.ferryMs)} | ${sec(r.floorMs)} | ${r.fractionOfFloor ?? '—'} | ${sec(r.skopeoSyncMs)} | ${x(r.skopeoSyncVsFerry)} | ${sec(r.skopeoCopyParallelMs)} | ${x(r.skopeoCopyParallelVsFerry)} | ${x(r.vsOneRegion)} |`,
    ),
    '',
    'Targets: skopeo sync / Ferry ≥ 2.5× at 2 regions and ≥ 3× at 4; Ferry with N regions ≤ 1.2× its time for one.',
    '',
    '## Every run',
    '',
    '| approach | regions | wall time | blob bytes read from primary | blob GETs | all bytes served by primary | process runs | verified |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...results.map(
      (r) =>
        `| ${r.tool} | ${r.regions} | ${(r.wallMs / 1000).toFixed(1)} s | ${mib(r.primaryBlobBytes)} MiB | ${r.primaryBlobGets} | ${mib(r.primaryBytesServed)} MiB | ${r.invocations} | ${r.verified ? 'yes' : r.tool.startsWith('floor') ? 'n/a' : 'NO'} |`,
    ),
    '',
    'Notes:',
    '',
    ...results.filter((r) => r.notes).map((r) => `- ${r.tool}, ${r.regions} region(s): ${r.notes}`),
    '- skopeo copies one destination at a time, so every blob is read from the primary once per region at best; Ferry tees one read into every region.',
    "- The floor moves the same distinct blobs with no client-side work: one `curl` GET per blob piped through `tee` into one monolithic `curl` PUT per region, 4 blobs at a time (Ferry's default). The registries still hash and store every byte, so the floor is bounded by the same CPU and disk as everyone else. It pushes no manifests (its tags are not checked).",
    '- "verified": every tag in every region resolves to the primary\'s manifest digest.',
    "- Ferry verifies every blob's sha256 while streaming (the registries verify again on commit); skopeo verifies too.",
    '',
  ].join('\n');
  await writeFile(join(dir, 'sync.md'), md);
  log(`done in ${out.totalBenchSeconds}s → bench/results/sync.json, sync.md`);
}

await main();
