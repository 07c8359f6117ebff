import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UploadLink } from '../../src/registry/upload-link.ts';

const MiB = 1024 * 1024;

describe('UploadLink: chunk size from the measured link', () => {
  it('starts at 1 MiB, then sizes a chunk to about 2 s of the measured rate, within [1 MiB, 64 MiB]', () => {
    const link = new UploadLink();
    expect(link.chunkSize()).toBe(1 * MiB);
    link.accepted(1 * MiB, 1000); // 1 MiB/s
    expect(link.chunkSize()).toBe(2 * MiB);
    const slow = new UploadLink();
    slow.accepted(1 * MiB, 10_000); // 0.1 MiB/s: still 1 MiB
    expect(slow.chunkSize()).toBe(1 * MiB);
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

  it('a tail under a quarter of the chunk rides with it, within the limits', () => {
    const link = new UploadLink();
    link.accepted(1 * MiB, 1); // fast, but at most 8× the largest accepted: 8 MiB chunks
    expect(link.nextChunk(9 * MiB)).toBe(9 * MiB);
    expect(link.nextChunk(12 * MiB)).toBe(8 * MiB);
    expect(link.nextChunk(3 * MiB)).toBe(3 * MiB);
    link.refused(8 * MiB); // limit: 4 MiB; a tail never pushes a chunk over it
    expect(link.nextChunk(4.5 * MiB)).toBe(4 * MiB);
    const fast = new UploadLink();
    fast.accepted(8 * MiB, 1);
    expect(fast.nextChunk(70 * MiB)).toBe(64 * MiB); // nor over 64 MiB
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
