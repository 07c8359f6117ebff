import { createHash, type Hash } from 'node:crypto';
import { DigestMismatchError } from './errors.ts';

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Hash for a digest's algorithm ("sha256:…" or "sha512:…"). */
export function hasherFor(digest: string): Hash {
  const algo = digest.slice(0, digest.indexOf(':'));
  if (algo !== 'sha256' && algo !== 'sha512') {
    throw new Error(`unsupported digest algorithm "${algo}" in ${digest} (sha256 and sha512 are supported)`);
  }
  return createHash(algo);
}

export function digestOf(algoOf: string, data: Uint8Array): string {
  return `${algoOf.slice(0, algoOf.indexOf(':'))}:${hasherFor(algoOf).update(data).digest('hex')}`;
}

/**
 * Pass-through stream that hashes what flows through it and fails at the end
 * (before the consumer sees completion) when the content does not match
 * `digest` or `size`. The consumer never treats unverified data as complete.
 */
export function verifyStream(
  digest: string,
  opts: { registry: string; what: string; size?: number; onBytes?: (n: number) => void },
): TransformStream<Uint8Array, Uint8Array> {
  const hash = hasherFor(digest);
  const algo = digest.slice(0, digest.indexOf(':'));
  let n = 0;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      hash.update(chunk);
      n += chunk.byteLength;
      opts.onBytes?.(chunk.byteLength);
      controller.enqueue(chunk);
    },
    flush(controller) {
      const actual = `${algo}:${hash.digest('hex')}`;
      if (actual !== digest) {
        controller.error(
          new DigestMismatchError(
            `${opts.what} from registry ${opts.registry} does not match its digest: expected ${digest}, got ${actual} (${n} bytes). The stored content is corrupt or was replaced; do not deploy it.`,
            { registry: opts.registry, expected: digest, actual },
          ),
        );
      } else if (opts.size !== undefined && n !== opts.size) {
        controller.error(
          new DigestMismatchError(
            `${opts.what} from registry ${opts.registry} has ${n} bytes, the manifest says ${opts.size}`,
            { registry: opts.registry, expected: digest, actual },
          ),
        );
      }
    },
  });
}
