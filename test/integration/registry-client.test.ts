// Ferry's registry client against a real registry, and a sync run in a child
// process that is stopped (SIGTERM) or killed (SIGKILL) midway, then retried.

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NotFoundError,
  parseReference,
  RegistryClient,
  sha256Digest,
  UnreachableError,
} from '../../src/registry/client.ts';
import { Branch, pump } from '../../src/registry/fanout.ts';
import { FileResumeStore, syncImages } from '../../src/registry/sync.ts';
import {
  buildImage,
  type CountingProxy,
  freePort,
  pushImage,
  randomLayer,
  type StartedRegistry,
  startCountingProxy,
  startRegistry,
} from '../support/registry.ts';

const MiB = 1024 * 1024;
let reg: StartedRegistry;
let proxy: CountingProxy;
let client: RegistryClient;
let tmp: string;

beforeAll(async () => {
  reg = await startRegistry();
  proxy = await startCountingProxy(reg.url);
  client = new RegistryClient({ name: 'local', url: proxy.url });
  tmp = await mkdtemp(join(tmpdir(), 'ferry-registry-test-'));
});
afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
  await rm(tmp, { recursive: true, force: true });
});

describe('parseReference', () => {
  it('splits host:port/repo:tag@digest', () => {
    const d = `sha256:${'a'.repeat(64)}`;
    expect(parseReference(`127.0.0.1:5001/team/app:1.2@${d}`)).toEqual({
      registry: '127.0.0.1:5001',
      repository: 'team/app',
      tag: '1.2',
      digest: d,
    });
    expect(parseReference('127.0.0.1:5001/team/app')).toEqual({
      registry: '127.0.0.1:5001',
      repository: 'team/app',
    });
    expect(parseReference(`localhost/app@${d}`)).toEqual({
      registry: 'localhost',
      repository: 'app',
      digest: d,
    });
    expect(parseReference('nginx:1.27')).toEqual({
      registry: 'docker.io',
      repository: 'library/nginx',
      tag: '1.27',
    });
    expect(parseReference('team/app:v1')).toEqual({
      registry: 'docker.io',
      repository: 'team/app',
      tag: 'v1',
    });
    expect(() => parseReference('Team/App:1')).toThrow(/invalid repository/);
    expect(() => parseReference('app@sha256:xyz')).toThrow(/invalid digest/);
  });

  it('refuses plain HTTP to a non-loopback host unless insecure', () => {
    expect(() => new RegistryClient({ name: 'r', url: 'http://registry.example:5000' })).toThrow(
      /insecure: true/,
    );
    expect(
      () => new RegistryClient({ name: 'r', url: 'http://registry.example:5000', insecure: true }),
    ).not.toThrow();
  });
});

describe('fan-out (one source, several consumers)', () => {
  it('each consumer gets the source minus the prefix it skips, at its own pace, with bounded buffering', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 40 }),
        fc.array(fc.record({ skip: fc.nat(), delayEvery: fc.integer({ min: 1, max: 7 }) }), {
          minLength: 1,
          maxLength: 4,
        }),
        async (sizes, consumers) => {
          let seed = 1;
          const chunks = sizes.map((n) =>
            Uint8Array.from({ length: n }, () => (seed = (seed * 31 + 7) % 251)),
          );
          const all = Buffer.concat(chunks);
          let i = 0;
          const source = new ReadableStream<Uint8Array>({
            pull(c) {
              if (i < chunks.length) c.enqueue(chunks[i++]!);
              else c.close();
            },
          });
          const hwm = 4096;
          const branches = consumers.map((c) => new Branch(c.skip % (all.length + 1), hwm));
          const reads = branches.map(async (b, k) => {
            const parts: Uint8Array[] = [];
            let n = 0;
            for await (const part of b.stream) {
              parts.push(part);
              if (++n % consumers[k]!.delayEvery === 0) await new Promise((r) => setTimeout(r, 1));
            }
            return Buffer.concat(parts);
          });
          const pumping = pump(source, branches);
          const result = await pumping;
          for (const b of branches) b.close();
          expect(result.ended).toBe('complete');
          expect(result.read).toBe(all.length);
          const got = await Promise.all(reads);
          got.forEach((g, k) => {
            expect(Buffer.compare(g, all.subarray(consumers[k]!.skip % (all.length + 1)))).toBe(0);
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('a consumer that fails is dropped and the others finish', async () => {
    const data = Buffer.alloc(100_000, 7);
    const source = new Blob([data]).stream();
    const ok = new Branch(0, 1024);
    const bad = new Branch(0, 1024);
    const okRead = new Response(ok.stream).arrayBuffer();
    const reader = bad.stream.getReader();
    const pumping = pump(source, [ok, bad]);
    await reader.read();
    await reader.cancel(new Error('upload failed'));
    const result = await pumping;
    ok.close();
    expect(result.ended).toBe('complete');
    expect((await okRead).byteLength).toBe(data.byteLength);
    expect(bad.alive).toBe(false);
  });
});

describe('RegistryClient', () => {
  it('chunked upload sends PATCHes with Content-Range and the registry verifies the digest', async () => {
    const data = randomLayer(3 * MiB + 12345, 'chunky');
    proxy.reset();
    const digest = await client.pushBlobChunked('c/chunked', data.blob, { chunkSize: MiB });
    expect(digest).toBe(data.digest);
    const patches = proxy.requests.filter((r) => r.method === 'PATCH');
    expect(patches.length).toBe(4);
    expect(patches.map((p) => p.received)).toEqual([MiB, MiB, MiB, data.size - 3 * MiB]);
    expect(await client.headBlob('c/chunked', digest)).toBe(data.size);
    // read back as a verified stream
    const { body, size } = await client.getBlob('c/chunked', digest);
    expect(size).toBe(data.size);
    const back = Buffer.from(await new Response(body).arrayBuffer());
    expect(sha256Digest(back)).toBe(digest);
    // a wrong expected digest cancels the upload
    await expect(
      client.pushBlobChunked('c/chunked', data.blob.subarray(0, 1000), { digest: data.digest }),
    ).rejects.toThrow(/expected/);
  });

  it('resumes a streamed upload from the offset the registry reports', async () => {
    const data = randomLayer(2 * MiB, 'resume').blob;
    let s = await client.startUpload('c/resume');
    s = await client.patchUpload(s, new Blob([data.subarray(0, 700_000)]).stream());
    expect(s.offset).toBe(700_000);
    const status = await client.uploadStatus(s);
    expect(status.offset).toBe(700_000);
    s = await client.patchUpload(status, data.subarray(700_000));
    await client.completeUpload(s, sha256Digest(data));
    expect(await client.headBlob('c/resume', sha256Digest(data))).toBe(data.byteLength);
  });

  it('mount returns 201, or 202 with an upload session to fall back to', async () => {
    const blob = Buffer.from('mount me');
    const digest = await client.pushBlob('c/from', blob);
    expect(await client.mountBlob('c/to', digest, 'c/from')).toEqual({ mounted: true });
    expect(await client.headBlob('c/to', digest)).toBe(blob.byteLength);
    const miss = await client.mountBlob('c/to2', digest, 'c/nowhere');
    expect(miss.mounted).toBe(false);
    if (!miss.mounted) {
      await client.completeUpload(miss.session, digest, blob);
      expect(await client.headBlob('c/to2', digest)).toBe(blob.byteLength);
    }
  });

  it('lists tags, and says clearly what is missing or unreachable', async () => {
    const img = buildImage([randomLayer(1000, 't')]);
    for (const t of ['a', 'b', 'c']) await pushImage(client, 'c/tags', t, img);
    expect((await client.listTags('c/tags')).sort()).toEqual(['a', 'b', 'c']);
    expect(await client.listTags('c/none')).toEqual([]);
    await expect(client.getManifest('c/tags', 'zzz')).rejects.toThrow(NotFoundError);
    await expect(client.getManifest('c/tags', 'zzz')).rejects.toThrow(
      /manifest c\/tags:zzz not found in registry local/,
    );
    const down = new RegistryClient({ name: 'gone', url: `http://127.0.0.1:${await freePort()}` });
    const err = await down.ping().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toMatch(/registry gone .* is unreachable .*ECONNREFUSED/);
    expect((err as Error).cause).toBeDefined();
  });
});

// A sync in a child process, the way a worker runs it.
const childScript = (syncPath: string) => `
import { syncImages, FileResumeStore } from ${JSON.stringify(syncPath)};
const [source, target, repo, tag, statePath] = process.argv.slice(2);
const ac = new AbortController();
process.on('SIGTERM', () => ac.abort(new Error('SIGTERM')));
try {
  const report = await syncImages({
    source: { name: 'primary', url: source }, targets: [{ name: 'region', url: target }],
    images: [{ repo, tag }], concurrency: 1, signal: ac.signal, resume: new FileResumeStore(statePath),
    onProgress: (e) => { if (e.type === 'blob-progress' || e.type === 'blob-copied') console.log(JSON.stringify(e)); },
  });
  console.log(JSON.stringify({ type: 'report', report }));
} catch (err) { console.log(JSON.stringify({ type: 'aborted', message: String(err) })); }
`;

async function runChild(
  args: string[],
  stopWhen: (e: { type: string; digest?: string; bytes?: number }) => boolean,
  sig: NodeJS.Signals,
) {
  const script = join(tmp, 'sync-child.ts');
  await writeFile(script, childScript(resolve('src/registry/sync.ts')));
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  let signalled = false;
  const lines: { type: string }[] = [];
  child.stdout.on('data', (d) => {
    buf += d;
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const e = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      lines.push(e);
      if (!signalled && stopWhen(e)) {
        signalled = true;
        child.kill(sig);
      }
      i = buf.indexOf('\n');
    }
  });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { code, lines, signalled };
}

describe('sync in a child process stopped midway', () => {
  let primary: StartedRegistry;
  let pProxy: CountingProxy;
  beforeAll(async () => {
    primary = await startRegistry();
    pProxy = await startCountingProxy(primary.url);
  });
  afterAll(async () => {
    await pProxy?.stop();
    await primary?.stop();
  });

  it('SIGTERM: the worker ends its upload cleanly; the retry resumes from the registry offset', async () => {
    const big = randomLayer(16 * MiB, 'term');
    const img = buildImage([big], { label: 'term' });
    await pushImage(new RegistryClient({ name: 'p', url: primary.url }), 'w/term', '1', img);
    const region = await startRegistry();
    const rProxy = await startCountingProxy(region.url);
    try {
      const state = join(tmp, 'term-state.json');
      pProxy.reset();
      const run1 = await runChild(
        [pProxy.url, rProxy.url, 'w/term', '1', state],
        (e) => e.type === 'blob-progress' && e.digest === big.digest && (e.bytes ?? 0) > 6 * MiB,
        'SIGTERM',
      );
      expect(run1.signalled).toBe(true);
      expect(run1.lines.at(-1)).toMatchObject({ type: 'aborted' });
      const store = new FileResumeStore(state);
      const saved = store.get(`${rProxy.url}|w/term|${big.digest}`);
      expect(saved?.offset).toBeGreaterThan(6 * MiB);

      expect(pProxy.servedByBlob.get(big.digest)!).toBeGreaterThanOrEqual(saved!.offset);
      pProxy.reset();
      const report = await syncImages({
        source: { name: 'primary', url: pProxy.url },
        targets: [{ name: 'region', url: rProxy.url }],
        images: [{ repo: 'w/term', tag: '1' }],
        resume: store,
      });
      expect(report.ok).toBe(true);
      const t = report.targets[0]!;
      expect(t.blobsResumed).toBe(1);
      expect(t.bytesResumed).toBe(saved!.offset);
      const uploaded = rProxy.requests
        .filter((r) => r.method === 'PATCH')
        .reduce((s, r) => s + r.received, 0);
      expect(uploaded).toBe(big.size + img.config.bytes.byteLength);
      // the retry read only the rest of the blob from the source (a Range request from the saved offset)
      expect(pProxy.servedByBlob.get(big.digest)!).toBe(big.size - saved!.offset);
      const rc = new RegistryClient({ name: 'r', url: region.url });
      expect((await rc.getManifest('w/term', '1')).digest).toBe(img.manifest.digest);
    } finally {
      await rProxy.stop();
      await region.stop();
    }
  });

  it('SIGKILL: blobs that arrived whole are not copied again', async () => {
    const first = randomLayer(6 * MiB, 'kill1');
    const second = randomLayer(10 * MiB, 'kill2');
    const img = buildImage([second, first], { label: 'kill' });
    await pushImage(new RegistryClient({ name: 'p', url: primary.url }), 'w/kill', '1', img);
    const region = await startRegistry();
    try {
      const state = join(tmp, 'kill-state.json');
      // concurrency 1, biggest first: `second` completes, then `first` is killed halfway
      const run1 = await runChild(
        [primary.url, region.url, 'w/kill', '1', state],
        (e) => e.type === 'blob-progress' && e.digest === first.digest && (e.bytes ?? 0) > 3 * MiB,
        'SIGKILL',
      );
      expect(run1.signalled).toBe(true);
      expect(run1.lines.some((e) => e.type === 'blob-copied')).toBe(true);
      const report = await syncImages({
        source: { name: 'primary', url: primary.url },
        targets: [{ name: 'region', url: region.url }],
        images: [{ repo: 'w/kill', tag: '1' }],
        resume: new FileResumeStore(state),
      });
      expect(report.ok).toBe(true);
      const t = report.targets[0]!;
      expect(t.blobsSkipped).toBe(1);
      expect(t.bytesSkipped).toBe(second.size);
      expect(t.bytesCopied + t.bytesResumed).toBe(first.size + img.config.bytes.byteLength);
      const rc = new RegistryClient({ name: 'r', url: region.url });
      expect((await rc.getManifest('w/kill', '1')).digest).toBe(img.manifest.digest);
    } finally {
      await region.stop();
    }
  });
});
