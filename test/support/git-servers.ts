// Real git servers for the remote-git tests, each on a free loopback port and
// each started by the test that needs it:
//  - HTTPS: lighttpd with TLS (a self-signed certificate made here by openssl),
//    basic auth from an htpasswd file, and git-http-backend as CGI;
//  - SSH: the system's sshd with its own config, host key and authorized_keys
//    (keys made here by ssh-keygen).
// Debian packages: lighttpd, lighttpd-mod-openssl, openssh-server (scripts/setup.sh).

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const GIT_HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

interface Started {
  child: ChildProcess;
  exited: () => boolean;
  stop: () => Promise<void>;
}

/** Spawns a daemon in the foreground, logging to `logFile`, and waits until `port` accepts connections. */
async function startDaemon(
  cmd: string,
  args: string[],
  port: number,
  logFile: string,
): Promise<Started | undefined> {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const stop = async () => {
    if (!exited) {
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await done;
    }
  };
  for (let i = 0; i < 100 && !exited; i++) {
    if (await portOpen(port)) return { child, exited: () => exited, stop };
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  return undefined;
}

/** A bare copy of `sourceDir` (all branches and tags) at `<root>/<name>.git`, served as-is by both servers. */
export async function publishBare(sourceDir: string, root: string, name: string): Promise<string> {
  await mkdir(root, { recursive: true });
  const bare = join(root, `${name}.git`);
  await exec('git', ['clone', '--quiet', '--bare', sourceDir, bare]);
  return bare;
}

/** A self-signed certificate for 127.0.0.1 (CA:TRUE, so it is its own trust anchor). */
export async function makeCertificate(dir: string): Promise<{ certFile: string; keyFile: string }> {
  await mkdir(dir, { recursive: true });
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  await exec('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '2',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  ]);
  return { certFile, keyFile };
}

export interface HttpsGitServer {
  port: number;
  /** host:port */
  host: string;
  /** https://127.0.0.1:PORT/<name>.git */
  url(name: string): string;
  /** The server's certificate (trust it through git's CA setting). */
  caFile: string;
  dir: string;
  stop(): Promise<void>;
}

/**
 * lighttpd serving every bare repository under `projectRoot` over HTTPS, with
 * basic auth: `username` and `token` (stored as its SHA-1 in htpasswd form).
 */
export async function startHttpsGitServer(opts: {
  dir: string;
  projectRoot: string;
  username: string;
  token: string;
}): Promise<HttpsGitServer> {
  const { dir } = opts;
  await mkdir(dir, { recursive: true });
  const { certFile, keyFile } = await makeCertificate(join(dir, 'tls'));
  const htpasswd = join(dir, 'htpasswd');
  const sha = createHash('sha1').update(opts.token).digest('base64');
  await writeFile(htpasswd, `${opts.username}:{SHA}${sha}\n`, { mode: 0o600 });
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const conf = join(dir, 'lighttpd.conf');
    await writeFile(
      conf,
      [
        'server.modules = ("mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi", "mod_openssl")',
        `server.document-root = "${opts.projectRoot}"`,
        'server.bind = "127.0.0.1"',
        `server.port = ${port}`,
        `server.errorlog = "${join(dir, 'error.log')}"`,
        'ssl.engine = "enable"',
        `ssl.pemfile = "${certFile}"`,
        `ssl.privkey = "${keyFile}"`,
        'auth.backend = "htpasswd"',
        `auth.backend.htpasswd.userfile = "${htpasswd}"`,
        'auth.require = ( "/" => ( "method" => "basic", "realm" => "git", "require" => "valid-user" ) )',
        // Every path goes to git-http-backend; lighttpd passes the rest as PATH_INFO.
        `alias.url = ( "/" => "${GIT_HTTP_BACKEND}/" )`,
        'cgi.assign = ( "" => "" )',
        `setenv.set-environment = ( "GIT_PROJECT_ROOT" => "${opts.projectRoot}", "GIT_HTTP_EXPORT_ALL" => "1" )`,
        '',
      ].join('\n'),
    );
    const started = await startDaemon('lighttpd', ['-D', '-f', conf], port, join(dir, 'lighttpd.out'));
    if (!started) continue;
    return {
      port,
      host: `127.0.0.1:${port}`,
      url: (name) => `https://127.0.0.1:${port}/${name}.git`,
      caFile: certFile,
      dir,
      stop: started.stop,
    };
  }
  throw new Error(`lighttpd did not start; see ${dir}/lighttpd.out and error.log`);
}

export interface KeyPair {
  privateKeyFile: string;
  publicKey: string;
}

/** An ed25519 key pair without passphrase (mode 0600), made by ssh-keygen. */
export async function makeKeyPair(dir: string, name: string): Promise<KeyPair> {
  await mkdir(dir, { recursive: true });
  const privateKeyFile = join(dir, name);
  await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', privateKeyFile]);
  await chmod(privateKeyFile, 0o600);
  const publicKey = (await readFile(`${privateKeyFile}.pub`, 'utf8')).trim();
  return { privateKeyFile, publicKey };
}

export interface SshGitServer {
  port: number;
  /** host:port */
  host: string;
  /** ssh://<user>@127.0.0.1:PORT<absolute path of the bare repo> */
  url(barePath: string): string;
  /** A known_hosts line for this server's host key. */
  knownHostsLine: string;
  dir: string;
  stop(): Promise<void>;
}

/**
 * `sshd -D -f <own config>` on a free loopback port: key logins only, for the
 * current user, with `authorizedKeys` as the only keys accepted.
 */
export async function startSshGitServer(opts: {
  dir: string;
  authorizedKeys: string[];
}): Promise<SshGitServer> {
  const { dir } = opts;
  await mkdir(dir, { recursive: true });
  const hostKey = await makeKeyPair(dir, 'host_key');
  const authorized = join(dir, 'authorized_keys');
  await writeFile(authorized, opts.authorizedKeys.join('\n') + '\n', { mode: 0o600 });
  // sshd insists on its privilege separation directory even in the foreground.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const user = userInfo().username;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const conf = join(dir, 'sshd_config');
    await writeFile(
      conf,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey.privateKeyFile}`,
        'PidFile none',
        `AuthorizedKeysFile ${authorized}`,
        // The test's files live under /tmp, which StrictModes rejects as world-writable.
        'StrictModes no',
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PubkeyAuthentication yes',
        'PermitRootLogin prohibit-password',
        `AllowUsers ${user}`,
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
    );
    const started = await startDaemon(
      '/usr/sbin/sshd',
      ['-D', '-e', '-f', conf],
      port,
      join(dir, 'sshd.log'),
    );
    if (!started) continue;
    const [type, key] = hostKey.publicKey.split(' ');
    return {
      port,
      host: `127.0.0.1:${port}`,
      url: (barePath) => `ssh://${user}@127.0.0.1:${port}${barePath}`,
      knownHostsLine: `[127.0.0.1]:${port} ${type} ${key}`,
      dir,
      stop: started.stop,
    };
  }
  throw new Error(`sshd did not start; see ${dir}/sshd.log`);
}
