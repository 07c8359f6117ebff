export { LIMITS, normalizeBlocks, validateBlocks, validateView } from './blocks.ts';
export type {
  ClickButtonInput,
  InjectRule,
  SlackEmulatorOptions,
  SlashCommandInput,
  SubmitViewInput,
} from './emulator.ts';
export { SlackEmulator } from './emulator.ts';
export { signSlackRequest } from './events/signing.ts';
export type * from './types.ts';
