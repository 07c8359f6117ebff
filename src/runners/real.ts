// The real step runners: buildah builds, registry sync, Kubernetes rollouts.
// Wired as those parts land; until then the worker refuses to start with them.
import type { StepRunners } from '../domain/ports.ts';
import type { Runtime } from '../runtime.ts';

export function realRunners(_rt: Runtime): StepRunners {
  throw new Error('the real build/sync/deploy runners are not wired yet; set FERRY_RUNNERS=recording');
}
