// The local Prometheus (infra/lib/prometheus.sh): started when it is not
// answering yet, like ensureInfra does for the other parts.
import { join } from 'node:path';
import { REPO_ROOT, run } from './infra.ts';

export const PROMETHEUS_URL = process.env.FERRY_PROMETHEUS_URL ?? 'http://127.0.0.1:9390';

async function ready(): Promise<boolean> {
  return fetch(`${PROMETHEUS_URL}/-/ready`, { signal: AbortSignal.timeout(2_000) }).then(
    (r) => r.ok,
    () => false,
  );
}

export async function ensurePrometheus(): Promise<string> {
  if (!(await ready())) {
    await run('bash', ['-c', `source '${join(REPO_ROOT, 'infra/lib/prometheus.sh')}'; up_prometheus`], {
      timeoutMs: 600_000,
    });
  }
  return PROMETHEUS_URL;
}
