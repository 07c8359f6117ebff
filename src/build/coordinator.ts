// In-process build scheduling:
//  - single flight: concurrent requests for the same app+version+env(+tag)
//    share one build;
//  - recorded builds are answered from the BuildRecordStore without touching
//    buildah (a version is an immutable record: ref → digests per env);
//  - builds of different apps run in parallel up to `concurrency`; the first
//    build of an app's version runs alone (`perApp`, default 1), so it builds
//    the layers every environment shares once; when it is done, the other
//    environments of that version — each only its tail on the same cache — run
//    in parallel (`tailsPerApp`, default 3).
// Storage-agnostic: the queue layer can back BuildRecordStore with Redis (and
// make `put` a compare-and-set across workers).

import { type BuildResult, type BuildVariantRequest, buildVariant } from './builder.ts';
import type { ImageManifest } from './registry-client.ts';

export interface BuildRecord {
  app: string;
  version: string;
  env: string;
  ref: string;
  commit?: string;
  image: string;
  tag: string;
  digest: string;
  configDigest: string;
  layers: { digest: string; size: number }[];
  manifest: ImageManifest;
  baseImage?: string;
  logPath: string;
  builtAt: string;
}

export interface BuildRecordStore {
  get(app: string, version: string, env: string): Promise<BuildRecord | undefined>;
  put(record: BuildRecord): Promise<void>;
}

export class MemoryBuildRecordStore implements BuildRecordStore {
  readonly #records = new Map<string, BuildRecord>();

  async get(app: string, version: string, env: string): Promise<BuildRecord | undefined> {
    return this.#records.get(JSON.stringify([app, version, env]));
  }

  async put(record: BuildRecord): Promise<void> {
    this.#records.set(JSON.stringify([record.app, record.version, record.env]), record);
  }
}

export interface CoordinatedResult extends BuildResult {
  /** True when this call joined a build another caller had started. */
  shared: boolean;
  /** True when answered from the record store (no registry or buildah call). */
  fromRecord: boolean;
}

export interface BuildCoordinatorOptions {
  store: BuildRecordStore;
  /** Builds running at once across apps. Default 2. */
  concurrency?: number;
  /** Builds of one app running at once until a build of its version is done. Default 1. */
  perApp?: number;
  /** Builds of one app version running at once once one of them is done (the tails). Default 3. */
  tailsPerApp?: number;
  /** The build function (default buildVariant); replaceable for tests. */
  build?: (req: BuildVariantRequest) => Promise<BuildResult>;
}

export function recordFromResult(req: BuildVariantRequest, r: BuildResult): BuildRecord {
  const rec: BuildRecord = {
    app: req.app,
    version: req.version,
    env: req.envName,
    ref: req.ref,
    image: r.image,
    tag: r.tag,
    digest: r.digest,
    configDigest: r.configDigest,
    layers: r.layers,
    manifest: r.manifest,
    logPath: r.logPath,
    builtAt: new Date().toISOString(),
  };
  if (r.commit) rec.commit = r.commit;
  if (r.baseImage) rec.baseImage = r.baseImage;
  return rec;
}

interface Pending {
  app: string;
  /** app and version: once one build of it is done, its shared layers are in the cache. */
  stage: string;
  start: () => void;
}

export class BuildCoordinator {
  readonly #store: BuildRecordStore;
  readonly #concurrency: number;
  readonly #perApp: number;
  readonly #tailsPerApp: number;
  /** App versions with a finished build: their shared layers are cached. */
  readonly #sharedBuilt = new Set<string>();
  readonly #build: (req: BuildVariantRequest) => Promise<BuildResult>;
  readonly #inflight = new Map<string, Promise<BuildResult>>();
  readonly #pending: Pending[] = [];
  readonly #runningPerApp = new Map<string, number>();
  #running = 0;
  /** Builds actually started (not joined, not answered from the store). */
  buildsStarted = 0;

  constructor(opts: BuildCoordinatorOptions) {
    this.#store = opts.store;
    this.#concurrency = Math.max(1, opts.concurrency ?? 2);
    this.#perApp = Math.max(1, opts.perApp ?? 1);
    this.#tailsPerApp = Math.max(this.#perApp, opts.tailsPerApp ?? 3);
    this.#build = opts.build ?? buildVariant;
  }

  get running(): number {
    return this.#running;
  }

  get queued(): number {
    return this.#pending.length;
  }

  static key(req: BuildVariantRequest): string {
    return JSON.stringify([
      req.app,
      req.version,
      req.envName,
      req.tag ?? null,
      req.baseImageOverride ?? null,
    ]);
  }

  async request(req: BuildVariantRequest): Promise<CoordinatedResult> {
    const key = BuildCoordinator.key(req);
    const joined = this.#inflight.get(key);
    if (joined) return { ...(await joined), shared: true, fromRecord: false };

    // A plain request (no rebase, no explicit tag) is answered by the record.
    if (!req.baseImageOverride && !req.tag) {
      const rec = await this.#store.get(req.app, req.version, req.envName);
      if (rec) return { ...resultFromRecord(rec), shared: false, fromRecord: true };
      // The store lookup yielded: someone may have started meanwhile.
      const again = this.#inflight.get(key);
      if (again) return { ...(await again), shared: true, fromRecord: false };
    }

    const p = this.#schedule(req).then(async (result) => {
      await this.#store.put(recordFromResult(req, result));
      return result;
    });
    this.#inflight.set(key, p);
    try {
      return { ...(await p), shared: false, fromRecord: false };
    } finally {
      this.#inflight.delete(key);
    }
  }

  #schedule(req: BuildVariantRequest): Promise<BuildResult> {
    return new Promise<BuildResult>((resolvePromise, reject) => {
      const stage = JSON.stringify([req.app, req.version]);
      this.#pending.push({
        app: req.app,
        stage,
        start: () => {
          this.buildsStarted++;
          this.#running++;
          this.#runningPerApp.set(req.app, (this.#runningPerApp.get(req.app) ?? 0) + 1);
          this.#build(req)
            .then((r) => {
              this.#sharedBuilt.add(stage);
              if (this.#sharedBuilt.size > 1000)
                this.#sharedBuilt.delete(this.#sharedBuilt.values().next().value!);
              return r;
            })
            .then(resolvePromise, reject)
            .finally(() => {
              this.#running--;
              const n = (this.#runningPerApp.get(req.app) ?? 1) - 1;
              if (n <= 0) this.#runningPerApp.delete(req.app);
              else this.#runningPerApp.set(req.app, n);
              this.#pump();
            });
        },
      });
      this.#pump();
    });
  }

  #pump(): void {
    for (let i = 0; i < this.#pending.length && this.#running < this.#concurrency; ) {
      const job = this.#pending[i]!;
      const limit = this.#sharedBuilt.has(job.stage) ? this.#tailsPerApp : this.#perApp;
      if ((this.#runningPerApp.get(job.app) ?? 0) >= limit) {
        i++;
        continue;
      }
      this.#pending.splice(i, 1);
      job.start();
    }
  }
}

export function resultFromRecord(rec: BuildRecord): BuildResult {
  const r: BuildResult = {
    image: rec.image,
    tag: rec.tag,
    digest: rec.digest,
    manifest: rec.manifest,
    layers: rec.layers,
    configDigest: rec.configDigest,
    logPath: rec.logPath,
    durationMs: 0,
    cached: true,
  };
  if (rec.commit) r.commit = rec.commit;
  if (rec.baseImage) r.baseImage = rec.baseImage;
  return r;
}
