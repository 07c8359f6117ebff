// Typed build failures. Every failure that stops a variant from being pushed
// is a BuildFailed: chat shows `step` and `lastLines` in the release thread
// and attaches the file at `logPath`.

export type BuildFailureCode =
  | 'UNKNOWN_REF'
  | 'CHECKOUT_FAILED'
  | 'INVALID_REQUEST'
  | 'BUILD_FAILED'
  | 'PUSH_FAILED'
  | 'REGISTRY_FAILED'
  | 'CANCELLED';

export interface BuildFailedDetails {
  code: BuildFailureCode;
  app: string;
  version: string;
  envName: string;
  /** The step that failed, e.g. "STEP 4/6: RUN make test", or "checkout", "push". */
  step: string;
  /** The last lines of output (at most ~20). */
  lastLines: string[];
  logPath: string;
  cause?: unknown;
}

export class BuildFailed extends Error {
  override name = 'BuildFailed';
  readonly code: BuildFailureCode;
  readonly app: string;
  readonly version: string;
  readonly envName: string;
  readonly step: string;
  readonly lastLines: string[];
  readonly logPath: string;

  constructor(summary: string, d: BuildFailedDetails) {
    const tail = d.lastLines.length > 0 ? '\n' + d.lastLines.map((l) => '  | ' + l).join('\n') : '';
    super(`build of ${d.app} ${d.version} for ${d.envName} failed at ${d.step}: ${summary}${tail}`, {
      cause: d.cause,
    });
    this.code = d.code;
    this.app = d.app;
    this.version = d.version;
    this.envName = d.envName;
    this.step = d.step;
    this.lastLines = d.lastLines;
    this.logPath = d.logPath;
  }
}

/** The git ref (tag, branch or commit) does not exist in the app's repository. */
export class UnknownRefError extends BuildFailed {
  override name = 'UnknownRefError';
  readonly ref: string;
  readonly knownTags: string[];
  readonly knownBranches: string[];

  constructor(
    ref: string,
    knownTags: string[],
    knownBranches: string[],
    d: Omit<BuildFailedDetails, 'code' | 'step'>,
  ) {
    const shown = knownTags.length > 20 ? [...knownTags.slice(-20), '…'] : knownTags;
    super(
      `unknown ref "${ref}" in ${d.app}'s repository; known tags: ${shown.length ? shown.join(', ') : '(none)'}` +
        (knownBranches.length ? `; branches: ${knownBranches.slice(0, 10).join(', ')}` : ''),
      { ...d, code: 'UNKNOWN_REF', step: 'checkout' },
    );
    this.ref = ref;
    this.knownTags = knownTags;
    this.knownBranches = knownBranches;
  }
}
