import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { snippetOf, TailCollector } from '../../src/logs/collect.ts';
import { LineSplitter, Redactor, redactText } from '../../src/logs/redact.ts';

const PEM = `-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF0qGZmXb0Pq2x4Tz1jSECRETLINEONE
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
-----END RSA PRIVATE KEY-----`;

/** Streams text through a splitter + redactor in the given chunk sizes. */
function stream(text: string, sizes: number[], patterns = [] as { name: string; pattern: string }[]): string {
  const r = new Redactor({ patterns });
  const out: string[] = [];
  const s = new LineSplitter((l) => out.push(r.line(l)));
  const bytes = Buffer.from(text);
  let i = 0;
  let k = 0;
  while (i < bytes.length) {
    const n = Math.max(1, sizes[k++ % Math.max(1, sizes.length)] ?? 7);
    s.push(bytes.subarray(i, i + n));
    i += n;
  }
  s.end();
  return out.join('\n');
}

describe('redactor', () => {
  it.each([
    ['password=hunter2 user=bob', 'hunter2'],
    ['DB_PASSWORD: "s3cr3t-value"', 's3cr3t-value'],
    ['{"apiKey":"abcd1234efgh","ok":true}', 'abcd1234efgh'],
    ['client_secret=Zm9vYmFyYmF6 next', 'Zm9vYmFyYmF6'],
    ['Authorization: Bearer abc.def-ghi_jkl', 'abc.def-ghi_jkl'],
    ['token: Bearer 0123456789abcdef', '0123456789abcdef'],
    ['key id AKIAIOSFODNN7EXAMPLE used', 'AKIAIOSFODNN7EXAMPLE'],
    [
      'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    ],
    ['AWS secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'],
    [
      'jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end',
      'dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
    ],
    ['connect postgres://app:pa55word@db:5432/x', 'pa55word'],
    ['GET /login?user=bob&password%3Dhunter2%26next=1', 'hunter2'],
    ['GET /log?msg=key%20AKIAIOSFODNN7EXAMPLE%20x', 'AKIAIOSFODNN7EXAMPLE'],
    ['slack xoxb-1234567890-abcdefghij', 'xoxb-1234567890-abcdefghij'],
    ['gh ghp_abcdefghijklmnopqrstuvwxyz0123456789', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789'],
  ])('hides the secret in %s', (line, secret) => {
    const out = redactText(line);
    expect(out).not.toContain(secret);
    expect(out).toContain('REDACTED');
  });

  it('keeps ordinary log lines as they are', () => {
    const lines = [
      '2025-01-01T00:00:00.000Z INFO  [hello-app] v1 GET / from 10.0.0.1:5555',
      '[2025-01-01T00:00:02.000+0000][2.001s][info][gc] GC(1) Pause Full (System.gc()) 3M->1M(12M) 0.512ms',
      'user alice logged in; 3 tokens in bucket',
    ];
    for (const l of lines) expect(redactText(l)).toBe(l);
  });

  it('hides a multi-line PEM private key block, whatever the chunking', () => {
    const text = `before\n${PEM}\nafter password=x1y2z3`;
    for (const sizes of [[1], [3, 17], [4096]]) {
      const out = stream(text, sizes);
      expect(out).not.toContain('SECRETLINEONE');
      expect(out).not.toContain('b3BlbnNzaC1rZXkt');
      expect(out).toContain('before');
      expect(out).toContain('after password=[REDACTED]');
      expect(out).toContain('[REDACTED PRIVATE KEY]');
    }
  });

  it('hides a PEM key escaped on one line (JSON logs)', () => {
    const out = redactText(`{"key":"${PEM.replace(/\n/g, '\\n')}","x":1}`);
    expect(out).not.toContain('SECRETLINEONE');
  });

  it('applies configured patterns', () => {
    const out = redactText('card 4111-1111-1111-1111 ok', [
      { name: 'card', pattern: '\\b(?:\\d{4}-){3}\\d{4}\\b' },
    ]);
    expect(out).toBe('card [REDACTED:card] ok');
    // an invalid pattern is skipped, not fatal
    expect(redactText('x', [{ name: 'bad', pattern: '(' }])).toBe('x');
  });

  it('stays linear on long pathological lines (no catastrophic backtracking)', () => {
    for (const c of ['x-', 'a_', 'aws ', '"a', 'http://a:', 'eyJa.', 'token', 'a=']) {
      const line = c.repeat(Math.floor(65536 / c.length));
      const t = performance.now();
      redactText(line);
      expect(performance.now() - t).toBeLessThan(1000);
    }
  });

  it('truncates an endless line instead of buffering it', () => {
    const out: string[] = [];
    const s = new LineSplitter((l) => out.push(l), 1024);
    for (let i = 0; i < 100; i++) s.push('x'.repeat(1000));
    s.push('\nnext\n');
    s.end();
    expect(out).toHaveLength(2);
    expect(out[0]?.length).toBeLessThan(1100);
    expect(out[1]).toBe('next');
  });

  const secretValue = fc.stringMatching(/^[A-Za-z0-9]{10,24}$/);
  const filler = fc.array(fc.string({ maxLength: 40 }), { maxLength: 6 }).map((xs) => xs.join('\n'));
  const planted = fc.constantFrom(
    (s: string) => `password=${s}`,
    (s: string) => `"secret": "${s}"`,
    (s: string) => `Authorization: Bearer ${s}`,
    (s: string) => `api_key: ${s}`,
    (s: string) => `https://deploy:${s}@git.example.com/x`,
    (s: string) => `-----BEGIN PRIVATE KEY-----\n${s}\n${s}\n-----END PRIVATE KEY-----`,
  );

  it('property: no planted secret survives, in any chunking', () => {
    fc.assert(
      fc.property(
        filler,
        secretValue,
        planted,
        filler,
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 5 }),
        (pre, secret, plant, post, sizes) => {
          const text = `${pre}\n${plant(secret)}\n${post}`;
          const out = stream(text, sizes);
          expect(out).not.toContain(secret);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: planted AWS keys and JWTs never survive', () => {
    const awsKey = fc.stringMatching(/^[A-Z0-9]{16}$/).map((s) => `AKIA${s}`);
    const jwt = fc
      .tuple(fc.stringMatching(/^[A-Za-z0-9_-]{6,20}$/), fc.stringMatching(/^[A-Za-z0-9_-]{10,40}$/))
      .map(([a, b]) => `eyJ${a}.eyJ${a}.${b}`);
    fc.assert(
      fc.property(filler, fc.oneof(awsKey, jwt), filler, (pre, secret, post) => {
        const out = redactText(`${pre} ${secret} \n${post}`);
        expect(out).not.toContain(secret);
      }),
      { numRuns: 200 },
    );
  });

  it('property: arbitrary text never throws and keeps its line count', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (text) => {
        const out = redactText(text);
        expect(out.split('\n').length).toBe(text.split('\n').length);
        stream(text, [3]);
      }),
      { numRuns: 150 },
    );
  });
});

describe('tail collector and snippet', () => {
  it('keeps the last lines within the byte budget and counts what it dropped', () => {
    const c = new TailCollector({ maxLines: 5, maxBytes: 32 });
    for (let i = 0; i < 20; i++) c.push(`line ${i}`);
    expect(c.kept).toEqual(['line 16', 'line 17', 'line 18', 'line 19']);
    expect(c.dropped).toBe(16);
    expect(c.size).toBeLessThanOrEqual(32);
  });

  it('filters with grep while streaming', () => {
    const c = new TailCollector({ maxLines: 2, maxBytes: 1000, grep: 'ERROR' });
    for (const l of ['a ERROR 1', 'b', 'c error 2', 'd ERROR 3']) c.push(l);
    expect(c.kept).toEqual(['c error 2', 'd ERROR 3']);
  });

  it('snippet: last lines within the character budget', () => {
    const lines = Array.from({ length: 100 }, (_, i) => `${i} ${'x'.repeat(100)}`);
    const s = snippetOf(lines, 40, 3000);
    expect(s.length).toBeLessThanOrEqual(3000);
    expect(s.endsWith(lines[99] as string)).toBe(true);
  });
});
