// Keeps the end of a stream of lines within a byte budget: the last `maxLines`
// lines (after an optional filter), never more than `maxBytes` of them. What
// falls off the front is counted, so the reader can say what was left out.

export interface CollectorOptions {
  maxLines: number;
  maxBytes: number;
  /** Keep only lines that contain this text (case-insensitive). */
  grep?: string;
}

export class TailCollector {
  private lines: string[] = [];
  private head = 0;
  private bytes = 0;
  private readonly opts: CollectorOptions;
  private readonly needle: string | undefined;
  /** Lines seen (before the filter). */
  seen = 0;
  /** Lines that matched but were dropped from the front for the line or byte limit. */
  dropped = 0;
  droppedBytes = 0;

  constructor(opts: CollectorOptions) {
    this.opts = opts;
    this.needle = opts.grep ? opts.grep.toLowerCase() : undefined;
  }

  push(line: string): void {
    this.seen++;
    if (this.needle !== undefined && !line.toLowerCase().includes(this.needle)) return;
    const size = Buffer.byteLength(line) + 1;
    this.lines.push(line);
    this.bytes += size;
    while (this.lines.length - this.head > this.opts.maxLines || this.bytes > this.opts.maxBytes) {
      const old = this.lines[this.head] as string;
      this.head++;
      this.bytes -= Buffer.byteLength(old) + 1;
      this.dropped++;
      this.droppedBytes += Buffer.byteLength(old) + 1;
    }
    // compact now and then so the array does not grow with what was dropped
    if (this.head > 1024 && this.head * 2 > this.lines.length) {
      this.lines = this.lines.slice(this.head);
      this.head = 0;
    }
  }

  get kept(): string[] {
    return this.lines.slice(this.head);
  }

  get size(): number {
    return this.bytes;
  }
}

/** The last lines of a text that fit in `maxChars` (at most `maxLines`), for a chat snippet. */
export function snippetOf(lines: readonly string[], maxLines = 40, maxChars = 3000): string {
  const out: string[] = [];
  let chars = 0;
  for (let i = lines.length - 1; i >= 0 && out.length < maxLines; i--) {
    let line = lines[i] as string;
    if (line.length > 500) line = `${line.slice(0, 500)} …`;
    if (chars + line.length + 1 > maxChars) break;
    out.unshift(line);
    chars += line.length + 1;
  }
  return out.join('\n');
}
