// Uploads in chunks sized to the link, against real docker-registry
// processes: the chunk size grows on a fast link, a registry behind a proxy
// with a body limit (a stand-in for nginx's client_max_body_size) still gets
// every blob, and an upload cut midway continues from the registry's offset.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, type RegistryEndpoint } from '../../src/registry/client.ts';
import { MemoryResumeStore, RegistryPool, type SyncProgress, syncImages } from '../../src/registry/sync.ts';
import {
  type BodyLimitProxy,
  type BuiltImage,
  buildImage,
  type CountingProxy,
  pushImage,
  randomLayer,
  type StartedRegistry,
  startBodyLimitProxy,
  startCountingProxy,
  startRegistry,
} from '../support/registry.ts';

const MiB = 1024 * 1024;

let primary: StartedRegistry;
let source: RegistryEndpoint;
const started: StartedRegistry[] = [];
const proxies: { stop(): Promise<void> }[] = [];

beforeAll(async () => {
  primary = await startRegistry();
  source = { name: 'primary', url: primary.url };
});
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await Promise.all([primary, ...started].map((r) => r?.stop()));
});

/** Pushes a one-layer image of about `bytes` to the primary. */
async function oneLayerImage(repo: string, bytes: number): Promise<BuiltImage> {
  const img = buildImage([randomLayer(bytes, repo)], { label: repo });
  await pushImage(new RegistryClient({ name: 'primary-direct', url: primary.url }), repo, '1', img);
  return img;
}

async function region(): Promise<StartedRegistry> {
  const r = await startRegistry();
  started.push(r);
  return r;
}

/** Reads the blob back from the region; the client verifies its digest while reading. */
async function readBack(url: string, repo: string, digest: string): Promise<number> {
  const c = new RegistryClient({ name: 'check', url });
  return (await c.readBlob(repo, digest)).byteLength;
}

describe('chunked uploads sized to the link', () => {
  it('grow from 1 MiB to a handful of requests per blob on a fast link', async () => {
    const reg = await region();
    const counting: CountingProxy = await startCountingProxy(reg.url);
    proxies.push(counting);
    const target = { name: 'fast', url: counting.url };
    const pool = new RegistryPool(); // a cold link: nothing measured yet
    const cold = await oneLayerImage('chunks/cold', 40 * MiB);
    const layer = cold.layers[0]!;

    const first = await syncImages({
      source,
      targets: [target],
      images: [{ repo: 'chunks/cold', tag: '1' }],
      pool,
      concurrency: 1,
    });
    expect(first.ok).toBe(true);
    // concurrency 1 and big blobs first: the layer's PATCHes, then the config's
    const coldPatches = counting.requests.filter((r) => r.method === 'PATCH' && r.status === 202);
    const sizes = coldPatches.slice(0, -1).map((r) => r.received);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(layer.size);
    expect(sizes[0]).toBe(1 * MiB); // nothing measured yet: the smallest chunk
    for (let i = 1; i < sizes.length - 1; i++) expect(sizes[i]!).toBeGreaterThan(sizes[i - 1]!);
    expect(sizes.length).toBeGreaterThanOrEqual(2);
    expect(sizes.length).toBeLessThanOrEqual(4);
    expect(coldPatches.at(-1)!.received).toBe(cold.config.bytes.byteLength);

    // The same registry later (the pool keeps the measured link): big chunks from the first byte.
    counting.reset();
    const warm = await oneLayerImage('chunks/warm', 40 * MiB);
    const second = await syncImages({
      source,
      targets: [target],
      images: [{ repo: 'chunks/warm', tag: '1' }],
      pool,
      concurrency: 1,
    });
    expect(second.ok).toBe(true);
    const warmSizes = counting.requests
      .filter((r) => r.method === 'PATCH' && r.status === 202)
      .slice(0, -1)
      .map((r) => r.received);
    expect(warmSizes.reduce((a, b) => a + b, 0)).toBe(warm.layers[0]!.size);
    expect(warmSizes[0]!).toBeGreaterThanOrEqual(8 * MiB);
    expect(warmSizes.length).toBeLessThan(sizes.length);
    expect(await readBack(reg.url, 'chunks/cold', layer.digest)).toBe(layer.size);
    expect(await readBack(reg.url, 'chunks/warm', warm.layers[0]!.digest)).toBe(warm.layers[0]!.size);
  });

  it('a registry that refuses bodies above 3 MiB (413) gets the blob intact, in chunks of at most 3 MiB', async () => {
    const limit = 3 * MiB;
    const reg = await region();
    const limited: BodyLimitProxy = await startBodyLimitProxy(reg.url, { maxBody: limit });
    proxies.push(limited);
    const target = { name: 'behind-nginx', url: limited.url };
    const pool = new RegistryPool();
    const img = await oneLayerImage('chunks/limited', 14 * MiB);
    const layer = img.layers[0]!;
    const events: SyncProgress[] = [];

    const report = await syncImages({
      source,
      targets: [target],
      images: [{ repo: 'chunks/limited', tag: '1' }],
      pool,
      onProgress: (e) => events.push(e),
    });
    expect(report.errors).toEqual([]);
    expect(report.targets[0]!.errors).toEqual([]);
    expect(report.ok).toBe(true);
    const accepted = limited.patches.filter((p) => p.status === 202);
    expect(limited.patches.some((p) => p.status === 413)).toBe(true); // the limit was found by refusals
    for (const p of accepted) expect(p.received).toBeLessThanOrEqual(limit);
    expect(accepted.reduce((s, p) => s + p.received, 0)).toBe(layer.size + img.config.bytes.byteLength);
    // a refusal is not a failure: no retry was used up
    expect(events.filter((e) => e.type === 'blob-retry')).toEqual([]);
    expect(report.targets[0]!.bytesCopied).toBe(layer.size + img.config.bytes.byteLength);
    expect(await readBack(reg.url, 'chunks/limited', layer.digest)).toBe(layer.size);

    // The limit is remembered for the registry: the next blob is not refused once.
    limited.patches.length = 0;
    const next = await oneLayerImage('chunks/limited-next', 10 * MiB);
    const again = await syncImages({
      source,
      targets: [target],
      images: [{ repo: 'chunks/limited-next', tag: '1' }],
      pool,
    });
    expect(again.ok).toBe(true);
    expect(limited.patches.map((p) => p.status).filter((s) => s !== 202)).toEqual([]);
    for (const p of limited.patches) expect(p.received).toBeLessThanOrEqual(limit);
    expect(await readBack(reg.url, 'chunks/limited-next', next.layers[0]!.digest)).toBe(next.layers[0]!.size);
  });

  it('an upload cut midway continues from the offset the registry acknowledged; the blob is intact', async () => {
    const reg = await region();
    // Like nginx with request buffering: a request whose connection breaks never reaches the registry.
    const flaky: BodyLimitProxy = await startBodyLimitProxy(reg.url);
    proxies.push(flaky);
    const target = { name: 'flaky-link', url: flaky.url };
    const img = await oneLayerImage('chunks/cut', 24 * MiB);
    const layer = img.layers[0]!;
    flaky.cutPatchAfter = 12 * MiB;
    const events: SyncProgress[] = [];

    const report = await syncImages({
      source,
      targets: [target],
      images: [{ repo: 'chunks/cut', tag: '1' }],
      pool: new RegistryPool(),
      resume: new MemoryResumeStore(),
      retryDelayMs: 50,
      concurrency: 1,
      onProgress: (e) => events.push(e),
    });
    expect(report.ok).toBe(true);
    expect(flaky.cutPatchAfter).toBeUndefined(); // the cut happened
    expect(flaky.patches.some((p) => p.status === 0)).toBe(true);
    expect(events.filter((e) => e.type === 'blob-retry')).toHaveLength(1);
    const t = report.targets[0]!;
    // The retry continued from what the registry held: the chunks acknowledged before the cut.
    const beforeCut = flaky.patches.slice(
      0,
      flaky.patches.findIndex((p) => p.status === 0),
    );
    const acknowledged = beforeCut.reduce((s, p) => s + p.received, 0);
    expect(acknowledged).toBeGreaterThan(0);
    expect(t.blobsResumed).toBe(1);
    expect(t.bytesResumed).toBe(acknowledged);
    // Lost to the cut: at most the one chunk in flight.
    const sentInAll = flaky.patches.reduce((s, p) => s + p.received, 0);
    const lost = sentInAll - (layer.size + img.config.bytes.byteLength);
    const cutChunk = flaky.patches.find((p) => p.status === 0)!.received;
    expect(lost).toBe(cutChunk);
    expect(lost).toBeLessThan(layer.size - acknowledged);
    expect(await readBack(reg.url, 'chunks/cut', layer.digest)).toBe(layer.size);
  });
});
