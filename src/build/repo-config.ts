// From an app in ferry.yaml to what the builder needs to fetch its code: the
// repository address (paths expanded, URLs untouched) and the credentials of
// the app, or else of its repository's host (`gitHosts`).
import { isAbsolute, resolve } from 'node:path';
import { expandPath } from '../config/paths.ts';
import type { FerryConfig, GitAccessConfig } from '../domain/config.ts';
import { durationMs } from '../domain/duration.ts';
import type { GitAccess } from './git.ts';

const URL_LIKE = /^[a-z][a-z0-9+.-]*:\/\//i;
const SCP_LIKE = /^(?:[^@/\s]+@)?[^:/\s]+:(?!\/\/)/;

/** An app's repo as git takes it: a URL or scp-like address as written, anything else a local path. */
export function repoAddress(repo: string): string {
  const expanded = expandPath(repo);
  if (URL_LIKE.test(expanded) || (!isAbsolute(expanded) && SCP_LIKE.test(expanded))) return expanded;
  return resolve(expanded);
}

/** host[:port] of a URL or scp-like address; undefined for a local path. */
export function repoHost(address: string): { host: string; hostname: string } | undefined {
  if (isAbsolute(address)) return undefined;
  if (URL_LIKE.test(address)) {
    try {
      const u = new URL(address);
      return u.protocol === 'file:' ? undefined : { host: u.host, hostname: u.hostname };
    } catch {
      return undefined;
    }
  }
  const m = /^(?:[^@/\s]+@)?([^:/\s]+):/.exec(address);
  return m?.[1] ? { host: m[1], hostname: m[1] } : undefined;
}

function toAccess(g: GitAccessConfig): GitAccess {
  const out: GitAccess = {};
  if (g.username) out.username = g.username;
  if (g.tokenEnv) out.tokenEnv = g.tokenEnv;
  if (g.tokenFile) out.tokenFile = resolve(expandPath(g.tokenFile));
  if (g.caFile) out.caFile = resolve(expandPath(g.caFile));
  if (g.sshKeyFile) out.sshKeyFile = resolve(expandPath(g.sshKeyFile));
  if (g.knownHostsFile) out.knownHostsFile = resolve(expandPath(g.knownHostsFile));
  if (g.timeout) out.timeoutSeconds = Math.max(1, Math.round(durationMs(g.timeout) / 1000));
  return out;
}

/** The repository and credentials of one app: its own `git`, else `gitHosts[host:port]`, else `gitHosts[host]`. */
export function appRepo(config: FerryConfig, app: string): { repoUrl: string; git?: GitAccess } {
  const a = config.apps[app];
  if (!a) throw new Error(`no app ${app} in the config`);
  const repoUrl = repoAddress(a.repo);
  const host = repoHost(repoUrl);
  const hosts = config.gitHosts ?? {};
  const chosen = a.git ?? (host ? (hosts[host.host] ?? hosts[host.hostname]) : undefined);
  return chosen ? { repoUrl, git: toAccess(chosen) } : { repoUrl };
}
