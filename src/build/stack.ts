// The stack an app is built on, read from registries: a stack tag resolved
// to the digest it names now, the image an app image was built FROM, and the
// base a stack image was built on.
//
// Where each fact comes from:
//  - a stack tag's digest: the registry's answer for the tag (HEAD manifest);
//  - what an app image was built on: the `org.opencontainers.image.base.digest`
//    and `.base.name` annotations buildah writes into every manifest it
//    builds FROM a pulled image — the digest it actually pulled, also for a
//    Dockerfile with a literal FROM;
//  - a stack's own base: the `io.ferry.base.digest`/`.name` labels the stack
//    build sets (infra/images/stack-shell/Dockerfile), because buildah's
//    annotation names the base as it was in the build's local storage, which
//    differs from the registry's digest when the base was built locally;
//    without the labels, the annotation.
import type { PinnedImage } from '../domain/version.ts';
import {
  type ImageManifestJson,
  isIndex,
  parseReference,
  RegistryClient,
  type RegistryEndpoint,
} from '../registry/client.ts';

export const BASE_DIGEST_ANNOTATION = 'org.opencontainers.image.base.digest';
export const BASE_NAME_ANNOTATION = 'org.opencontainers.image.base.name';
export const BASE_DIGEST_LABEL = 'io.ferry.base.digest';
export const BASE_NAME_LABEL = 'io.ferry.base.name';

/** The build arg an app's Dockerfile reads its stack from: `ARG FERRY_STACK` + `FROM ${FERRY_STACK}`. */
export const STACK_BUILD_ARG = 'FERRY_STACK';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** The configured registry serving `host` (with its credentials), else plain HTTPS (HTTP on loopback). */
export function endpointForHost(host: string, known: RegistryEndpoint[]): RegistryEndpoint {
  const hit = known.find((e) => new URL(e.url).host === host);
  if (hit) return hit;
  const hostname = host.replace(/:\d+$/, '');
  return { name: host, url: `${LOOPBACK.has(hostname) ? 'http' : 'https'}://${host}` };
}

/** "host/repo" and "host/repo@digest" of a stack tag, from the registry that serves it. */
export async function resolveImage(
  reference: string,
  known: RegistryEndpoint[],
  signal?: AbortSignal,
): Promise<PinnedImage & { pinned: string }> {
  const ref = parseReference(reference);
  const name = `${ref.registry}/${ref.repository}`;
  if (ref.digest) return { name, digest: ref.digest, pinned: `${name}@${ref.digest}` };
  const client = new RegistryClient(endpointForHost(ref.registry, known));
  const head = await client.headManifest(ref.repository, ref.tag ?? 'latest', signal);
  if (!head) throw new Error(`${reference} does not exist in registry ${client.name}`);
  return { name, digest: head.digest, pinned: `${name}@${head.digest}` };
}

/** The image a manifest says it was built FROM (buildah's base annotations), as host/repo and digest. */
export function builtOn(annotations: Record<string, string> | undefined): PinnedImage | undefined {
  const digest = annotations?.[BASE_DIGEST_ANNOTATION];
  const name = annotations?.[BASE_NAME_ANNOTATION];
  if (!digest?.startsWith('sha256:') || !name) return undefined;
  return { name: nameOf(name), digest };
}

function nameOf(reference: string): string {
  try {
    const r = parseReference(reference);
    return `${r.registry}/${r.repository}`;
  } catch {
    return reference;
  }
}

/**
 * The base a stack image was built on: its `io.ferry.base.*` labels, else
 * buildah's base annotations on its manifest; undefined when it says nothing.
 */
export async function stackBase(
  stack: PinnedImage,
  known: RegistryEndpoint[],
  signal?: AbortSignal,
): Promise<PinnedImage | undefined> {
  const ref = parseReference(stack.name);
  const client = new RegistryClient(endpointForHost(ref.registry, known));
  const manifest = await client.getManifest(ref.repository, stack.digest, signal);
  if (isIndex(manifest)) return undefined;
  const json = manifest.json as ImageManifestJson;
  const configBytes = await client.readBlob(ref.repository, json.config.digest, signal);
  const config = JSON.parse(new TextDecoder().decode(configBytes)) as {
    config?: { Labels?: Record<string, string> | null };
  };
  const labels = config.config?.Labels ?? {};
  const digest = labels[BASE_DIGEST_LABEL];
  if (digest?.startsWith('sha256:')) return { name: labels[BASE_NAME_LABEL] || 'unknown', digest };
  return builtOn(json.annotations);
}
