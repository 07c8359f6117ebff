// Image sync against real CNCF Distribution registries (docker-registry),
// checked with skopeo and with byte-counting proxies in front of them.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, type RegistryEndpoint } from '../../src/registry/client.ts';
import { MemoryResumeStore, type SyncProgress, syncImages } from '../../src/registry/sync.ts';
import {
  type BuiltImage,
  buildImage,
  type CountingProxy,
  freePort,
  type Layer,
  pushImage,
  pushIndex,
  randomLayer,
  type StartedRegistry,
  skopeoInspect,
  startCountingProxy,
  startRegistry,
} from '../support/registry.ts';

const MiB = 1024 * 1024;

let primary: StartedRegistry;
let regA: StartedRegistry;
let regB: StartedRegistry;
let pPrimary: CountingProxy;
let pA: CountingProxy;
let pB: CountingProxy;
let source: RegistryEndpoint;
let targetA: RegistryEndpoint;
let targetB: RegistryEndpoint;

const L: Record<string, Layer> = {};
const imgs: Record<string, BuiltImage> = {};
let multiDigest = '';
let multiManifestBytes = 0;
const IMAGES = [
  { repo: 'team/api', tag: '1.0' },
  { repo: 'team/api', tag: '1.1' },
  { repo: 'team/web', tag: '1.0' },
  { repo: 'team/multi', tag: '1.0' },
  { repo: 'team/legacy', tag: '1' },
  { repo: 'team/dlist', tag: '1' },
];

const hostOf = (url: string) => url.replace(/^http:\/\//, '');

function blobsOf(...images: BuiltImage[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const i of images) {
    m.set(i.config.digest, i.config.bytes.byteLength);
    for (const l of i.layers) m.set(l.digest, l.size);
  }
  return m;
}
const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

beforeAll(async () => {
  [primary, regA, regB] = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
  [pPrimary, pA, pB] = await Promise.all([
    startCountingProxy(primary.url),
    startCountingProxy(regA.url),
    startCountingProxy(regB.url),
  ]);
  source = { name: 'primary', url: pPrimary.url };
  targetA = { name: 'region-a', url: pA.url };
  targetB = { name: 'region-b', url: pB.url };

  L['base'] = randomLayer(512 * 1024, 'base');
  L['api1'] = randomLayer(300 * 1024, 'api1');
  L['api2'] = randomLayer(200 * 1024, 'api2');
  L['web'] = randomLayer(250 * 1024, 'web');
  L['arm'] = randomLayer(150 * 1024, 'arm');
  L['legacy'] = randomLayer(100 * 1024, 'legacy');
  imgs['api10'] = buildImage([L['base']!, L['api1']!], { label: 'api 1.0' });
  imgs['api11'] = buildImage([L['base']!, L['api1']!, L['api2']!], { label: 'api 1.1' });
  imgs['web'] = buildImage([L['base']!, L['web']!], { label: 'web' });
  imgs['amd64'] = buildImage([L['base']!, L['api2']!], { label: 'multi', arch: 'amd64' });
  imgs['arm64'] = buildImage([L['arm']!], { label: 'multi', arch: 'arm64' });
  imgs['legacy'] = buildImage([L['legacy']!], { label: 'legacy', docker: true });

  const c = new RegistryClient({ name: 'primary-direct', url: primary.url });
  await pushImage(c, 'team/api', '1.0', imgs['api10']!);
  await pushImage(c, 'team/api', '1.1', imgs['api11']!);
  await pushImage(c, 'team/web', '1.0', imgs['web']!);
  const idx = await pushIndex(c, 'team/multi', '1.0', [
    { image: imgs['amd64']!, platform: { os: 'linux', architecture: 'amd64' } },
    { image: imgs['arm64']!, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ]);
  multiDigest = idx.digest;
  multiManifestBytes =
    idx.bytes.byteLength +
    imgs['amd64']!.manifest.bytes.byteLength +
    imgs['arm64']!.manifest.bytes.byteLength;
  await pushImage(c, 'team/legacy', '1', imgs['legacy']!);
  // a Docker manifest list (schema 2) of Docker manifests
  imgs['damd64'] = buildImage([L['base']!, L['legacy']!], { label: 'dlist', arch: 'amd64', docker: true });
  imgs['darm64'] = buildImage([L['arm']!], { label: 'dlist', arch: 'arm64', docker: true });
  await pushIndex(
    c,
    'team/dlist',
    '1',
    [
      { image: imgs['damd64']!, platform: { os: 'linux', architecture: 'amd64' } },
      { image: imgs['darm64']!, platform: { os: 'linux', architecture: 'arm64' } },
    ],
    { docker: true },
  );
});

afterAll(async () => {
  await Promise.all([pPrimary?.stop(), pA?.stop(), pB?.stop()]);
  await Promise.all([primary?.stop(), regA?.stop(), regB?.stop()]);
});

describe('syncImages to two regions', () => {
  const allImages = () =>
    [
      imgs['api10']!,
      imgs['api11']!,
      imgs['web']!,
      imgs['amd64']!,
      imgs['arm64']!,
      imgs['legacy']!,
      imgs['damd64']!,
      imgs['darm64']!,
    ] as const;

  it('copies every image (and every platform of an index) so skopeo sees the same digest and layers', async () => {
    pPrimary.reset();
    pA.reset();
    pB.reset();
    const events: SyncProgress[] = [];
    const report = await syncImages({
      source,
      targets: [targetA, targetB],
      images: IMAGES,
      onProgress: (e) => events.push(e),
    });
    expect(report.errors).toEqual([]);
    expect(report.ok).toBe(true);
    for (const t of report.targets) {
      expect(t.ok).toBe(true);
      expect(t.images.map((i) => `${i.repo}:${i.tag}=${i.status}`).sort()).toEqual(
        IMAGES.map((i) => `${i.repo}:${i.tag}=copied`).sort(),
      );
    }

    for (const { repo, tag } of IMAGES) {
      const want = await skopeoInspect(`${hostOf(primary.url)}/${repo}:${tag}`);
      for (const reg of [regA, regB]) {
        const got = await skopeoInspect(`${hostOf(reg.url)}/${repo}:${tag}`);
        expect(got.Digest).toBe(want.Digest);
        expect(got.Layers).toEqual(want.Layers);
      }
    }
    // every platform of each index (OCI index, Docker manifest list), by digest
    for (const reg of [regA, regB]) {
      const c = new RegistryClient({ name: 'check', url: reg.url });
      expect((await c.getManifest('team/multi', '1.0')).digest).toBe(multiDigest);
      const list = await c.getManifest('team/dlist', '1');
      expect(list.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
      for (const [repo, children] of [
        ['team/multi', [imgs['amd64']!, imgs['arm64']!]],
        ['team/dlist', [imgs['damd64']!, imgs['darm64']!]],
      ] as const) {
        for (const child of children) {
          const m = await c.getManifest(repo, child.manifest.digest);
          expect(m.digest).toBe(child.manifest.digest);
          expect(m.mediaType).toBe(child.manifest.mediaType);
          for (const l of child.layers) expect(await c.headBlob(repo, l.digest)).toBe(l.size);
        }
      }
      const raw = await skopeoInspect(`${hostOf(reg.url)}/team/dlist:1`, { raw: true });
      expect((raw.raw as { manifests: unknown[] }).manifests).toHaveLength(2);
    }

    // Each distinct blob was read from the source exactly once although two regions got it.
    const unique = blobsOf(...allImages());
    expect(report.sourceBlobReads).toBe(unique.size);
    expect(report.sourceBytesRead).toBe(pPrimary.served); // the report's count is what the primary served
    for (const [digest, size] of unique) expect(pPrimary.servedByBlob.get(digest), digest).toBe(size);
    const blobGets = pPrimary.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
    expect(blobGets.length).toBe(unique.size);

    // Each region received each distinct blob once; other repositories got it by mount.
    for (const [t, p] of [
      [report.targets[0]!, pA],
      [report.targets[1]!, pB],
    ] as const) {
      expect(t.blobsCopied).toBe(unique.size);
      expect(t.bytesCopied).toBe(sum(unique));
      const manifests = IMAGES.length - 1 + 0; // image manifests (non-index)
      expect(manifests).toBeGreaterThan(0);
      const uploaded = p.requests.filter((r) => r.method === 'PATCH').reduce((s, r) => s + r.received, 0);
      expect(uploaded).toBe(sum(unique));
      // base is in team/api, team/web, team/multi; api1 in 1.0 and 1.1 is one repo; api2 in api and multi.
      expect(t.blobsMounted).toBeGreaterThanOrEqual(3);
      const mounts = p.requests.filter(
        (r) => r.method === 'POST' && r.path.includes('mount=') && r.status === 201,
      );
      expect(mounts.length).toBe(t.blobsMounted);
      expect(t.manifestsPushed).toBe(IMAGES.length + 4); // + two child manifests per index
    }
    expect(events.some((e) => e.type === 'blob-mounted')).toBe(true);
    expect(events.filter((e) => e.type === 'image-done').length).toBe(IMAGES.length * 2);
    expect(multiManifestBytes).toBeGreaterThan(0);
  });

  it('a second sync copies nothing and reads no blob from the source', async () => {
    pPrimary.reset();
    pA.reset();
    pB.reset();
    const report = await syncImages({ source, targets: [targetA, targetB], images: IMAGES });
    expect(report.ok).toBe(true);
    for (const t of report.targets) {
      expect(t.bytesCopied).toBe(0);
      expect(t.blobsCopied).toBe(0);
      expect(t.blobsMounted).toBe(0);
      expect(t.manifestsPushed).toBe(0);
      expect(t.images.every((i) => i.status === 'up-to-date')).toBe(true);
      expect(t.bytesSkipped).toBeGreaterThan(0);
    }
    expect(report.sourceBlobReads).toBe(0);
    expect([...pPrimary.servedByBlob.values()].reduce((a, b) => a + b, 0)).toBe(0);
    expect(pA.received + pB.received).toBe(0);
  });

  it('skips blobs a region already holds and mounts the ones it holds in another repository', async () => {
    // A new tag whose layers are all present in the region under other repositories.
    const c = new RegistryClient({ name: 'primary-direct', url: primary.url });
    const img = buildImage([L['base']!, L['web']!, L['api1']!], { label: 'combo' });
    await pushImage(c, 'team/combo', '1.0', img);
    pPrimary.reset();
    pA.reset();
    const report = await syncImages({
      source,
      targets: [targetA],
      images: [{ repo: 'team/combo', tag: '1.0' }],
    });
    expect(report.ok).toBe(true);
    const t = report.targets[0]!;
    expect(t.blobsMounted).toBe(3); // three layers, all in other repos of region A
    expect(t.blobsCopied).toBe(1); // only the new config
    expect(t.bytesCopied).toBe(img.config.bytes.byteLength);
    expect(pPrimary.servedByBlob.size).toBe(1);
    const a = await skopeoInspect(`${hostOf(regA.url)}/team/combo:1.0`);
    expect(a.Digest).toBe(img.manifest.digest);
  });

  it('an unreachable region fails alone, with the reason; the other region is synced', async () => {
    const c = new RegistryClient({ name: 'primary-direct', url: primary.url });
    const img = buildImage([randomLayer(64 * 1024, 'solo')], { label: 'solo' });
    await pushImage(c, 'team/solo', '1.0', img);
    const down: RegistryEndpoint = { name: 'region-down', url: `http://127.0.0.1:${await freePort()}` };
    const report = await syncImages({
      source,
      targets: [down, targetA],
      images: [{ repo: 'team/solo', tag: '1.0' }],
    });
    expect(report.ok).toBe(false);
    const [d, a] = report.targets;
    expect(d!.ok).toBe(false);
    expect(d!.errors.join(' ')).toMatch(/region-down.*unreachable.*ECONNREFUSED/);
    expect(d!.images).toEqual([expect.objectContaining({ repo: 'team/solo', status: 'failed' })]);
    expect(a!.ok).toBe(true);
    expect(a!.images[0]!.status).toBe('copied');
    expect((await skopeoInspect(`${hostOf(regA.url)}/team/solo:1.0`)).Digest).toBe(img.manifest.digest);
  });

  it('a region dying in the middle of a blob fails alone; the blob still reaches the other region', async () => {
    const mid = await startRegistry();
    const c = new RegistryClient({ name: 'primary-direct', url: primary.url });
    const big = randomLayer(12 * MiB, 'mid');
    const img = buildImage([big], { label: 'mid' });
    await pushImage(c, 'team/mid', '1.0', img);
    let killed = false;
    const report = await syncImages({
      source,
      targets: [{ name: 'region-mid', url: mid.url }, targetB],
      images: [{ repo: 'team/mid', tag: '1.0' }],
      onProgress: (e) => {
        if (!killed && e.type === 'blob-progress' && e.digest === big.digest && e.bytes > 4 * MiB) {
          killed = true;
          mid.process.kill('SIGKILL');
        }
      },
    });
    await mid.stop();
    expect(killed).toBe(true);
    const [m, b] = report.targets;
    expect(m!.ok).toBe(false);
    expect(m!.errors.length).toBeGreaterThan(0);
    expect(b!.ok).toBe(true);
    expect((await skopeoInspect(`${hostOf(regB.url)}/team/mid:1.0`)).Digest).toBe(img.manifest.digest);
  });
});

describe('interrupted sync', () => {
  it('aborted partway through a large blob, the retry copies nothing twice and the tag appears only at the end', async () => {
    const c = new RegistryClient({ name: 'primary-direct', url: primary.url });
    const big = randomLayer(24 * MiB, 'big');
    const small = randomLayer(200 * 1024, 'small');
    const img = buildImage([small, big], { label: 'big' });
    await pushImage(c, 'team/big', '1.0', img);
    const unique = blobsOf(img);
    const resume = new MemoryResumeStore();
    pPrimary.reset();
    pA.reset();
    pB.reset();

    const ac = new AbortController();
    let abortedAt = 0;
    const first = syncImages({
      source,
      targets: [targetA, targetB],
      images: [{ repo: 'team/big', tag: '1.0' }],
      signal: ac.signal,
      resume,
      concurrency: 1, // big blob first, then the others
      onProgress: (e) => {
        if (!abortedAt && e.type === 'blob-progress' && e.digest === big.digest && e.bytes >= big.size / 2) {
          abortedAt = e.bytes;
          ac.abort(new Error('worker shutting down'));
        }
      },
    });
    await expect(first).rejects.toThrow(/worker shutting down/);
    expect(abortedAt).toBeGreaterThan(0);
    // nothing visible by tag, the session remembered per region
    for (const reg of [regA, regB]) {
      const rc = new RegistryClient({ name: 'check', url: reg.url });
      expect(await rc.headManifest('team/big', '1.0')).toBeNull();
      expect(await rc.headBlob('team/big', big.digest)).toBeNull();
    }
    expect(resume.size).toBe(2);
    const servedFirst = pPrimary.servedByBlob.get(big.digest) ?? 0;
    const uploadedFirst = [pA, pB].map((p) =>
      p.requests.filter((r) => r.method === 'PATCH').reduce((s, r) => s + r.received, 0),
    );

    const second = await syncImages({
      source,
      targets: [targetA, targetB],
      images: [{ repo: 'team/big', tag: '1.0' }],
      resume,
    });
    expect(second.ok).toBe(true);
    expect(resume.size).toBe(0);
    for (const t of second.targets) {
      expect(t.blobsResumed).toBe(1);
      expect(t.bytesResumed).toBeGreaterThanOrEqual(abortedAt - 2 * MiB);
      expect(t.bytesResumed + t.bytesCopied).toBe(sum(unique));
    }
    // Uploaded bytes, both runs together, per region: every byte of every blob exactly once.
    for (const [i, p] of [pA, pB].entries()) {
      const total = p.requests.filter((r) => r.method === 'PATCH').reduce((s, r) => s + r.received, 0);
      expect(uploadedFirst[i]).toBeGreaterThan(0);
      expect(total).toBe(sum(unique));
    }
    // Read from the source: the retry asked only for the rest of the blob (Range from the resumed offset).
    // The first run's figure also counts what sat in socket buffers when it stopped.
    const servedSecond = (pPrimary.servedByBlob.get(big.digest) ?? 0) - servedFirst;
    const resumedAt = second.targets[0]!.bytesResumed;
    expect(second.targets[1]!.bytesResumed).toBe(resumedAt);
    expect(servedFirst).toBeGreaterThanOrEqual(resumedAt);
    expect(servedSecond).toBe(big.size - resumedAt);
    const ranged = pPrimary.requests.filter((r) => r.method === 'GET' && r.path.includes(big.digest));
    expect(ranged.length).toBe(2);
    for (const reg of [regA, regB]) {
      const got = await skopeoInspect(`${hostOf(reg.url)}/team/big:1.0`);
      expect(got.Digest).toBe(img.manifest.digest);
    }
  });
  it('a retry with a resumed region and a fresh region reads the blob once and sends each region only what it lacks', async () => {
    const c = new RegistryClient({ name: 'primary-direct', url: primary.url });
    const big = randomLayer(16 * MiB, 'mixed');
    const img = buildImage([big], { label: 'mixed' });
    await pushImage(c, 'team/mixed', '1.0', img);
    const fresh = await startRegistry();
    const pFresh = await startCountingProxy(fresh.url);
    try {
      const resume = new MemoryResumeStore();
      const ac = new AbortController();
      pA.reset();
      await expect(
        syncImages({
          source,
          targets: [targetA],
          images: [{ repo: 'team/mixed', tag: '1.0' }],
          signal: ac.signal,
          resume,
          concurrency: 1,
          onProgress: (e) => {
            if (e.type === 'blob-progress' && e.digest === big.digest && e.bytes >= 5 * MiB) ac.abort();
          },
        }),
      ).rejects.toThrow();
      const partial = pA.requests.filter((r) => r.method === 'PATCH').reduce((s, r) => s + r.received, 0);
      expect(partial).toBeGreaterThan(0);
      pPrimary.reset();
      const report = await syncImages({
        source,
        targets: [targetA, { name: 'region-fresh', url: pFresh.url }],
        images: [{ repo: 'team/mixed', tag: '1.0' }],
        resume,
      });
      expect(report.ok).toBe(true);
      const [a, f] = report.targets;
      expect(a!.blobsResumed).toBe(1);
      expect(a!.bytesResumed).toBe(partial);
      expect(f!.blobsResumed).toBe(0);
      // one full read from the source serves both: the resumed region skips what it has
      expect(pPrimary.servedByBlob.get(big.digest)).toBe(big.size);
      const sentA = pA.requests.filter((r) => r.method === 'PATCH').reduce((s, r) => s + r.received, 0);
      expect(sentA).toBe(big.size + img.config.bytes.byteLength);
      const sentF = pFresh.requests.filter((r) => r.method === 'PATCH').reduce((s, r) => s + r.received, 0);
      expect(sentF).toBe(big.size + img.config.bytes.byteLength);
      for (const url of [regA.url, fresh.url]) {
        expect((await skopeoInspect(`${hostOf(url)}/team/mixed:1.0`)).Digest).toBe(img.manifest.digest);
      }
    } finally {
      await pFresh.stop();
      await fresh.stop();
    }
  });
  it('a source link dropped mid-blob is retried within the sync, continuing from the offset the regions hold', async () => {
    const c = new RegistryClient({ name: 'primary-direct', url: primary.url });
    const big = randomLayer(12 * MiB, 'flaky');
    const img = buildImage([big], { label: 'flaky' });
    await pushImage(c, 'team/flaky', '1.0', img);
    pPrimary.reset();
    pA.reset();
    pB.reset();
    pPrimary.breakNext = { match: big.digest, afterBytes: 5 * MiB };
    const events: SyncProgress[] = [];
    const report = await syncImages({
      source,
      targets: [targetA, targetB],
      images: [{ repo: 'team/flaky', tag: '1.0' }],
      resume: new MemoryResumeStore(),
      retryDelayMs: 50,
      onProgress: (e) => events.push(e),
    });
    expect(report.ok).toBe(true);
    expect(events.filter((e) => e.type === 'blob-retry').length).toBe(2); // once per region
    const gets = pPrimary.requests.filter((r) => r.method === 'GET' && r.path.includes(big.digest));
    expect(gets.map((g) => g.status)).toEqual([200, 206]);
    for (const [i, t] of report.targets.entries()) {
      expect(t.blobsResumed).toBe(1);
      expect(t.bytesResumed).toBeGreaterThan(0);
      expect(gets[1]!.served).toBe(big.size - t.bytesResumed);
      const p = [pA, pB][i]!;
      const sent = p.requests.filter((r) => r.method === 'PATCH').reduce((s, r) => s + r.received, 0);
      expect(sent).toBe(big.size + img.config.bytes.byteLength);
    }
    for (const reg of [regA, regB]) {
      expect((await skopeoInspect(`${hostOf(reg.url)}/team/flaky:1.0`)).Digest).toBe(img.manifest.digest);
    }
  });
});
