// The shapes a sync takes and gives back: what to copy, progress events, and
// the per-target report.

import type { RegistryEndpoint } from './client.ts';
import type { RegistryPool } from './pool.ts';
import type { ResumeStore } from './resume.ts';

export interface ImageToSync {
  repo: string;
  tag: string;
}

export type SyncProgress =
  | { type: 'image-resolved'; repo: string; tag: string; digest: string; blobs: number; bytes: number }
  | { type: 'blob-skipped'; target: string; repo: string; digest: string; size: number }
  | { type: 'blob-mounted'; target: string; repo: string; digest: string; size: number; from: string }
  | { type: 'blob-copying'; targets: string[]; digest: string; size: number; resumeFrom: number }
  | { type: 'blob-progress'; digest: string; bytes: number; size: number }
  | { type: 'blob-copied'; target: string; repo: string; digest: string; size: number; sent: number }
  | { type: 'blob-retry'; target: string; digest: string; attempt: number; error: string }
  | { type: 'image-done'; target: string; repo: string; tag: string; digest: string; upToDate: boolean }
  | { type: 'image-failed'; target: string; repo: string; tag: string; error: string }
  | { type: 'target-failed'; target: string; error: string };

export interface SyncOptions {
  source: RegistryEndpoint;
  targets: RegistryEndpoint[];
  images: ImageToSync[];
  /** Blob streams read from the source at the same time (each teed to every target). Default 4. */
  concurrency?: number;
  onProgress?: (event: SyncProgress) => void;
  /** Aborting ends in-flight uploads cleanly and records them in `resume`; the promise rejects. */
  signal?: AbortSignal;
  /** Where open upload sessions are kept for a retry. Default: one store for the process. */
  resume?: ResumeStore;
  /** Extra attempts for a blob whose copy to a target failed for a transient reason. Default 2. */
  retries?: number;
  /** Delay before the first retry, doubled each time. Default 500 ms. */
  retryDelayMs?: number;
  /**
   * Metadata requests (blob HEADs, mounts, manifest pushes) in flight per
   * registry at once. They are small, so many overlap; default 16.
   */
  requestsPerRegistry?: number;
  /** Clients and known blob holders reused across syncs. Default: the process's pool. */
  pool?: RegistryPool;
}

export interface ImageResult {
  repo: string;
  tag: string;
  digest?: string;
  status: 'copied' | 'up-to-date' | 'failed';
  error?: string;
}

export interface TargetReport {
  target: string;
  url: string;
  ok: boolean;
  images: ImageResult[];
  /** Blobs uploaded (fully or the rest of a resumed upload) and the bytes sent for them. */
  blobsCopied: number;
  bytesCopied: number;
  /** Blobs the target repository already had. */
  blobsSkipped: number;
  bytesSkipped: number;
  /** Blobs linked from another repository of the target (no bytes sent). */
  blobsMounted: number;
  bytesMounted: number;
  /** Blobs continued from an earlier, interrupted upload, and the bytes not sent again. */
  blobsResumed: number;
  bytesResumed: number;
  manifestsPushed: number;
  timeMs: number;
  errors: string[];
}

export interface SyncReport {
  ok: boolean;
  source: string;
  /** Bytes (blobs and manifests) read from the source registry. */
  sourceBytesRead: number;
  /** Blob reads from the source (one per blob copied, whatever the number of targets). */
  sourceBlobReads: number;
  images: { repo: string; tag: string; digest?: string; blobs: number; bytes: number; error?: string }[];
  targets: TargetReport[];
  /** Source-side problems (image missing in the source…). */
  errors: string[];
  timeMs: number;
}
