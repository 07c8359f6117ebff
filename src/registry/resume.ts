// Where open upload sessions are remembered between attempts, so a retried
// sync continues a blob from the offset the registry already holds.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface SavedUpload {
  location: string;
  offset: number;
  size: number;
  savedAt: number;
}

export interface ResumeStore {
  get(key: string): SavedUpload | undefined;
  set(key: string, value: SavedUpload): void;
  delete(key: string): void;
}

export function resumeKey(targetUrl: string, repo: string, digest: string): string {
  return `${targetUrl.replace(/\/+$/, '')}|${repo}|${digest}`;
}

export class MemoryResumeStore implements ResumeStore {
  private readonly map = new Map<string, SavedUpload>();
  get(key: string): SavedUpload | undefined {
    return this.map.get(key);
  }
  set(key: string, value: SavedUpload): void {
    this.map.set(key, value);
  }
  delete(key: string): void {
    this.map.delete(key);
  }
  get size(): number {
    return this.map.size;
  }
}

/** A JSON file, rewritten atomically on each change: survives a killed process. */
export class FileResumeStore implements ResumeStore {
  private readonly path: string;
  private data: Record<string, SavedUpload>;
  constructor(path: string) {
    this.path = path;
    try {
      this.data = JSON.parse(readFileSync(path, 'utf8')) as Record<string, SavedUpload>;
    } catch {
      this.data = {};
    }
  }
  get(key: string): SavedUpload | undefined {
    return this.data[key];
  }
  set(key: string, value: SavedUpload): void {
    this.data[key] = value;
    this.flush();
  }
  delete(key: string): void {
    if (!(key in this.data)) return;
    delete this.data[key];
    this.flush();
  }
  private flush(): void {
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.data));
    renameSync(tmp, this.path);
  }
}
