// Small helpers shared by the emulator's parts: Slack's error answers, ids, request bodies.
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type { Json } from './types.ts';

/** A Web API error: answered as `{ ok: false, error: code, ...extra }`. */
export class ApiError extends Error {
  readonly extra: Json;
  constructor(code: string, extra: Json = {}) {
    super(code);
    this.extra = extra;
  }
}

export const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `n` random characters from Slack's id alphabet (upper-case letters and digits). */
export const rand = (n: number): string =>
  Array.from(randomBytes(n), (b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'[b % 36]).join('');

export function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Parses a multipart/form-data body with the platform's own parser. */
export function parseFormData(contentType: string, raw: Buffer): Promise<FormData> {
  return new Request('http://x/', {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: new Uint8Array(raw),
  }).formData();
}
