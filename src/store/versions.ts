// The version record: code ref → image digest per environment → where it is
// deployed. Rollback reads it to redeploy a recorded digest without a build.
import type { Redis } from 'ioredis';
import type {
  DeployRecord,
  ImageRecord,
  VersionPin,
  VersionRecord,
  VersionRepository,
} from '../domain/version.ts';
import { runScript, SCRIPTS } from './scripts.ts';

export type { DeployRecord, ImageRecord, VersionRecord };

export class VersionStore implements VersionRepository {
  readonly redis: Redis;
  readonly prefix: string;

  constructor(redis: Redis, prefix = 'ferry') {
    this.redis = redis;
    this.prefix = prefix;
  }

  private key(app: string, version: string): string {
    return `${this.prefix}:version:${app}:${version}`;
  }

  async get(app: string, version: string): Promise<VersionRecord | undefined> {
    const raw = await this.redis.get(this.key(app, version));
    return raw ? (JSON.parse(raw) as VersionRecord) : undefined;
  }

  async list(app: string): Promise<VersionRecord[]> {
    const names = await this.redis.zrange(`${this.prefix}:versions:${app}`, '0', '-1');
    const out: VersionRecord[] = [];
    for (const v of names) {
      const rec = await this.get(app, v);
      if (rec) out.push(rec);
    }
    return out;
  }

  /**
   * Read, change, then compare-and-set (scripts/update-version.lua), again if someone wrote in between:
   * two workers recording different environments never lose one.
   */
  async update(
    app: string,
    version: string,
    change: (r: VersionRecord) => VersionRecord,
  ): Promise<VersionRecord> {
    const key = this.key(app, version);
    for (let attempt = 0; attempt < 20; attempt++) {
      const raw = await this.redis.get(key);
      const current: VersionRecord = raw
        ? JSON.parse(raw)
        : { app, version, ref: version, images: {}, passed: {} };
      const next = change(current);
      const stored = await runScript(
        this.redis,
        SCRIPTS.updateVersion,
        [key, `${this.prefix}:versions:${app}`],
        [raw ?? '', JSON.stringify(next), String(Date.now()), version],
      );
      if (stored === 1) return next;
    }
    throw new Error(`could not update version ${app} ${version}`);
  }

  async recordImage(
    app: string,
    version: string,
    env: string,
    image: ImageRecord,
    commit?: string,
  ): Promise<VersionRecord> {
    return this.update(app, version, (r) => ({
      ...r,
      ...(commit ? { commit } : {}),
      images: { ...r.images, [env]: image },
    }));
  }

  async pin(app: string, version: string, pin: VersionPin): Promise<VersionRecord> {
    // First pin wins: a version's stack never changes once something was built on it.
    return this.update(app, version, (r) =>
      r.stack
        ? r
        : {
            ...r,
            ref: pin.ref,
            ...(pin.commit ? { commit: pin.commit } : {}),
            stack: pin.stack,
            ...(pin.rebuildOf ? { rebuildOf: pin.rebuildOf } : {}),
          },
    );
  }

  async recordPassed(app: string, version: string, env: string, at = Date.now()): Promise<void> {
    await this.update(app, version, (r) => ({ ...r, passed: { ...r.passed, [env]: at } }));
  }

  async recordDeploy(d: DeployRecord): Promise<void> {
    const key = `${this.prefix}:deploys:${d.app}:${d.environment}:${d.region}`;
    await this.redis.lpush(key, JSON.stringify(d));
    await this.redis.ltrim(key, 0, 199);
  }

  /** Newest first. */
  async deploys(app: string, env: string, region: string, limit = 50): Promise<DeployRecord[]> {
    const rows = await this.redis.lrange(`${this.prefix}:deploys:${app}:${env}:${region}`, 0, limit - 1);
    return rows.map((r) => JSON.parse(r) as DeployRecord);
  }
}
