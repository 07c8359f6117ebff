// /release pause <release-id>
import { type SteeringCommand, steeringCommand, steeringSchema } from './steering.ts';

export const pauseSchema = steeringSchema('pause');
export type PauseCommand = SteeringCommand<'pause'>;

export const pause = steeringCommand(
  'pause',
  'Stop a rollout after the batch in progress; nothing more changes until resume.',
  pauseSchema,
);
