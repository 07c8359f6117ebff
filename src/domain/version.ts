// The version record: code ref → image digest per environment → where it is
// deployed. A version is built once per environment and never rebuilt under
// the same tag; rollback redeploys a recorded digest.
export interface ImageRecord {
  /** host/repo:tag as pushed to the primary registry. */
  image: string;
  digest: string;
  builtAt: number;
  releaseId?: string;
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
  recordDeploy(d: DeployRecord): Promise<void>;
  /** Newest first. */
  deploys(app: string, env: string, region: string, limit?: number): Promise<DeployRecord[]>;
}
