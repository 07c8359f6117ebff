// The builder's thin read side of the distribution API: does a tag exist, and
// what are its manifest, config and layers. Anonymous access only (what the
// one-machine registries need); a token-auth client belongs to src/registry.

export interface BuildRegistry {
  /** e.g. "http://127.0.0.1:5000" */
  url: string;
  /** Plain HTTP / unverified TLS allowed (passed to buildah as --tls-verify=false). */
  insecure: boolean;
}

export interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  manifest: ImageManifest;
  raw: string;
}

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** "127.0.0.1:5000" from "http://127.0.0.1:5000/". */
export function registryHost(registry: BuildRegistry): string {
  return new URL(registry.url).host;
}

function base(registry: BuildRegistry): string {
  return registry.url.replace(/\/+$/, '');
}

export class RegistryError extends Error {
  override name = 'RegistryError';
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

/** GET a manifest by tag or digest; undefined on 404. */
export async function getManifest(
  registry: BuildRegistry,
  repository: string,
  reference: string,
  signal?: AbortSignal,
): Promise<FetchedManifest | undefined> {
  const res = await fetch(`${base(registry)}/v2/${repository}/manifests/${reference}`, {
    headers: { Accept: MANIFEST_ACCEPT },
    signal: signal ?? null,
  });
  if (res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  const raw = await res.text();
  if (!res.ok)
    throw new RegistryError(`GET manifest ${repository}:${reference}: HTTP ${res.status} ${raw}`, res.status);
  const digest = res.headers.get('docker-content-digest') ?? (await sha256Digest(raw));
  const manifest = JSON.parse(raw) as ImageManifest;
  const mediaType = res.headers.get('content-type') ?? manifest.mediaType ?? '';
  return { digest, mediaType, manifest, raw };
}

export async function getBlobJson<T>(
  registry: BuildRegistry,
  repository: string,
  digest: string,
  signal?: AbortSignal,
): Promise<T> {
  const res = await fetch(`${base(registry)}/v2/${repository}/blobs/${digest}`, { signal: signal ?? null });
  const raw = await res.text();
  if (!res.ok) throw new RegistryError(`GET blob ${repository}@${digest}: HTTP ${res.status}`, res.status);
  return JSON.parse(raw) as T;
}

/** The image config's uncompressed layer ids (diff ids), in layer order. */
export async function getDiffIds(
  registry: BuildRegistry,
  repository: string,
  configDigest: string,
  signal?: AbortSignal,
): Promise<string[]> {
  const config = await getBlobJson<{ rootfs?: { diff_ids?: string[] } }>(
    registry,
    repository,
    configDigest,
    signal,
  );
  return config.rootfs?.diff_ids ?? [];
}

async function sha256Digest(s: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return 'sha256:' + createHash('sha256').update(s).digest('hex');
}
