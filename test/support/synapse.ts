// A real Synapse for the Matrix tests: the one infra/lib/synapse.sh runs
// (`infra/infra.sh up synapse`, started here when it is not running), or a
// private one per test file on a free port — same virtualenv, own SQLite and
// config — that a test may stop and start again.
//
// Tests register their own users (unique names) with the shared secret, so
// runs never see each other's rooms or sync tokens.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Method } from 'matrix-js-sdk';
import { loginWithPassword, MatrixChat } from '../../src/chat/matrix/client.ts';
import { INFRA_SH, run, runDir, waitFor } from './infra.ts';
import { freePort } from './redis.ts';

export interface SynapseInfo {
  version: string;
  url: string;
  serverName: string;
  python: string;
  registrationSecret: string;
  coldInstallSeconds: number | null;
  botUser: string;
  users: Record<string, { userId: string; password: string }>;
}

let pending: Promise<SynapseInfo> | undefined;

/** The infra's Synapse: started (idempotently) unless it runs; its synapse.json. */
export function ensureSynapse(): Promise<SynapseInfo> {
  pending ??= (async () => {
    const check = await run('bash', [INFRA_SH, 'check', 'synapse'], {
      allowFail: true,
      timeoutMs: 3_600_000,
    });
    if (check.code !== 0) await run('bash', [INFRA_SH, 'up', 'synapse'], { timeoutMs: 3_600_000 });
    return JSON.parse(readFileSync(join(runDir(), 'synapse', 'synapse.json'), 'utf8')) as SynapseInfo;
  })();
  return pending;
}

/** A short random suffix for this run's user names and room aliases. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
}

/** Registers a user through the shared-secret admin API; returns the user id. */
export async function registerUser(
  url: string,
  secret: string,
  name: string,
  password: string,
  admin = false,
): Promise<string> {
  const nonce = ((await (await fetch(`${url}/_synapse/admin/v1/register`)).json()) as { nonce: string })
    .nonce;
  const mac = createHmac('sha1', secret)
    .update([nonce, name, password, admin ? 'admin' : 'notadmin'].join('\0'))
    .digest('hex');
  const res = await fetch(`${url}/_synapse/admin/v1/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ nonce, username: name, password, admin, mac }),
  });
  const body = (await res.json()) as { user_id?: string; errcode?: string; error?: string };
  if (!res.ok || !body.user_id)
    throw new Error(`registering ${name}: ${res.status} ${body.errcode} ${body.error}`);
  return body.user_id;
}

/** A person's client: a fresh user registered and logged in. */
export async function newUser(
  url: string,
  secret: string,
  name: string,
  admin = false,
): Promise<{ userId: string; password: string; client: MatrixChat }> {
  const password = `pw-${randomBytes(8).toString('hex')}`;
  await registerUser(url, secret, name, password, admin);
  const s = await loginWithPassword(url, name, password);
  return {
    userId: s.userId,
    password,
    client: new MatrixChat({ baseUrl: url, userId: s.userId, accessToken: s.accessToken }),
  };
}

/** Lowers (or lifts) one user's message rate limit; `admin` must be a server admin. */
export async function overrideRateLimit(
  admin: MatrixChat,
  userId: string,
  perSecond: number,
  burst: number,
): Promise<void> {
  await admin.sdk.http.authedRequest(
    Method.Post,
    `/users/${encodeURIComponent(userId)}/override_ratelimit`,
    undefined,
    { messages_per_second: perSecond, burst_count: burst },
    { prefix: '/_synapse/admin/v1' } as Parameters<MatrixChat['sdk']['http']['authedRequest']>[4],
  );
}

/** Reads a room through the client-server API, as any member would. */
export async function roomTimeline(client: MatrixChat, roomId: string, limit = 200) {
  return client.messages(roomId, limit);
}

/** A Synapse of a test file's own, on a free port; `restart()` stops and starts the same server. */
export class PrivateSynapse {
  readonly url: string;
  readonly secret: string;
  readonly serverName = 'private.ferry.local';
  private proc: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  private readonly python: string;
  private readonly dir: string;
  readonly port: number;

  private constructor(python: string, dir: string, port: number) {
    this.python = python;
    this.dir = dir;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.secret = randomBytes(16).toString('hex');
  }

  static async start(info: SynapseInfo): Promise<PrivateSynapse> {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-synapse-'));
    const s = new PrivateSynapse(info.python, dir, await freePort());
    s.writeConfig();
    await s.launch();
    return s;
  }

  private writeConfig(): void {
    const d = this.dir;
    // An ed25519 signing key: "ed25519 <key id> <unpadded base64 of the 32-byte seed>".
    writeFileSync(
      join(d, 'signing.key'),
      `ed25519 a_test ${randomBytes(32).toString('base64').replace(/=+$/, '')}\n`,
    );
    writeFileSync(
      join(d, 'log.yaml'),
      'version: 1\nhandlers:\n  console: {class: logging.StreamHandler}\nroot: {level: WARNING, handlers: [console]}\ndisable_existing_loggers: false\n',
    );
    const generous = '{ per_second: 100, burst_count: 200 }';
    writeFileSync(
      join(d, 'homeserver.yaml'),
      [
        `server_name: "${this.serverName}"`,
        `pid_file: "${d}/homeserver.pid"`,
        'listeners:',
        `  - { port: ${this.port}, bind_addresses: ['127.0.0.1'], type: http, tls: false, resources: [{ names: [client], compress: false }] }`,
        `database: { name: sqlite3, args: { database: "${d}/homeserver.db" } }`,
        `log_config: "${d}/log.yaml"`,
        `media_store_path: "${d}/media"`,
        `signing_key_path: "${d}/signing.key"`,
        `registration_shared_secret: "${this.secret}"`,
        'report_stats: false',
        'trusted_key_servers: []',
        'presence: { enabled: false }',
        `rc_message: ${generous}`,
        `rc_registration: ${generous}`,
        `rc_login: { address: ${generous}, account: ${generous}, failed_attempts: ${generous} }`,
        `rc_joins: { local: ${generous} }`,
        `rc_invites: { per_room: ${generous}, per_user: ${generous} }`,
        '',
      ].join('\n'),
    );
  }

  private async launch(): Promise<void> {
    const proc = spawn(
      this.python,
      ['-m', 'synapse.app.homeserver', '--config-path', join(this.dir, 'homeserver.yaml')],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let err = '';
    proc.stderr?.on('data', (b: Buffer) => {
      err = (err + b.toString()).slice(-4000);
    });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`synapse exited: ${err}`);
        return (await fetch(`${this.url}/health`).catch(() => undefined))?.ok;
      },
      { timeoutMs: 180_000, intervalMs: 250, what: `the private Synapse on ${this.port}` },
    );
  }

  /** Stops the server (SIGTERM, as a service manager would) and waits for it to exit. */
  async stop(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc?.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(timer);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }
}
