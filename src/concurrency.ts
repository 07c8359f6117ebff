// One concurrency limiter for the code base: at most `n` of the wrapped calls
// run at once; the others wait in arrival order (FIFO, so an ordered caller
// cannot starve).

export type Limiter = <T>(fn: () => Promise<T>) => Promise<T>;

export function limiter(n: number): Limiter {
  const max = Math.max(1, Math.floor(n));
  let active = 0;
  const queue: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= max) await new Promise<void>((r) => queue.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}
