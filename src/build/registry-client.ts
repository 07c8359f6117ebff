// The builder's read side of the distribution API — does a tag exist, what
// are its manifest, config and layers — as a thin view over Ferry's one
// registry client (src/registry), which brings auth and digest verification;
// clients come from the process's pool, so tokens are reused across builds.
import type { RegistryClient } from '../registry/client.ts';
import { NotFoundError, RegistryError } from '../registry/errors.ts';
import { defaultPool } from '../registry/pool.ts';

export { RegistryError };

export interface BuildRegistry {
  /** e.g. "http://127.0.0.1:5000" */
  url: string;
  /** Plain HTTP / unverified TLS allowed (passed to buildah as --tls-verify=false). */
  insecure: boolean;
  /** Basic credentials (also exchanged for a bearer token where the registry asks for one). */
  username?: string;
  password?: string;
  /** Where the password comes from, for messages: "$PRIMARY_REGISTRY_PASSWORD". Never the password. */
  passwordSource?: string;
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

function client(registry: BuildRegistry): RegistryClient {
  return defaultPool.client({
    name: registryHost(registry),
    url: registry.url,
    insecure: registry.insecure,
    ...(registry.username !== undefined ? { username: registry.username } : {}),
    ...(registry.password !== undefined ? { password: registry.password } : {}),
  });
}

/** GET a manifest by tag or digest (digest verified); undefined on 404. */
export async function getManifest(
  registry: BuildRegistry,
  repository: string,
  reference: string,
  signal?: AbortSignal,
): Promise<FetchedManifest | undefined> {
  try {
    const m = await client(registry).getManifest(repository, reference, signal);
    const raw = new TextDecoder().decode(m.bytes);
    return { digest: m.digest, mediaType: m.mediaType, manifest: m.json as ImageManifest, raw };
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

export async function getBlobJson<T>(
  registry: BuildRegistry,
  repository: string,
  digest: string,
  signal?: AbortSignal,
): Promise<T> {
  const bytes = await client(registry).readBlob(repository, digest, signal);
  return JSON.parse(new TextDecoder().decode(bytes)) as T;
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
