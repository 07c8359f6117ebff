// Ferry's own image for tests that run Ferry in a cluster: built with
// scripts/build-image.sh and tagged by a hash of everything that goes into it,
// so a warm run finds the tag in the primary registry and skips the build
// (several minutes: `npm ci --omit=dev` and the buildah layers).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT, run } from './infra.ts';

/** What scripts/build-image.sh copies into the image, and what decides how. */
const INPUTS = [
  'bin',
  'src',
  'commands',
  'jobs',
  'package.json',
  'package-lock.json',
  'deploy/image/Containerfile',
  'scripts/build-image.sh',
];

function files(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((name) => files(join(path, name)));
}

/** sha256 over the paths and contents of the image's inputs (the working tree, committed or not). */
export function imageSourceHash(): string {
  const h = createHash('sha256');
  for (const input of INPUTS) {
    for (const file of files(join(REPO_ROOT, input))) {
      h.update(`${relative(REPO_ROOT, file)}\0`);
      h.update(readFileSync(file));
      h.update('\0');
    }
  }
  return h.digest('hex').slice(0, 16);
}

/** The digest the registry serves for a tag, or undefined when it has no such tag. */
async function digestOf(registry: string, repo: string, tag: string): Promise<string | undefined> {
  const res = await fetch(`http://${registry}/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    headers: {
      accept: [
        'application/vnd.oci.image.manifest.v1+json',
        'application/vnd.docker.distribution.manifest.v2+json',
      ].join(', '),
    },
  });
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`HEAD ${registry}/${repo}:${tag}: ${res.status}`);
  return res.headers.get('docker-content-digest') ?? undefined;
}

export interface FerryImage {
  /** registry/repo:tag@sha256:… */
  ref: string;
  name: string;
  tag: string;
  digest: string;
  /** false when the registry already had the tag */
  built: boolean;
}

/**
 * Ferry's image for the current sources in the primary registry, built and
 * pushed only when the registry does not have it yet.
 */
export async function ensureFerryImage(registry: string): Promise<FerryImage> {
  const repo = 'ferry/ferry';
  const tag = `src-${imageSourceHash()}`;
  const name = `${registry}/${repo}`;
  const have = await digestOf(registry, repo, tag);
  if (have) return { ref: `${name}:${tag}@${have}`, name, tag, digest: have, built: false };
  const out = await run('bash', [join(REPO_ROOT, 'scripts', 'build-image.sh'), tag], {
    timeoutMs: 1_200_000,
    env: { FERRY_IMAGE_REGISTRY: registry },
  });
  const ref = out.stdout.trim().split('\n').at(-1) ?? '';
  const digest = ref.slice(ref.lastIndexOf('@') + 1);
  if (!digest.startsWith('sha256:')) throw new Error(`build-image.sh printed no digest:\n${out.stdout}`);
  return { ref, name, tag, digest, built: true };
}
