// A thin client of Prometheus' HTTP API: instant queries for the gates and
// range queries for the charts. Every failure becomes a missing measurement
// with its reason, never an exception and never a zero: a gate must not
// read "Prometheus did not answer" as "no errors".
import type { Measurement } from '../domain/analysis.ts';

export interface MetricsSource {
  /** One number: the query's single series at `at` (ms), or why there is none. */
  instant(query: string, at?: number): Promise<Measurement>;
  /** The query's single series from `start` to `end` (ms), one point per `stepMs`. */
  range(query: string, start: number, end: number, stepMs: number): Promise<{ at: number; value: number }[]>;
}

interface PromResponse {
  status: 'success' | 'error';
  error?: string;
  data?: {
    resultType: 'vector' | 'matrix' | 'scalar';
    result:
      | { metric: Record<string, string>; value?: [number, string]; values?: [number, string][] }[]
      | [number, string];
  };
}

export class PrometheusClient implements MetricsSource {
  private readonly baseUrl: string;
  private readonly timeoutMs: number;

  constructor(baseUrl: string, timeoutMs = 5_000) {
    this.baseUrl = baseUrl;
    this.timeoutMs = timeoutMs;
  }

  private async get(path: string, params: Record<string, string>): Promise<PromResponse> {
    const url = new URL(path, this.baseUrl.endsWith('/') ? this.baseUrl : `${this.baseUrl}/`);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const res = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs) });
    const body = (await res
      .json()
      .catch(() => ({ status: 'error', error: `HTTP ${res.status}` }))) as PromResponse;
    if (body.status !== 'success') throw new Error(body.error ?? `HTTP ${res.status}`);
    return body;
  }

  async instant(query: string, at = Date.now()): Promise<Measurement> {
    let body: PromResponse;
    try {
      body = await this.get('api/v1/query', { query, time: (at / 1000).toFixed(3) });
    } catch (err) {
      return { missing: `Prometheus at ${this.baseUrl} did not answer: ${(err as Error).message}` };
    }
    const r = body.data?.result;
    const raw =
      body.data?.resultType === 'scalar'
        ? (r as [number, string])[1]
        : (r as { value?: [number, string] }[] | undefined)?.[0]?.value?.[1];
    if (raw === undefined) return { missing: 'no data for the query' };
    const value = Number(raw);
    if (!Number.isFinite(value)) return { missing: `the query gave ${raw} (no requests in the window?)` };
    return { value };
  }

  async range(
    query: string,
    start: number,
    end: number,
    stepMs: number,
  ): Promise<{ at: number; value: number }[]> {
    const body = await this.get('api/v1/query_range', {
      query,
      start: (start / 1000).toFixed(3),
      end: (end / 1000).toFixed(3),
      step: `${Math.max(1, Math.round(stepMs / 1000))}s`,
    });
    const series = (body.data?.result as { values?: [number, string][] }[] | undefined)?.[0]?.values ?? [];
    return series
      .map(([t, v]) => ({ at: Math.round(t * 1000), value: Number(v) }))
      .filter((p) => Number.isFinite(p.value));
  }
}
