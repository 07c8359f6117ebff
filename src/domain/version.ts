// The version record: code ref → image digest per environment → where it is
// deployed. A version is built once per environment and never rebuilt under
// the same tag; rollback redeploys a recorded digest.
export interface ImageRecord {
  /** host/repo:tag as pushed to the primary registry. */
  image: string;
  digest: string;
  builtAt: number;
  releaseId?: string;
  /** The image the app's final stage was built FROM (normally the app's stack), pinned by digest. */
  stack?: PinnedImage;
  /** That stack image's own base (e.g. ferry/base), when the stack says which it was built on. */
  base?: PinnedImage;
}

/** An image by name and the exact manifest digest meant: `name@digest` pulls it. */
export interface PinnedImage {
  /** host/repository (no tag), or the name as the image recorded it. */
  name: string;
  digest: string;
}

export interface DeployRecord {
  app: string;
  environment: string;
  region: string;
  version: string;
  digest: string;
  image: string;
  releaseId: string;
  at: number;
}

export interface VersionRecord {
  app: string;
  version: string;
  ref: string;
  commit?: string;
  images: Record<string, ImageRecord>;
  /** Environments where this version's release succeeded (the promotion rule reads this). */
  passed: Record<string, number>;
  /**
   * The stack every environment's image of this version is built on, pinned
   * at the version's first build (or by `/release rebuild stack`), so test
   * and prod get the same stack even if its tag moves in between.
   */
  stack?: PinnedImage & { stackName: string };
  /** For a stack rebuild: the version whose code it rebuilds. */
  rebuildOf?: string;
}

/** What a stack rebuild fixes before its release is requested: the code and the stack to build on. */
export interface VersionPin {
  ref: string;
  commit?: string;
  stack: PinnedImage & { stackName: string };
  rebuildOf?: string;
}

/** Where version records live; the store implements it on Redis. */
export interface VersionRepository {
  get(app: string, version: string): Promise<VersionRecord | undefined>;
  list(app: string): Promise<VersionRecord[]>;
  recordImage(
    app: string,
    version: string,
    env: string,
    image: ImageRecord,
    commit?: string,
  ): Promise<VersionRecord>;
  recordPassed(app: string, version: string, env: string, at?: number): Promise<void>;
  /** Sets the version's code ref and stack unless it already has a stack pinned; returns the record as stored. */
  pin(app: string, version: string, pin: VersionPin): Promise<VersionRecord>;
  recordDeploy(d: DeployRecord): Promise<void>;
  /** Newest first. */
  deploys(app: string, env: string, region: string, limit?: number): Promise<DeployRecord[]>;
}
