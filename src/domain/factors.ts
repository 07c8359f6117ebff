// The impact factors Ferry knows without any configuration. They are data,
// not code: ferry.yaml may redefine any of them by name or add its own, and
// the planner treats built-in and user factors alike.
import type { FactorConfig } from './config.ts';

export const DEFAULT_FACTORS: Record<string, FactorConfig> = {
  emergency: {
    description:
      'Production is broken and this release fixes it: all at once, first in the queue, without waiting for the promotion rule or the release window — and so only with an approval from the emergency group as well as the usual one.',
    precedence: 90,
    excludes: ['canary'],
    // Skipping the promotion rule and the release window is vouched for by
    // emergency-approvers, on top of the environment's approvers.
    authority: { approve: 'emergency-approvers', approvals: 1 },
    effects: {
      approvals: { allowSelfApproval: false, expiresAfter: '30m' },
      batches: [{ size: '100%', pause: '30s' }],
      gate: { onFailure: 'rollback' },
      skip: { prewarm: true },
      priority: 1,
      releaseWindowBypass: true,
      promotionRule: false,
    },
  },
  degraded: {
    description:
      'The service is already degraded and this release is the fix: it jumps the queue, goes out in two halves, and a failing gate waits for a person instead of rolling back to the degraded version. It keeps the promotion rule and the release window.',
    precedence: 70,
    excludes: [],
    // Slows a release down and relaxes no rule, so it needs no authority of its own.
    effects: {
      batches: [
        { size: '50%', pause: '1m' },
        { size: '100%', pause: '1m' },
      ],
      gate: { onFailure: 'wait' },
      priority: 2,
    },
  },
  canary: {
    description:
      'One pod first, watched for five minutes, then a person promotes it to half and then all of the pods.',
    precedence: 60,
    excludes: ['emergency'],
    effects: {
      batches: [
        { size: '1', pause: '5m', manualPromotion: true },
        { size: '50%', pause: '2m' },
        { size: '100%', pause: '2m' },
      ],
      gate: { onFailure: 'rollback', maxRestarts: 0 },
    },
  },
  'no-prewarm': {
    description:
      'Do not pull the image onto nodes ahead: neither while the release waits nor before each batch (for tiny images, or to measure).',
    precedence: 10,
    excludes: [],
    effects: { skip: { prewarm: true } },
  },
  parallel: {
    description:
      'Roll out to all regions at once instead of one after another; a region failing does not stop the others.',
    precedence: 20,
    excludes: [],
    effects: { regions: { order: 'parallel', continueOnFailure: true } },
  },
};
