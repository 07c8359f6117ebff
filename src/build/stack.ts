// The stack an app is built on, read from registries: a stack tag resolved
// to the digest it names now, the image an app image was built FROM, and the
// base a stack image was built on.
//
// Where each fact comes from:
//  - a stack tag's digest: the registry's answer for the tag (HEAD manifest);
//  - what an app image was built on: the `org.opencontainers.image.base.name`
//    annotation buildah writes into every manifest it builds, checked
//    against the registry (see imageBuiltOn) — also for a literal FROM;
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

/** The image config's diff ids (uncompressed layer ids), in layer order; undefined for an index. */
async function diffIds(
  client: RegistryClient,
  repository: string,
  reference: string,
  signal?: AbortSignal,
): Promise<string[] | undefined> {
  const m = await client.getManifest(repository, reference, signal);
  if (isIndex(m)) return undefined;
  const config = JSON.parse(
    new TextDecoder().decode(
      await client.readBlob(repository, (m.json as ImageManifestJson).config.digest, signal),
    ),
  ) as { rootfs?: { diff_ids?: string[] } };
  return config.rootfs?.diff_ids ?? [];
}

/**
 * The image an app image was built FROM, by digest. buildah names it in the
 * `org.opencontainers.image.base.name` annotation; its `.base.digest`
 * annotation cannot be trusted (buildah 1.28 with `--layers` records an
 * intermediate image of the build there). So:
 *  - FROM by digest (`FROM ${FERRY_STACK}` with Ferry's pinned stack): the
 *    digest in the name is exact;
 *  - FROM a tag (a literal FROM): the digest the tag names now, if that
 *    image's layers are exactly the first layers of the app image — proof it
 *    is what the build pulled. If the tag moved since, undefined: not known.
 */
export async function imageBuiltOn(
  image: { reference: string; annotations: Record<string, string> | undefined },
  known: RegistryEndpoint[],
  signal?: AbortSignal,
): Promise<PinnedImage | undefined> {
  const raw = image.annotations?.[BASE_NAME_ANNOTATION];
  if (!raw) return undefined;
  let from: ReturnType<typeof parseReference>;
  try {
    from = parseReference(raw);
  } catch {
    return undefined;
  }
  const name = `${from.registry}/${from.repository}`;
  if (from.digest) return { name, digest: from.digest };
  const now = await resolveImage(raw, known, signal);
  const app = parseReference(image.reference);
  const [fromLayers, appLayers] = await Promise.all([
    diffIds(new RegistryClient(endpointForHost(from.registry, known)), from.repository, now.digest, signal),
    diffIds(
      new RegistryClient(endpointForHost(app.registry, known)),
      app.repository,
      app.digest ?? app.tag ?? 'latest',
      signal,
    ),
  ]);
  if (!fromLayers || !appLayers || fromLayers.length > appLayers.length) return undefined;
  return fromLayers.every((d, i) => appLayers[i] === d) ? { name, digest: now.digest } : undefined;
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
  if (digest?.startsWith('sha256:')) {
    // A name without a host ("ferry/base") is in the stack's own registry.
    const label = labels[BASE_NAME_LABEL];
    let name = label || 'unknown';
    try {
      if (label) {
        const b = parseReference(label, ref.registry);
        name = `${b.registry}/${b.repository}`;
      }
    } catch {
      // Not a reference: show the label as it is.
    }
    return { name, digest };
  }
  // No labels: buildah's annotation, the best the stack image says.
  const name = json.annotations?.[BASE_NAME_ANNOTATION];
  const annotated = json.annotations?.[BASE_DIGEST_ANNOTATION];
  return annotated?.startsWith('sha256:') ? { name: name || 'unknown', digest: annotated } : undefined;
}
