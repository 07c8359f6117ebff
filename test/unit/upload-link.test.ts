import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UploadLink } from '../../src/registry/upload-link.ts';

const MiB = 1024 * 1024;

describe('UploadLink: chunk size from the measured link', () => {
  it('starts at 1 MiB, then sizes a chunk to about 2 s of the measured rate (a power of two), within [1 MiB, 64 MiB]', () => {
    const link = new UploadLink();
    expect(link.chunkSize()).toBe(1 * MiB);
    link.accepted(1 * MiB, 1000); // 1 MiB/s
    expect(link.chunkSize()).toBe(2 * MiB);
    const slow = new UploadLink();
    slow.accepted(1 * MiB, 10_000); // 0.1 MiB/s: still 1 MiB
    expect(slow.chunkSize()).toBe(1 * MiB);
    const mid = new UploadLink();
    mid.accepted(2 * MiB, 1000);
    mid.accepted(2 * MiB, 200); // EWMA: 2 + 0.3 × (10 − 2) = 4.4 MiB/s → 8.8 MiB → 8 MiB
    expect(mid.chunkSize()).toBe(8 * MiB);
  });

  it('on a fast link grows at most 8× per accepted chunk, up to 64 MiB', () => {
    const link = new UploadLink();
    const sizes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const size = link.chunkSize();
      sizes.push(size / MiB);
      link.accepted(size, size / ((2000 * MiB) / 1000)); // 2 GB/s
    }
    expect(sizes).toEqual([1, 8, 64, 64, 64]);
  });

  it('a 413 halves the chunk, never below what the registry accepted, and the limit stays learned', () => {
    const link = new UploadLink();
    link.accepted(1 * MiB, 1);
    expect(link.chunkSize()).toBe(8 * MiB);
    expect(link.refused(8 * MiB)).toBe(true);
    expect(link.chunkSize()).toBe(4 * MiB);
    expect(link.refused(4 * MiB)).toBe(true);
    expect(link.chunkSize()).toBe(2 * MiB);
    for (let i = 0; i < 10; i++) link.accepted(2 * MiB, 1); // a fast link does not grow it past the limit
    expect(link.chunkSize()).toBe(2 * MiB);
  });

  it('a broken chunk halves the rate estimate', () => {
    const link = new UploadLink();
    link.accepted(1 * MiB, 1000);
    link.accepted(2 * MiB, 1000);
    const before = link.chunkSize();
    link.broken();
    expect(link.chunkSize()).toBeLessThan(before);
  });

  it('cuts chunks at multiples of the chunk size, so the targets of a tee cut at the same offsets', () => {
    const link = new UploadLink();
    link.accepted(1 * MiB, 1); // fast, but at most 8× the largest accepted: 8 MiB chunks
    expect(link.chunkSize()).toBe(8 * MiB);
    expect(link.nextChunk(0, 40 * MiB)).toBe(8 * MiB);
    expect(link.nextChunk(1 * MiB, 40 * MiB)).toBe(7 * MiB); // resumed at 1 MiB: up to the next multiple
    expect(link.nextChunk(32 * MiB, 40 * MiB)).toBe(8 * MiB);
    const slower = new UploadLink();
    slower.accepted(1 * MiB, 1);
    slower.refused(8 * MiB); // 4 MiB chunks: every boundary of the 8 MiB link is one of its own
    expect(slower.nextChunk(4 * MiB, 40 * MiB)).toBe(4 * MiB);
  });

  it('a tail under a quarter of the chunk rides with it, within the limits', () => {
    const link = new UploadLink();
    link.accepted(1 * MiB, 1); // 8 MiB chunks
    expect(link.nextChunk(0, 9 * MiB)).toBe(9 * MiB);
    expect(link.nextChunk(0, 12 * MiB)).toBe(8 * MiB);
    expect(link.nextChunk(0, 3 * MiB)).toBe(3 * MiB);
    link.refused(8 * MiB); // limit: 4 MiB; a tail never pushes a chunk over it
    expect(link.nextChunk(0, 4.5 * MiB)).toBe(4 * MiB);
    const fast = new UploadLink();
    fast.accepted(8 * MiB, 1);
    expect(fast.nextChunk(0, 70 * MiB)).toBe(64 * MiB); // nor over 64 MiB
  });

  it('whatever happens, chunks stay within the limits and each 413 shrinks the next chunk', () => {
    const event = fc.oneof(
      fc.record({ kind: fc.constant('ok' as const), ms: fc.integer({ min: 1, max: 60_000 }) }),
      fc.record({ kind: fc.constant('413' as const) }),
      fc.record({ kind: fc.constant('broken' as const) }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 40 }), (events) => {
        const link = new UploadLink();
        for (const e of events) {
          const size = link.chunkSize();
          expect(size).toBeGreaterThan(0);
          expect(size).toBeLessThanOrEqual(64 * MiB);
          if (link.refusedCap === undefined) expect(size).toBeGreaterThanOrEqual(1 * MiB);
          else expect(size).toBeLessThanOrEqual(link.refusedCap);
          if (e.kind === 'ok') link.accepted(size, e.ms);
          else if (e.kind === 'broken') link.broken();
          else if (link.refused(size)) expect(link.chunkSize()).toBeLessThan(size);
        }
      }),
    );
  });
});
