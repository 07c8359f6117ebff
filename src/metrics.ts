// Prometheus metrics (prom-client), one registry per process, served by the
// ops server: releases by state entered, step durations, queue depth.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export const metrics = (() => {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    transitions: new Counter({
      name: 'ferry_release_transitions_total',
      help: 'Release state transitions, by the state entered',
      labelNames: ['to'] as const,
      registers: [registry],
    }),
    stepSeconds: new Histogram({
      name: 'ferry_step_duration_seconds',
      help: 'How long each release step took',
      labelNames: ['step', 'outcome'] as const,
      buckets: [0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800],
      registers: [registry],
    }),
    prePullRelayBytes: new Counter({
      name: 'ferry_prepull_relay_bytes_total',
      help: "Bytes a node's pre-pull relay handed on, by region",
      labelNames: ['region'] as const,
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'ferry_queue_jobs',
      help: 'Jobs per queue and state',
      labelNames: ['queue', 'state'] as const,
      registers: [registry],
    }),
  };
})();
