// Auth (htpasswd Basic, Distribution token auth with a JWT issuer), digest
// verification, back-to-source and pull-through caches, on real registries.

import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DigestMismatchError,
  RegistryClient,
  type RegistryEndpoint,
  UnauthorizedError,
} from '../../src/registry/client.ts';
import { ensureImage, imageExists, syncImages } from '../../src/registry/sync.ts';
import {
  type BuiltImage,
  buildImage,
  pushImage,
  randomLayer,
  type StartedRegistry,
  skopeoInspect,
  startRegistry,
} from '../support/registry.ts';

const hostOf = (url: string) => url.replace(/^http:\/\//, '');
const started: StartedRegistry[] = [];
async function registry(opts: Parameters<typeof startRegistry>[0] = {}): Promise<StartedRegistry> {
  const r = await startRegistry(opts);
  started.push(r);
  return r;
}

let primary: StartedRegistry;
let source: RegistryEndpoint;
let app: BuiltImage;
let other: BuiltImage;

beforeAll(async () => {
  primary = await registry();
  source = { name: 'primary', url: primary.url };
  const c = new RegistryClient(source);
  const base = randomLayer(300 * 1024, 'base');
  app = buildImage([base, randomLayer(100 * 1024, 'app')], { label: 'app' });
  other = buildImage([base, randomLayer(80 * 1024, 'other')], { label: 'other' });
  await pushImage(c, 'shop/app', '2.0', app);
  await pushImage(c, 'shop/other', '2.0', other);
});

afterAll(async () => {
  await Promise.all(started.map((r) => r.stop()));
});

describe('basic auth (htpasswd)', () => {
  it('syncs with the right password and fails that region alone with a wrong one', async () => {
    const reg = await registry({ htpasswd: { ferry: 's3cret' } });
    const good: RegistryEndpoint = {
      name: 'region-basic',
      url: reg.url,
      username: 'ferry',
      password: 's3cret',
    };
    const bad: RegistryEndpoint = {
      name: 'region-basic-bad',
      url: reg.url,
      username: 'ferry',
      password: 'nope',
    };
    const report = await syncImages({ source, targets: [good], images: [{ repo: 'shop/app', tag: '2.0' }] });
    expect(report.ok).toBe(true);
    const got = await skopeoInspect(`${hostOf(reg.url)}/shop/app:2.0`, { creds: 'ferry:s3cret' });
    expect(got.Digest).toBe(app.manifest.digest);

    const anon = new RegistryClient({ name: 'region-basic-anon', url: reg.url });
    await expect(anon.getManifest('shop/app', '2.0')).rejects.toThrow(UnauthorizedError);
    await expect(anon.getManifest('shop/app', '2.0')).rejects.toThrow(/anonymous access/);

    const r2 = await syncImages({ source, targets: [bad], images: [{ repo: 'shop/other', tag: '2.0' }] });
    expect(r2.ok).toBe(false);
    expect(r2.targets[0]!.errors.join(' ')).toMatch(/region-basic-bad refused .*user "ferry".*HTTP 401/);
  });
});

describe('token auth (auth.token with a JWT issuer)', () => {
  it('fetches scoped tokens with basic credentials, mounts across repositories, and refuses anonymous pushes', async () => {
    const reg = await registry({ token: { users: { deployer: 'pw' }, anonymousPull: true } });
    const ep: RegistryEndpoint = { name: 'region-token', url: reg.url, username: 'deployer', password: 'pw' };
    const report = await syncImages({
      source,
      targets: [ep],
      images: [
        { repo: 'shop/app', tag: '2.0' },
        { repo: 'shop/other', tag: '2.0' },
      ],
    });
    expect(report.errors).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.targets[0]!.blobsMounted).toBe(1); // the shared base layer, mounted with a two-repository scope
    const issuer = reg.tokenIssuer!;
    expect(issuer.issued.count).toBeGreaterThan(0);
    expect(issuer.issued.scopes).toContain('repository:shop/app:pull,push');
    expect(issuer.issued.scopes.some((s) => /^repository:shop\/(app|other):pull$/.test(s))).toBe(true);
    // tokens are cached per scope: far fewer tokens than requests
    const c = new RegistryClient(ep);
    const before = issuer.issued.count;
    for (let i = 0; i < 5; i++) await c.getManifest('shop/app', '2.0');
    expect(issuer.issued.count - before).toBe(1);

    // anonymous: may pull (anonymousPull) but not push
    const anon = new RegistryClient({ name: 'region-token-anon', url: reg.url });
    expect((await anon.getManifest('shop/app', '2.0')).digest).toBe(app.manifest.digest);
    await expect(anon.startUpload('shop/app')).rejects.toThrow(UnauthorizedError);
    // wrong password: the token service says no
    const wrong = new RegistryClient({
      name: 'region-token-bad',
      url: reg.url,
      username: 'deployer',
      password: 'x',
    });
    await expect(wrong.getManifest('shop/app', '2.0')).rejects.toThrow(
      /token service .* refused the credentials/,
    );
  });
});

async function findBlobFile(root: string, digest: string): Promise<string> {
  const hex = digest.slice('sha256:'.length);
  const p = join(root, 'data/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
  await readdir(join(p, '..'));
  return p;
}

describe('digest verification', () => {
  it('detects a corrupt blob in the source: nothing is committed in the region', async () => {
    const bad = await registry();
    const c = new RegistryClient({ name: 'corrupt-source', url: bad.url });
    const layer = randomLayer(600 * 1024, 'rot');
    const img = buildImage([layer], { label: 'rot' });
    await pushImage(c, 'shop/rot', '1', img);
    // flip bytes in the middle of the stored layer (same size)
    const file = await findBlobFile(bad.dir, layer.digest);
    const data = await readFile(file);
    data[300_000] = (data[300_000]! ^ 0xff) & 0xff;
    await writeFile(file, data);

    await expect(c.readBlob('shop/rot', layer.digest)).rejects.toThrow(DigestMismatchError);
    await expect(c.readBlob('shop/rot', layer.digest)).rejects.toThrow(/does not match its digest/);

    const region = await registry();
    const report = await syncImages({
      source: { name: 'corrupt-source', url: bad.url },
      targets: [{ name: 'region-x', url: region.url }],
      images: [{ repo: 'shop/rot', tag: '1' }],
    });
    expect(report.ok).toBe(false);
    expect(report.targets[0]!.errors.join(' ')).toMatch(/does not match its digest/);
    const rc = new RegistryClient({ name: 'region-x', url: region.url });
    expect(await rc.headBlob('shop/rot', layer.digest)).toBeNull();
    expect(await rc.headManifest('shop/rot', '1')).toBeNull();
  });

  it('detects a manifest whose bytes do not match the digest it is fetched by', async () => {
    const bad = await registry();
    const c = new RegistryClient({ name: 'corrupt-manifest', url: bad.url });
    const img = buildImage([randomLayer(10 * 1024, 'm')], { label: 'm' });
    await pushImage(c, 'shop/m', '1', img);
    const file = await findBlobFile(bad.dir, img.manifest.digest);
    const text = (await readFile(file, 'utf8')).replace('"schemaVersion":2', '"schemaVersion":2 ');
    await writeFile(file, text);
    await expect(c.getManifest('shop/m', img.manifest.digest)).rejects.toThrow(DigestMismatchError);
  });
});

describe('back-to-source and pull-through caches', () => {
  it('ensureImage copies an image the region lacks, and is a no-op once it is there', async () => {
    const region = await registry();
    const ep: RegistryEndpoint = { name: 'region-c', url: region.url };
    expect(await imageExists(ep, 'shop/app', '2.0')).toBe(false);
    const first = await ensureImage({ origin: source, region: ep, repo: 'shop/app', tag: '2.0' });
    expect(first.copied).toBe(true);
    expect(first.digest).toBe(app.manifest.digest);
    expect(first.report!.targets[0]!.blobsCopied).toBe(3);
    expect(await imageExists(ep, 'shop/app', '2.0')).toBe(true);
    const again = await ensureImage({ origin: source, region: ep, repo: 'shop/app', tag: '2.0' });
    expect(again).toEqual({ digest: app.manifest.digest, copied: false });
    await expect(ensureImage({ origin: source, region: ep, repo: 'shop/app', tag: '9.9' })).rejects.toThrow(
      /not in the origin registry primary/,
    );
  });

  it('a region run as a pull-through cache serves an image it never had', async () => {
    const cache = await registry({ proxy: { remoteurl: primary.url } });
    const ep: RegistryEndpoint = { name: 'region-cache', url: cache.url };
    expect(await imageExists(ep, 'shop/other', '2.0')).toBe(true);
    const got = await skopeoInspect(`${hostOf(cache.url)}/shop/other:2.0`);
    expect(got.Digest).toBe(other.manifest.digest);
    expect(got.Layers).toEqual(other.layers.map((l) => l.digest));
    const c = new RegistryClient(ep);
    const bytes = await c.readBlob('shop/other', other.layers[1]!.digest);
    expect(bytes.byteLength).toBe(other.layers[1]!.size);
    const r = await ensureImage({ origin: source, region: ep, repo: 'shop/other', tag: '2.0' });
    expect(r.copied).toBe(false);
  });
});
