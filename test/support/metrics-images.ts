// Sample-app images that serve /metrics, for the analysis tests: the stack's
// ferry-run built from this checkout (infra/images/stack-shell) and hello-app
// v1 (good) and v4 (bad on purpose) on top of it, pushed to the primary
// registry under ferry-analysis/… and copied, same digest, to each region's
// registry. The tag carries a hash of the sources, so a rebuild happens only
// when they change, and the shared ferry/hello-app tags are never touched.
//
// The infrastructure builds the same images itself once its image tag moves
// (infra/infra.sh, images component); until then the tests build their own.
//
//   node test/support/metrics-images.ts     (prints the images as JSON)
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuiltImage } from '../../src/domain/ports.ts';
import { loadInfo, REPO_ROOT, type Region, run } from './infra.ts';
import { manifestDigest } from './kube.ts';

export const METRICS_REPO = 'ferry-analysis/hello-app';

function sourcesHash(): string {
  const h = createHash('sha256');
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else h.update(relative(REPO_ROOT, p)).update(readFileSync(p));
    }
  };
  walk(join(REPO_ROOT, 'infra/images/stack-shell'));
  walk(join(REPO_ROOT, 'infra/images/hello-app'));
  return h.digest('hex').slice(0, 12);
}

async function exists(base: string, ref: string): Promise<string | undefined> {
  return manifestDigest(base, METRICS_REPO, ref).catch(() => undefined);
}

async function bud(tag: string, ctx: string, args: string[] = []): Promise<void> {
  await run(
    'buildah',
    [
      'bud',
      '--layers',
      '--timestamp',
      '0',
      '--isolation',
      'chroot',
      '--tls-verify=false',
      '--pull=missing',
      '-t',
      tag,
      ...args,
      ctx,
    ],
    { timeoutMs: 600_000 },
  );
}

let building: Promise<Record<'v1' | 'v4', BuiltImage>> | undefined;

/** hello-app v1 and v4 with /metrics, in the primary and every region's registry. */
export function metricsImages(
  regions: readonly Region[] = ['eu-west', 'us-east'],
): Promise<Record<'v1' | 'v4', BuiltImage>> {
  building ??= build(regions);
  return building;
}

async function build(regions: readonly Region[]): Promise<Record<'v1' | 'v4', BuiltImage>> {
  const info = loadInfo();
  const primary = info.registries.primary;
  const hash = sourcesHash();
  const out = {} as Record<'v1' | 'v4', BuiltImage>;
  const versions = ['v1', 'v4'] as const;
  const missing = [];
  for (const v of versions) if (!(await exists(`http://${primary}`, `${v}-${hash}`))) missing.push(v);
  if (missing.length) {
    const work = mkdtempSync(join(tmpdir(), 'ferry-metrics-images-'));
    try {
      const stackCtx = join(work, 'stack');
      cpSync(join(REPO_ROOT, 'infra/images/stack-shell'), stackCtx, { recursive: true });
      await run(
        'go',
        [
          '-C',
          join(stackCtx, 'ferry-run'),
          'build',
          '-trimpath',
          '-ldflags',
          '-s -w',
          '-o',
          '../ferry-run.bin',
          '.',
        ],
        {
          env: {
            ...process.env,
            CGO_ENABLED: '0',
            GOFLAGS: '-mod=mod',
            GOPROXY: 'off',
            GOTOOLCHAIN: 'local',
          },
          timeoutMs: 300_000,
        },
      );
      const stackTag = `${primary}/ferry-analysis/stack-shell:${hash}`;
      await bud(stackTag, stackCtx, [
        '--build-arg',
        `BASE=${info.images.base}`,
        '--build-arg',
        'BASE_NAME=ferry/base',
      ]);
      await run('buildah', ['push', '-q', '--tls-verify=false', stackTag, `docker://${stackTag}`], {
        timeoutMs: 300_000,
      });
      for (const v of missing) {
        const ctx = join(work, v);
        cpSync(join(REPO_ROOT, 'infra/images/hello-app/common'), ctx, { recursive: true });
        cpSync(join(REPO_ROOT, 'infra/images/hello-app', v), ctx, { recursive: true });
        const df = join(ctx, 'Dockerfile');
        writeFileSync(
          df,
          readFileSync(df, 'utf8').replace(/^ARG FERRY_STACK=.*$/m, `ARG FERRY_STACK=${stackTag}`),
        );
        const tag = `${primary}/${METRICS_REPO}:${v}-${hash}`;
        await bud(tag, ctx);
        await run('buildah', ['push', '-q', '--tls-verify=false', tag, `docker://${tag}`], {
          timeoutMs: 300_000,
        });
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  for (const v of versions) {
    const tag = `${v}-${hash}`;
    const digest = await manifestDigest(`http://${primary}`, METRICS_REPO, tag);
    for (const r of regions) {
      const host = info.registries.regions[r];
      if ((await exists(`http://${host}`, digest)) === digest) continue;
      await run(
        'skopeo',
        [
          'copy',
          '-q',
          '--preserve-digests',
          '--src-tls-verify=false',
          '--dest-tls-verify=false',
          `docker://${primary}/${METRICS_REPO}:${tag}`,
          `docker://${host}/${METRICS_REPO}:${tag}`,
        ],
        { timeoutMs: 300_000 },
      );
    }
    out[v] = { image: `${primary}/${METRICS_REPO}:${tag}`, digest, cached: true };
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  metricsImages().then(
    (images) => {
      console.log(JSON.stringify(images, null, 2));
      process.exit(0);
    },
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
