// Words of the command grammar that can never be app names, factors or
// environments, so `/release status` is never read as "release the app
// called status". The domain owns this list because config validation needs
// it and may not import commands/; commands/index.ts is checked against it by
// the compiler (one module per word, no more, no fewer).
export const SUBCOMMANDS = [
  'plan',
  'status',
  'history',
  'rollback',
  'logs',
  'approve',
  'reject',
  'pause',
  'resume',
  'abort',
  'sync',
  'versions',
  'adopt',
  'rebuild',
  'apps',
  'help',
] as const;
export type Subcommand = (typeof SUBCOMMANDS)[number];

/** Keywords inside commands ("to prod", "in eu-west", "lines 50"…). */
export const KEYWORDS = [
  'to',
  'in',
  'version',
  'pod',
  'file',
  'lines',
  'since',
  'grep',
  'promote',
  'stack',
] as const;

export const RESERVED_WORDS: ReadonlySet<string> = new Set<string>([...SUBCOMMANDS, ...KEYWORDS]);

/** Release ids look like r42; an app may not be named like one. */
export const RELEASE_ID = /^r\d+$/;
