// /release resume <release-id>
import { type SteeringCommand, steeringCommand, steeringSchema } from './steering.ts';

export const resumeSchema = steeringSchema('resume');
export type ResumeCommand = SteeringCommand<'resume'>;

export const resume = steeringCommand(
  'resume',
  'Continue a paused release, or promote the next batch where the plan waits for a person.',
  resumeSchema,
);
