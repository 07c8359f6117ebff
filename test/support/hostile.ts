// Generators of hostile and odd chat input, shared by the fuzz tests, and the
// check that an answer is something a person can read.
import fc from 'fast-check';
import type { FerryConfig } from '../../src/domain/config.ts';
import { KEYWORDS, SUBCOMMANDS } from '../../src/domain/words.ts';

/** Every name Object.prototype brings, plus the ones that reach it. */
export const BUILT_IN_NAMES = [
  ...Object.getOwnPropertyNames(Object.prototype),
  '__proto__',
  'constructor',
  'prototype',
];

const SHELL = [...';|&$`()<>*?!{}[]~#\'"\\\n\r\t%^=,'];
const OPTION_LIKE = ['--x', '-h', '--help', '--config=/etc/passwd', '-rf', '--', '-', '--to', '-in'];
const MARKUP = ['<!channel>', '<!here>', '<https://evil.example|the runbook>', '<@U_BOB>', '&amp;', '*bold*'];

/** Words that hide the defects the readability check looks for, so an echo of them is no false alarm. */
const CHECKED_WORDS = /undefined|\[object|\bat\s|Error|NaN|is not a function|Cannot read/i;

export function hostileWord(config: FerryConfig): fc.Arbitrary<string> {
  const real = [
    ...Object.keys(config.apps),
    ...Object.keys(config.environments),
    ...Object.keys(config.regions),
    ...Object.keys(config.factors),
    ...SUBCOMMANDS,
    ...KEYWORDS,
    'release',
    'factors',
    'v1',
    'v2',
    'r1',
    'r42',
    '15m',
    '50',
    'stdout',
    'gc',
  ];
  const builtIn = fc.constantFrom(...BUILT_IN_NAMES.flatMap((n) => [n, n.toLowerCase()]));
  return fc
    .oneof(
      { weight: 6, arbitrary: fc.constantFrom(...real) },
      { weight: 6, arbitrary: builtIn },
      // A region list that mixes a real region and a built-in name.
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...real), builtIn).map(([a, b]) => `${a},${b}`) },
      { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }) },
      { weight: 1, arbitrary: fc.string({ minLength: 500, maxLength: 5000 }) },
      { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...SHELL), minLength: 1, maxLength: 6 }) },
      { weight: 2, arbitrary: fc.constantFrom(...OPTION_LIKE) },
      { weight: 1, arbitrary: fc.constantFrom(...MARKUP) },
    )
    .filter((w) => !CHECKED_WORDS.test(w));
}

/** A chat text: free-form words, or the shape of a command with hostile words in its slots. */
export function hostileCommand(config: FerryConfig): fc.Arbitrary<{ text: string; words: string[] }> {
  const word = hostileWord(config);
  const sep = fc.constantFrom(' ', ' ', ' ', '  ', '\t', '\u00a0');
  const prefix = fc.constantFrom('/release ', '', '/RELEASE ', '  /release');
  const freeForm = fc.array(word, { maxLength: 8 });
  const shaped = fc
    .tuple(
      fc.constantFrom(
        '',
        'plan',
        'logs',
        'status',
        'history',
        'rollback',
        'sync',
        'help',
        'reject',
        'approve',
      ),
      word,
      word,
      fc.array(
        fc.oneof(
          fc.tuple(fc.constantFrom('to', 'in', 'pod', 'file', 'lines', 'since', 'grep', 'version'), word),
          word.map((w) => [w] as [string]),
        ),
        { maxLength: 5 },
      ),
    )
    .map(([sub, a, b, rest]) => [...(sub ? [sub] : []), a, b, ...rest.flat()]);
  return fc
    .tuple(prefix, fc.oneof(freeForm, shaped), fc.array(sep, { minLength: 10, maxLength: 10 }))
    .map(([p, words, seps]) => ({
      words,
      text: p + words.map((w, i) => (i === 0 ? w : `${seps[i % seps.length]}${w}`)).join(''),
    }));
}

/** The longest answer a person should get to one command. */
export const MAX_REPLY = 6000;

/** Why `text` is no answer a person can read, or undefined when it is one. */
export function unreadable(text: unknown): string | undefined {
  if (typeof text !== 'string') return `not text: ${typeof text}`;
  if (text.trim().length === 0) return 'empty';
  if (text.length > MAX_REPLY) return `${text.length} characters long`;
  if (/undefined/.test(text)) return 'says "undefined"';
  if (/\[object /.test(text)) return 'says "[object …]"';
  if (/\bNaN\b/.test(text)) return 'says "NaN"';
  if (/^\s+at .+:\d+:\d+\)?$/m.test(text)) return 'holds a stack trace';
  if (/(Type|Reference|Range|Syntax)Error/.test(text)) return 'names a JavaScript error';
  if (/is not a function|Cannot read properties/.test(text)) return 'shows an internal error';
  return undefined;
}
