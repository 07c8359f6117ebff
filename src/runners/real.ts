// The real step runners: buildah builds pushed to the primary registry,
// registry-to-registry sync to the regions, and Kubernetes rollouts. Each
// piece lives in its own module (src/build, src/registry, src/kube); this
// file only connects them to a release.
import { BuildCoordinator, BuildFailed, type BuildRegistry, MemoryBuildRecordStore } from '../build/index.ts';
import { appRepo } from '../build/repo-config.ts';
import { imageBuiltOn, resolveImage, STACK_BUILD_ARG, stackBase } from '../build/stack.ts';
import { expandPath } from '../config/paths.ts';
import type { FerryConfig } from '../domain/config.ts';
import { formatDuration } from '../domain/duration.ts';
import { TransientError } from '../domain/errors.ts';
import type { BuildPin, BuiltImage, StepIO, StepRunners } from '../domain/ports.ts';
import type { Release } from '../domain/release.ts';
import { literal } from '../domain/text.ts';
import type { RegistryEndpoint } from '../registry/client.ts';
import { ensureImage, syncImages } from '../registry/sync.ts';

/** Where an app's images live in every registry: the same path everywhere. */
export function repositoryOf(app: string): string {
  return `apps/${app}`;
}

export function endpoint(name: string, reg: FerryConfig['primaryRegistry']): RegistryEndpoint {
  return {
    name,
    url: reg.url,
    insecure: reg.insecure,
    ...(reg.username ? { username: reg.username } : {}),
    ...(reg.passwordEnv && process.env[reg.passwordEnv] ? { password: process.env[reg.passwordEnv] } : {}),
  };
}

/** The primary as the builder sees it: with its credentials, and where the password comes from (for messages). */
export function buildRegistry(reg: FerryConfig['primaryRegistry']): BuildRegistry {
  const password = reg.passwordEnv ? process.env[reg.passwordEnv] : undefined;
  return {
    url: reg.url,
    insecure: reg.insecure,
    ...(reg.username ? { username: reg.username } : {}),
    ...(reg.username && password ? { password } : {}),
    ...(reg.passwordEnv ? { passwordSource: `$${reg.passwordEnv}` } : {}),
  };
}

const hostOf = (url: string) => new URL(url).host;

function globMatch(glob: string, text: string): boolean {
  const re = new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return re.test(text);
}

/** The regions a version's image goes to by the config's sync rules (all of the release's regions when there are none). */
export function syncTargets(
  config: FerryConfig,
  release: Pick<Release, 'app' | 'environment' | 'regions'>,
  tag: string,
): string[] {
  if (config.sync.length === 0) return release.regions;
  const out = new Set<string>();
  for (const rule of config.sync) {
    const appOk = rule.apps.includes('*') || rule.apps.includes(release.app);
    const envOk = rule.environments.includes('*') || rule.environments.includes(release.environment);
    if (appOk && envOk && globMatch(rule.tags, tag)) for (const r of rule.regions) out.add(r);
  }
  return [...out];
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** Every registry of the config, with its credentials: where stack images are looked up. */
export function knownRegistries(config: FerryConfig): RegistryEndpoint[] {
  return [
    endpoint('primary', config.primaryRegistry),
    ...Object.entries(config.regions).map(([name, r]) => endpoint(name, r.registry)),
  ];
}

/**
 * The app's stack as the build gets it: the version's pinned digest, or the
 * digest the stack's tag names now (which the build job then pins).
 */
async function stackForBuild(
  config: FerryConfig,
  stackName: string,
  pin: BuildPin | undefined,
  signal: AbortSignal,
): Promise<NonNullable<BuildPin['stack']>> {
  if (pin?.stack) return pin.stack;
  const stack = config.stacks[stackName];
  if (!stack) throw new Error(`stack ${stackName} is no longer in the config`);
  try {
    const r = await resolveImage(stack.image, knownRegistries(config), signal);
    return { stackName, name: r.name, digest: r.digest };
  } catch (err) {
    // The cause keeps a network error transient (retried) and a missing tag final.
    throw new Error(
      `cannot resolve stack ${stackName} (${stack.image}) to a digest: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/** The config as a function, read at each step: a reloaded config applies to the next release. */
const reader = (config: FerryConfig | (() => FerryConfig)) =>
  typeof config === 'function' ? config : () => config;

export function buildRunner(live: FerryConfig | (() => FerryConfig)): StepRunners['build'] {
  const current = reader(live);
  const coordinator = new BuildCoordinator({
    store: new MemoryBuildRecordStore(),
    concurrency: current().limits.parallelBuilds,
  });
  return async (release: Release, io: StepIO, pin?: BuildPin): Promise<BuiltImage> => {
    const config = current();
    const app = config.apps[release.app];
    const env = config.environments[release.environment];
    if (!app || !env) throw new Error(`${release.app} or ${release.environment} is no longer in the config`);
    const lines: string[] = [];
    let lastSaid = 0;
    const stack = await stackForBuild(config, app.stack, pin, io.signal);
    try {
      const result = await coordinator.request({
        app: release.app,
        version: release.version,
        ref: pin?.ref ?? release.version,
        // `ARG FERRY_STACK` + `FROM ${FERRY_STACK}` builds on exactly this digest;
        // a Dockerfile with a literal FROM ignores it (buildah only warns).
        buildArgs: { [STACK_BUILD_ARG]: `${stack.name}@${stack.digest}` },
        ...appRepo(config, release.app),
        dockerfile: app.dockerfile,
        tail: env.tail,
        envName: release.environment,
        registry: buildRegistry(config.primaryRegistry),
        repository: repositoryOf(release.app),
        cacheDir: expandPath(config.build.cacheDir),
        packageDir: expandPath(config.build.packageDir),
        storageDriver: config.build.storageDriver,
        isolation: config.build.isolation,
        signal: io.signal,
        onLog: (line) => {
          lines.push(line);
          if (lines.length > 400) lines.shift();
          // Progress in the thread: each STEP line, at most one message every few seconds.
          if (/^STEP \d+\/\d+/.test(line) && Date.now() - lastSaid > 3000) {
            lastSaid = Date.now();
            void io.say(`build: ${literal(line.slice(0, 200))}`);
          }
        },
      });
      const { readFile } = await import('node:fs/promises');
      const log = result.cached ? '' : await readFile(result.logPath, 'utf8').catch(() => lines.join('\n'));
      await io.say(
        result.cached
          ? `Image \`${result.image}\` was already built: ${result.digest}`
          : `Built \`${result.image}\` (${result.layers.length} layers, ${formatDuration(result.durationMs)}): ${result.digest}`,
        {
          // The flow's build step after a pull-ahead that built finds the image recorded: said once.
          once: 'built',
          ...(log
            ? {
                snippet: log.split('\n').slice(-12).join('\n'),
                file: {
                  name: `build-${release.app}-${release.version}-${release.environment}.log`,
                  text: log,
                },
              }
            : {}),
        },
      );
      // What it was actually built on, from the image itself, so a literal
      // FROM is recorded as truthfully as FERRY_STACK.
      const on = await imageBuiltOn(
        {
          reference: `${result.image.slice(0, result.image.lastIndexOf(':'))}@${result.digest}`,
          annotations: result.manifest.annotations,
        },
        knownRegistries(config),
        io.signal,
      ).catch(() => undefined);
      const base = on
        ? await stackBase(on, knownRegistries(config), io.signal).catch(() => undefined)
        : undefined;
      if (on)
        await io.say(
          `Built on \`${on.name}@${on.digest}\`${base ? ` (base \`${base.name}@${base.digest}\`)` : ''}.`,
        );
      return {
        image: result.image,
        digest: result.digest,
        cached: result.cached,
        ...(result.commit ? { commit: result.commit } : {}),
        ...(on ? { stack: on } : {}),
        ...(base ? { base } : {}),
        pinnedStack: stack,
      };
    } catch (err) {
      if (err instanceof BuildFailed) {
        const { readFile } = await import('node:fs/promises');
        const log = await readFile(err.logPath, 'utf8').catch(() => lines.join('\n'));
        await io.say(`Build failed at ${literal(err.step)}.`, {
          snippet: err.lastLines.join('\n'),
          file: { name: `build-${release.app}-${release.version}-${release.environment}.log`, text: log },
        });
      }
      throw err;
    }
  };
}

export function syncRunner(live: FerryConfig | (() => FerryConfig)): StepRunners['sync'] {
  const current = reader(live);
  return async (release, image, io) => {
    const config = current();
    const tag = image.image.slice(image.image.lastIndexOf(':') + 1);
    const regions = syncTargets(config, release, tag).filter((r) => !config.regions[r]?.registry.pullThrough);
    if (regions.length === 0) {
      await io.say(
        'No region takes this image by the sync rules; each region fetches it back-to-source before its deploy.',
        { once: 'synced' },
      );
      return;
    }
    const report = await syncImages({
      source: endpoint('primary', config.primaryRegistry),
      targets: regions.map((r) =>
        endpoint(r, (config.regions[r] as FerryConfig['regions'][string]).registry),
      ),
      images: [{ repo: repositoryOf(release.app), tag }],
      signal: io.signal,
    });
    const lines = report.targets.map(
      (t) =>
        `${t.target}: ${t.ok ? `${t.images.length} image${t.images.length === 1 ? '' : 's'}, ${mb(t.bytesCopied)} copied, ${mb(t.bytesSkipped + t.bytesMounted)} skipped, ${formatDuration(t.timeMs)}` : `FAILED — ${literal(t.errors.join('; '))}`}`,
    );
    const failed = report.targets.filter((t) => !t.ok).map((t) => t.target);
    // A release that pulled ahead while it waited synced then, and its flow's sync finds everything in
    // place: the thread says "synced" once. A failure is news every time.
    await io.say(
      `Synced from the primary (${mb(report.sourceBytesRead)} read once):\n${lines.join('\n')}`,
      failed.length === 0 && report.errors.length === 0 ? { once: 'synced' } : undefined,
    );
    // A region that could not be reached fails that region alone: its deploy
    // tries back-to-source again and fails with the reason if it still cannot.
    if (failed.length === report.targets.length) {
      const reasons = report.targets.map((t) => `${t.target}: ${t.errors.join('; ')}`).concat(report.errors);
      throw new TransientError(`sync failed for every region — ${reasons.join('; ')}`);
    }
  };
}

/** Back-to-source before a region's deploy: the region's registry must have the image, or gets it from the origin now. */
export async function ensureInRegion(
  config: FerryConfig,
  region: string,
  image: BuiltImage,
  io: StepIO,
): Promise<string> {
  const reg = config.regions[region]?.registry;
  if (!reg) throw new Error(`unknown region ${region}`);
  const repo = image.image.slice(image.image.indexOf('/') + 1, image.image.lastIndexOf(':'));
  const tag = image.image.slice(image.image.lastIndexOf(':') + 1);
  const regional = `${hostOf(reg.url)}/${repo}@${image.digest}`;
  if (reg.pullThrough) {
    await io.say(`${region}: registry is a pull-through cache of the primary; nodes pull through it.`, {
      once: `pull-through:${region}`,
    });
    return regional;
  }
  const t0 = Date.now();
  const r = await ensureImage({
    origin: endpoint('primary', config.primaryRegistry),
    region: endpoint(region, reg),
    repo,
    tag,
    signal: io.signal,
  });
  if (r.copied)
    await io.say(
      `${region}: the image was missing from the region's registry; fetched it back-to-source from the primary in ${formatDuration(Date.now() - t0)}.`,
    );
  return regional;
}

export async function realRunners(rt: { config: () => FerryConfig }): Promise<StepRunners> {
  const { kubeRunners } = await import('./deploy.ts');
  const kube = kubeRunners(rt.config, { defaultReplicas: Number(process.env.FERRY_DEFAULT_REPLICAS ?? 4) });
  const { kubeClients } = await import('../kube/client.ts');
  const { ensurePullSecret, regionPullCredentials } = await import('../kube/pull-secrets.ts');
  const { appTarget } = await import('../kube/rollout.ts');
  const { workloadOf } = await import('../domain/workload.ts');
  const { analysisJudge } = await import('../analysis/judge.ts');
  return {
    // Metric analysis and webhooks at the gates, as each release's plan says (none: no time added).
    judge: analysisJudge(rt.config),
    build: buildRunner(rt.config),
    sync: syncRunner(rt.config),
    // Back-to-source first: the region's nodes pull from the region's registry.
    rollout: async (release, region, image, io) => {
      const config = rt.config();
      await ensureInRegion(config, region, image, io);
      // Nodes pull from the region's registry; when it wants credentials, the namespace's pull secret carries them.
      const creds = regionPullCredentials(config, region);
      if (creds.length > 0) {
        const { namespace } = appTarget(config, release.app, release.environment, region);
        // the pods' own service account, when the workload names one
        const account = workloadOf(config, release.app, release.environment).serviceAccount ?? 'default';
        const r = await ensurePullSecret(kubeClients(config, region).core, namespace, creds, [account]);
        if (r.secret !== 'unchanged')
          await io.say(`${region}: registry pull secret ${r.secret} in ${namespace}.`);
      }
      return kube.rollout(release, region, image, io);
    },
    verify: kube.verify,
  };
}
