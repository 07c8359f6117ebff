import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { snippetOf, TailCollector } from '../../src/logs/collect.ts';
import { LineSplitter, Redactor, redactDeep, redactOutbound, redactText } from '../../src/logs/redact.ts';

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

// Real-world formats: each line as a tool, driver or cloud SDK prints it, and the secret in it.
// Add a row whenever a leak is found.
const SECRETS: [string, string, string][] = [
  // URLs with credentials
  ['postgres URL', 'connecting to postgres://app:pa55word@db:5432/orders', 'pa55word'],
  ['redis URL, empty user', 'redis://:s3cretRedis@cache:6379/0', 's3cretRedis'],
  ['rediss URL, empty user', 'REDIS_URL=rediss://:tls-Pass-42@redis.internal:6380', 'tls-Pass-42'],
  [
    'mongodb+srv URL',
    'mongodb+srv://svc:Mong0Pass@cluster0.abc.mongodb.net/db?retryWrites=true',
    'Mong0Pass',
  ],
  ['amqp URL', 'amqp://guest:rabbitPw9@mq:5672/vhost', 'rabbitPw9'],
  ['password with @ in URL', 'DATABASE_URL=postgres://app:p@ssw0rd@db.internal:5432/app', 'ssw0rd'],
  ['password with two @', 'mysql://root:a@b@c-pw@10.0.0.5:3306/x', 'b@c-pw'],
  [
    'git clone over https',
    "Cloning into 'app'... https://ci-bot:glpat-xYz12345678901234567@gitlab.example.com/team/app.git",
    'glpat-xYz12345678901234567',
  ],
  ['ftp URL', 'ftp://deploy:ftpSecret1@files.example.com/out', 'ftpSecret1'],
  // JDBC
  ['Oracle thin JDBC', 'url=jdbc:oracle:thin:scott/tiger@//db:1521/ORCL', 'tiger'],
  ['Oracle thin JDBC, SID form', 'jdbc:oracle:thin:app/Ora_pw_77@db.example.com:1521:orcl', 'Ora_pw_77'],
  ['Oracle thin JDBC, @ in password', 'jdbc:oracle:thin:app/p@ss77@//db:1521/svc', 'ss77'],
  ['SQL Server JDBC', 'jdbc:sqlserver://db:1433;databaseName=x;user=sa;password=Sql$erver1;', 'Sql$erver1'],
  ['MySQL JDBC query', 'jdbc:mysql://db:3306/x?user=app&password=myJdbcPw', 'myJdbcPw'],
  // key: value, key=value
  ['env password', 'DB_PASSWORD=hunter2hunter2', 'hunter2hunter2'],
  ['YAML password', '  password: Sup3rS3cret', 'Sup3rS3cret'],
  ['YAML password quoted', '  password: "with spaces and @"', 'with spaces and @'],
  ['password: at line start', 'password: tr0ub4dor', 'tr0ub4dor'],
  ['Password: prompt echo', 'Password: letmein99', 'letmein99'],
  ['JSON password', '{"user":"app","password":"j$0nPw","ok":true}', 'j$0nPw'],
  ['JSON apiKey', '{"apiKey":"abcd1234efgh5678"}', 'abcd1234efgh5678'],
  ['db_pass', 'db_pass=plainPass1', 'plainPass1'],
  ['client secret', 'OAUTH_CLIENT_SECRET=Zm9vYmFyYmF6cXV4', 'Zm9vYmFyYmF6cXV4'],
  ['secret in logfmt', 'level=info msg="login" secret=logfmtS3cret user=bob', 'logfmtS3cret'],
  ['ruby hash rocket', ':password => "rubyPw1"', 'rubyPw1'],
  ['URL-encoded query', 'GET /login?user=bob&password%3Dhunter22%26next=1', 'hunter22'],
  ['libpq keyword string', 'psql "host=db user=app password=libpqPw1 dbname=x"', 'libpqPw1'],
  ['PGPASSWORD', 'export PGPASSWORD=pgEnvPw', 'pgEnvPw'],
  // command-line flags
  ['--password X', 'mysqldump --user root --password hunter2 shop', 'hunter2'],
  ['--password=X', 'mysql --password=eqPw123 -h db', 'eqPw123'],
  ['--db-password X', 'migrate --db-password "quoted pw" up', 'quoted pw'],
  ['--token X', 'vault login --token s.AbCdEf123456', 's.AbCdEf123456'],
  [
    '--client-secret X',
    'az login --service-principal -u app --client-secret Az~Secret.99 --tenant t',
    'Az~Secret.99',
  ],
  ['docker login -p', 'docker login --password Dock3rPw registry.example.com', 'Dock3rPw'],
  ['curl -u', 'curl -u admin:curlPw1 https://api.example.com', 'curlPw1'],
  // Authorization headers
  ['Bearer token', 'Authorization: Bearer abc.def-ghi_jkl', 'abc.def-ghi_jkl'],
  ['short Bearer token', 'Authorization: Bearer a1b2c', 'a1b2c'],
  ['short Bearer lower case', 'authorization: bearer xyz', 'xyz'],
  ['Basic auth header', 'Authorization: Basic dXNlcjpwdw==', 'dXNlcjpwdw=='],
  ['token scheme', 'Authorization: token ghs_0123456789abcdef', 'ghs_0123456789abcdef'],
  // cloud
  ['AWS access key id', 'key id AKIAIOSFODNN7EXAMPLE used', 'AKIAIOSFODNN7EXAMPLE'],
  [
    'AWS secret key',
    'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  ],
  [
    'Azure storage connection string',
    'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=AbCd+EfGh/IjKlMnOp==;EndpointSuffix=core.windows.net',
    'AbCd+EfGh/IjKlMnOp==',
  ],
  [
    'Azure Service Bus SharedAccessKey',
    'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=SbKey+123/abc=',
    'SbKey+123/abc=',
  ],
  [
    'Azure SAS URL',
    'GET https://acct.blob.core.windows.net/c/b.zip?sv=2021-08-06&ss=b&srt=o&sp=r&se=2025-01-01&sig=AbC%2BdEf%2FgHi%3D 200',
    'AbC%2BdEf%2FgHi%3D',
  ],
  [
    'S3 presigned URL',
    'https://b.s3.amazonaws.com/k?X-Amz-Credential=x&X-Amz-Signature=3f2a9b7c0d1e4f5a6b7c8d9e0f1a2b3c',
    '3f2a9b7c0d1e4f5a6b7c8d9e0f1a2b3c',
  ],
  ['GCS signed URL', 'https://storage.googleapis.com/b/o?X-Goog-Signature=9a8b7c6d5e4f', '9a8b7c6d5e4f'],
  [
    'Google API key',
    'maps key AIzaSyA1234567890abcdefghijklmnopqrstuv',
    'AIzaSyA1234567890abcdefghijklmnopqrstuv',
  ],
  // vendor tokens
  [
    'SendGrid key',
    'SENDGRID: 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',
    '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',
  ],
  [
    'SendGrid key, bare',
    'mailer configured with SG.aaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',
    'SG.aaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',
  ],
  ['Slack bot token', 'slack xoxb-1234567890-abcdefghij', 'xoxb-1234567890-abcdefghij'],
  ['GitHub token', 'gh ghp_abcdefghijklmnopqrstuvwxyz0123456789', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789'],
  ['Stripe key', 'stripe sk_live_0123456789abcdefABCD', 'sk_live_0123456789abcdefABCD'],
  [
    'npm token',
    '//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789',
    'npm_abcdefghijklmnopqrstuvwxyz0123456789',
  ],
  [
    'JWT',
    'jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end',
    'dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
  ],
];

// Lines a build or an app prints every day: none may change.
const ORDINARY = [
  '2025-01-01T00:00:00.000Z INFO  [hello-app] v1 GET / from 10.0.0.1:5555',
  'STEP 3/7: RUN npm ci --omit=dev',
  'npm run build --production',
  'added 312 packages in 14s',
  'Tests: 3 passed, 3 total',
  '# pass 12',
  'passing the request to the upstream',
  '--passive mode on',
  'see https://example.com/docs/a@b and mailto:ops@example.com',
  'GET /api/v1/users/@me 200 3ms',
  'WWW-Authenticate: Bearer realm="https://auth.example.com/token",service="registry"',
  'user alice logged in; 3 tokens in bucket',
  'Copying blob sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b',
  'Writing manifest to image destination',
  'connecting to redis://cache:6379/0',
  'jdbc:postgresql://db:5432/orders',
  'Pushed 127.0.0.1:5000/shop/app:v2@sha256:0a1b2c3d',
  'java.lang.OutOfMemoryError: Java heap space',
  'Killed process 1234 (java) total-vm:4194304kB, anon-rss:2097152kB',
  'ssh-keygen: generating new host keys: RSA ECDSA ED25519',
];

describe('redactor: real-world formats', () => {
  it('has 50 or more secret samples', () => {
    expect(SECRETS.length).toBeGreaterThanOrEqual(50);
  });

  it.each(SECRETS)('%s', (_name, line, secret) => {
    const out = redactText(line);
    expect(out).not.toContain(secret);
    expect(out).toContain('REDACTED');
  });

  it.each(ORDINARY)('leaves alone: %s', (line) => {
    expect(redactText(line)).toBe(line);
  });

  // Text passes the redactor at more than one exit (the log service, then the notify queue):
  // a second pass must leave a redacted line exactly as the first left it.
  it.each(SECRETS)('redacting twice is redacting once: %s', (_name, line) => {
    const once = redactText(line);
    expect(redactText(once)).toBe(once);
  });

  it('redactDeep hides secrets in every string of a message and keeps the rest', () => {
    const blocks = [
      { type: 'section', text: { type: 'mrkdwn', text: 'build failed: password=hunter2hunter2' } },
      { type: 'actions', elements: [{ action_id: 'approve', value: 'r12|3' }] },
    ];
    const out = redactDeep(blocks);
    expect(JSON.stringify(out)).not.toContain('hunter2hunter2');
    expect(out[1]).toEqual(blocks[1]);
  });
});

describe('redactOutbound', () => {
  it("redacts a file's name and text but keeps a chart's bytes, which look like a token and are not text", () => {
    const bytes = Buffer.from('\x89PNG\r\n\x1a\n'.repeat(40)).toString('base64');
    const out = redactOutbound({
      kind: 'reply',
      text: 'password=hunter2hunter2',
      file: {
        name: 'r1-batch-1.png',
        text: 'error rate, token=ghp_abcdefghijklmnopqrstuvwxyz0123456789',
        bytes,
      },
    });
    expect(out.text).not.toContain('hunter2hunter2');
    expect(out.file.text).not.toContain('ghp_abcdefghijklmnopqrstuvwxyz0123456789');
    expect(out.file.bytes).toBe(bytes);
  });
});
