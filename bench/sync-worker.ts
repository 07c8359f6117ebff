// Runs one Ferry sync in a thread of its own, as the worker process would run
// it: the bench's main thread also serves the byte-counting proxy, and the
// sync must not share its event loop (skopeo and curl run in processes of
// their own too).
import { parentPort, workerData } from 'node:worker_threads';
import { syncImages } from '../src/registry/sync.ts';
import type { SyncOptions } from '../src/registry/sync-types.ts';

const opts = workerData as Pick<SyncOptions, 'source' | 'targets' | 'images' | 'concurrency'>;
const report = await syncImages(opts);
parentPort?.postMessage(report);
