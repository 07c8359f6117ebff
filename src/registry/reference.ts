// Image reference parsing: [host[:port]/]repo/path[:tag][@sha256:hex]

export interface ImageReference {
  /** Registry host with port, e.g. "127.0.0.1:5001" or "docker.io". */
  registry: string;
  /** Repository path, e.g. "team/app" ("library/nginx" on Docker Hub). */
  repository: string;
  tag?: string;
  digest?: string;
}

const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const COMPONENT_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;

export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

export function isSha256Digest(s: string): boolean {
  return SHA256_RE.test(s);
}

export function isValidTag(s: string): boolean {
  return TAG_RE.test(s);
}

export function isValidRepository(s: string): boolean {
  return s.length > 0 && s.length <= 255 && s.split('/').every((c) => COMPONENT_RE.test(c));
}

/**
 * Parses `host:port/repo:tag@digest`. A first path component is a registry
 * host when it contains "." or ":" or is "localhost" (Docker's rule);
 * otherwise the registry is `defaultRegistry` (docker.io, where single-name
 * repositories get "library/").
 */
export function parseReference(input: string, defaultRegistry = 'docker.io'): ImageReference {
  const ref = input.trim();
  if (ref === '') throw new Error('empty image reference');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw new Error(`invalid digest "${digest}" in image reference "${input}"`);
  }
  let registry = defaultRegistry;
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      registry = first;
      rest = rest.slice(slash + 1);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isValidTag(tag)) throw new Error(`invalid tag "${tag}" in image reference "${input}"`);
  }
  let repository = rest;
  if (registry === 'docker.io' && !repository.includes('/')) repository = `library/${repository}`;
  if (!isValidRepository(repository)) {
    throw new Error(
      `invalid repository "${repository}" in image reference "${input}" (lowercase letters, digits and . _ - separators)`,
    );
  }
  const out: ImageReference = { registry, repository };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}
