// Stacks and rebuilds, as data: which deployed images are on an older digest
// of a stack than its tag names now, and what their rebuilt version is called.
// The stack rebuild command gathers the facts (deploy and version records, the
// stack tag's digest in the registry) and this decides; nothing here talks to
// a store or a registry.
import { VERSION_RE } from './grammar.ts';
import type { VersionRecord } from './version.ts';

/** A rebuilt version ends in `-stack.<first 12 hex digits of the stack digest>`. */
const REBUILD_SUFFIX_RE = /-stack\.[0-9a-f]{12}$/;

export function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

/**
 * The version a stack rebuild of `version` is released as: the same code
 * under a new name, so its tag differs from every image built on the old
 * stack (a tag is never rebuilt) and the version says what it is built on.
 * A rebuild of a rebuild replaces the suffix. Undefined when the name would
 * be longer than a version may be.
 */
export function rebuildVersion(version: string, stackDigest: string): string | undefined {
  const v = `${version.replace(REBUILD_SUFFIX_RE, '')}-stack.${shortDigest(stackDigest)}`;
  return VERSION_RE.test(v) ? v : undefined;
}

/** "host/repo" of an image reference, without tag or digest. */
export function imageName(reference: string): string {
  const at = reference.indexOf('@');
  const noDigest = at >= 0 ? reference.slice(0, at) : reference;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/** What is deployed of one app in one environment (newest deploy across its regions). */
export interface Deployed {
  app: string;
  environment: string;
  version: string;
  /** The version's record, when there is one. */
  record?: VersionRecord;
}

export interface RebuildItem {
  app: string;
  environment: string;
  /** The version deployed now, and the stack digest its image was built on (undefined: not recorded). */
  version: string;
  stackDigest?: string;
  /** What it is released as. */
  newVersion: string;
  /** The code to build: the deployed version's ref and commit. */
  ref: string;
  commit?: string;
}

export interface StackRebuildPlan {
  stack: string;
  /** host/repo of the stack image. */
  stackImage: string;
  /** The digest the stack's tag names now. */
  digest: string;
  outdated: RebuildItem[];
  /** Deployed images already on the current digest. */
  current: Deployed[];
  /** Deployed images that cannot be rebuilt onto the stack, with the reason. */
  skipped: (Deployed & { reason: string })[];
}

/**
 * Picks the deployed images built on an older digest of the stack. An image
 * whose record has no stack digest (built before Ferry recorded stacks) is
 * counted as outdated: after a stack patch, not knowing is not a reason to
 * keep the old one. An image built FROM another image than the stack is
 * skipped with that reason: rebuilding it would not change its base.
 */
export function planStackRebuild(input: {
  stack: string;
  stackImage: string;
  digest: string;
  deployed: Deployed[];
}): StackRebuildPlan {
  const plan: StackRebuildPlan = {
    stack: input.stack,
    stackImage: imageName(input.stackImage),
    digest: input.digest,
    outdated: [],
    current: [],
    skipped: [],
  };
  for (const d of input.deployed) {
    const image = d.record?.images[d.environment];
    if (!d.record || !image) {
      plan.skipped.push({ ...d, reason: `no build record of ${d.version} for ${d.environment}` });
      continue;
    }
    const on = image.stack;
    if (on && imageName(on.name) !== plan.stackImage) {
      plan.skipped.push({ ...d, reason: `built FROM ${imageName(on.name)}, not the stack image` });
      continue;
    }
    if (on?.digest === input.digest) {
      plan.current.push(d);
      continue;
    }
    const newVersion = rebuildVersion(d.version, input.digest);
    if (!newVersion) {
      plan.skipped.push({ ...d, reason: `"${d.version}" is too long to add a stack suffix to` });
      continue;
    }
    plan.outdated.push({
      app: d.app,
      environment: d.environment,
      version: d.version,
      ...(on ? { stackDigest: on.digest } : {}),
      newVersion,
      ref: d.record.ref,
      ...(d.record.commit ? { commit: d.record.commit } : {}),
    });
  }
  return plan;
}
