// One source stream into several consumers with backpressure: the source is
// read at the pace of the slowest live consumer; a consumer that fails is
// dropped and the others go on.

export class Branch {
  readonly stream: ReadableStream<Uint8Array>;
  /** Bytes at the start of the source this branch does not want (it already has them). */
  private skip: number;
  private ctl!: ReadableStreamDefaultController<Uint8Array>;
  private waiter: (() => void) | undefined;
  private closed = false;
  dead: unknown;
  /** Bytes handed to the consumer. */
  pushed = 0;

  constructor(skip: number, highWaterMark = 1024 * 1024) {
    this.skip = skip;
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.ctl = c;
        },
        pull: () => this.notify(),
        cancel: (reason) => this.kill(reason ?? new Error('consumer cancelled')),
      },
      new ByteLengthQueuingStrategy({ highWaterMark }),
    );
  }

  get alive(): boolean {
    return this.dead === undefined && !this.closed;
  }

  push(chunk: Uint8Array): void {
    if (!this.alive) return;
    if (this.skip >= chunk.byteLength) {
      this.skip -= chunk.byteLength;
      return;
    }
    const part = this.skip > 0 ? chunk.subarray(this.skip) : chunk;
    this.skip = 0;
    this.pushed += part.byteLength;
    this.ctl.enqueue(part);
  }

  /** Resolves when the consumer has room (or is gone). */
  async ready(): Promise<void> {
    while (this.alive && (this.ctl.desiredSize ?? 0) <= 0) {
      await new Promise<void>((r) => {
        this.waiter = r;
      });
    }
  }

  /** Ends the stream normally: the consumer sees a (possibly short) complete body. */
  close(): void {
    if (!this.alive) return;
    this.closed = true;
    try {
      this.ctl.close();
    } catch {
      // already closed
    }
    this.notify();
  }

  /** Ends the stream with an error: the consumer's request fails. */
  fail(err: unknown): void {
    if (this.dead === undefined) this.dead = err;
    try {
      this.ctl.error(err);
    } catch {
      // already closed
    }
    this.notify();
  }

  kill(reason: unknown): void {
    if (this.dead === undefined) this.dead = reason;
    this.notify();
  }

  private notify(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}

/**
 * Pumps `source` into every branch. Stops early (without error) when
 * `stop()` turns true or every branch is gone. Returns how the source ended.
 */
export async function pump(
  source: ReadableStream<Uint8Array>,
  branches: Branch[],
  opts: { stop?: () => boolean; onChunk?: (n: number) => void } = {},
): Promise<{ ended: 'complete' | 'stopped' | 'no-consumers'; error?: unknown; read: number }> {
  const reader = source.getReader();
  let read = 0;
  try {
    for (;;) {
      if (opts.stop?.()) {
        await reader.cancel().catch(() => {});
        return { ended: 'stopped', read };
      }
      if (!branches.some((b) => b.alive)) {
        await reader.cancel().catch(() => {});
        return { ended: 'no-consumers', read };
      }
      let r: Awaited<ReturnType<typeof reader.read>>;
      try {
        r = await reader.read();
      } catch (error) {
        return { ended: 'stopped', error, read };
      }
      if (r.done) return { ended: 'complete', read };
      read += r.value.byteLength;
      for (const b of branches) b.push(r.value);
      opts.onChunk?.(r.value.byteLength);
      await Promise.all(branches.map((b) => b.ready()));
    }
  } finally {
    reader.releaseLock();
  }
}
