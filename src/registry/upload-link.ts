// How big one upload PATCH to a registry should be, learned from the link.
//
// A blob goes up as a series of PATCHes (chunks). Each chunk is sized so it
// takes about `targetSeconds` on the link as measured so far, because:
// - a connection that breaks mid-chunk loses at most that chunk: the retry
//   continues from the offset the registry acknowledged (its Range);
// - a registry behind a proxy with a body limit (nginx client_max_body_size,
//   1 MiB by default; Harbor's front proxy) accepts bodies up to that limit:
//   a 413 halves the chunk size for that registry, remembered for later
//   blobs, and never lets it grow past the refused size again;
// - on a fast link (loopback, a LAN) chunks reach `maxBytes`, so a blob costs
//   a handful of requests at most and the stream is not slowed down.
//
// The estimate is an EWMA of bytes/s over recent PATCHes of at least
// `minBytes` (smaller ones measure latency, not throughput). It is kept per
// registry (one per RegistryClient, which a RegistryPool keeps between syncs).
// Before the first measurement a chunk is `minBytes`; each later chunk may be
// at most `growth`× the largest one the registry accepted, so an unknown body
// limit is found with few refusals (and a fast link still reaches 64 MiB by
// the third chunk). Chunks of a tee are paced by the slowest target and the
// source, so the rate measured is the rate a PATCH really gets, which is what
// decides how long it takes.

const MiB = 1024 * 1024;
/** Below `minBytes` only when a registry refuses that much; under this, a registry is unusable anyway. */
const SMALLEST_CHUNK = 64 * 1024;

export interface UploadLinkPolicy {
  /** Time one PATCH should take. */
  targetSeconds: number;
  minBytes: number;
  maxBytes: number;
  /** A chunk is at most this many times the largest chunk the registry accepted. */
  growth: number;
  /** Weight of the newest sample in the EWMA. */
  alpha: number;
}

export const defaultUploadLinkPolicy: UploadLinkPolicy = {
  targetSeconds: 2,
  minBytes: 1 * MiB,
  maxBytes: 64 * MiB,
  growth: 8,
  alpha: 0.3,
};

export class UploadLink {
  readonly policy: UploadLinkPolicy;
  /** EWMA of the upload rate, bytes/s; undefined before the first sample. */
  bytesPerSecond: number | undefined;
  /** Largest PATCH body the registry accepted. */
  largestAccepted = 0;
  /** Largest chunk allowed after a 413 (the registry or its proxy limits bodies); undefined: no limit seen. */
  refusedCap: number | undefined;

  constructor(policy: Partial<UploadLinkPolicy> = {}) {
    this.policy = { ...defaultUploadLinkPolicy, ...policy };
  }

  /**
   * Length of the next chunk of a blob of `size` bytes whose upload stands
   * at `offset`. Chunks end at multiples of the chunk size (a power of two),
   * counted from the blob's start: the targets of one tee then cut their
   * chunks at the same offsets (a smaller power of two divides a larger one),
   * so the round trips between chunks, during which the tee waits, overlap
   * instead of adding up per target. A tail smaller than a quarter of the
   * chunk rides along with it (when the limits allow) rather than costing a
   * request of its own.
   */
  nextChunk(offset: number, size: number): number {
    const chunk = this.chunkSize();
    const end = Math.min(size, (Math.floor(offset / chunk) + 1) * chunk);
    if (size - end > 0 && size - end < chunk / 4 && size - offset <= this.ceiling()) return size - offset;
    return end - offset;
  }

  /** The largest chunk allowed: 64 MiB, or under a limit the registry showed with a 413. */
  private ceiling(): number {
    return Math.min(this.policy.maxBytes, this.refusedCap ?? Number.POSITIVE_INFINITY);
  }

  /** The chunk size now: a power of two (nearest to the target, at most the ceiling). */
  chunkSize(): number {
    const { minBytes, targetSeconds, growth } = this.policy;
    const ceiling = 2 ** Math.floor(Math.log2(this.ceiling()));
    const least = Math.min(2 ** Math.floor(Math.log2(minBytes)), ceiling);
    if (this.bytesPerSecond === undefined) return least;
    const byTime = this.bytesPerSecond * targetSeconds;
    const byGrowth = Math.max(this.largestAccepted, minBytes) * growth;
    const nearest = 2 ** Math.round(Math.log2(Math.max(1, Math.min(byTime, byGrowth))));
    return Math.max(least, Math.min(nearest, ceiling));
  }

  /** One PATCH accepted: `bytes` sent in `ms`. */
  accepted(bytes: number, ms: number): void {
    this.largestAccepted = Math.max(this.largestAccepted, bytes);
    if (bytes < this.policy.minBytes || ms <= 0) return;
    const sample = (bytes * 1000) / ms;
    this.bytesPerSecond =
      this.bytesPerSecond === undefined
        ? sample
        : this.bytesPerSecond + this.policy.alpha * (sample - this.bytesPerSecond);
  }

  /**
   * A PATCH broke mid-body (the connection dropped). Halves the rate
   * estimate, as TCP halves its window on a loss: on a link that drops
   * connections, smaller chunks lose less, and measurements grow them back.
   */
  broken(): void {
    if (this.bytesPerSecond !== undefined) this.bytesPerSecond /= 2;
  }

  /**
   * A PATCH of `bytes` was refused as too large (413). Returns false when
   * the chunk cannot shrink any more (64 KiB refused).
   */
  refused(bytes: number): boolean {
    if (bytes <= SMALLEST_CHUNK) return false;
    // Never below what the registry took before (unless that is what was refused now).
    const known = this.largestAccepted < bytes ? this.largestAccepted : 0;
    const cap = Math.max(SMALLEST_CHUNK, known, Math.floor(bytes / 2));
    this.refusedCap = Math.min(this.refusedCap ?? cap, cap);
    return true;
  }
}
