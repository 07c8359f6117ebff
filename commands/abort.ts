// /release abort <release-id>
import { type SteeringCommand, steeringCommand, steeringSchema } from './steering.ts';

export const abortSchema = steeringSchema('abort');
export type AbortCommand = SteeringCommand<'abort'>;

export const abort = steeringCommand(
  'abort',
  'Stop a release where it is and roll back what it changed.',
  abortSchema,
);
