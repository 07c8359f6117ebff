// The shape of ferry.yaml. Everything a platform team tunes is data here:
// apps, environments, regions, factors, people and roles. Cross-references
// (an environment naming a region, a rule naming a group) are checked in
// `validate.ts`, where the YAML node of each mistake is known.
import { z } from 'zod';
import { nullPrototype } from './lookup.ts';

/** Names people type in chat: lower-case words with dashes. */
export const nameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,62}$/, 'use lower-case letters, digits and dashes, starting with a letter');

/**
 * A map keyed by names from the file. It is parsed into an object without a
 * prototype, so a word typed in chat ("constructor", "__proto__") finds only
 * what the config defines, never something inherited from Object.prototype.
 * (`prefault`, not `default`, where a default is needed: a default is not
 * parsed, so it would keep its prototype.)
 */
export function nameMap<K extends z.ZodType<string, string>, V extends z.ZodType>(key: K, value: V) {
  return z.record(key, value).transform((r) => nullPrototype(r) as typeof r);
}

export const durationSchema = z.string().regex(/^\d+(ms|s|m|h|d)$/, 'a duration such as 30s, 10m, 4h or 2d');

/** A batch size: a pod count ("1") or a share of the replicas ("25%"). */
export const batchSizeSchema = z
  .union([
    z.number().int().positive(),
    z.string().regex(/^(\d+|\d{1,3}%)$/, 'a pod count such as 2 or a share such as 25%'),
  ])
  .transform(String);

export const batchSchema = z.strictObject({
  size: batchSizeSchema,
  /** How long the gate watches the new pods before the next batch. */
  pause: durationSchema.optional(),
  /** Wait for a person (Promote button or `/release resume`) after this batch. */
  manualPromotion: z.boolean().optional(),
});

/**
 * An analysis check, judged at each batch gate. `query` is PromQL with
 * $selector (the judged pods' labels), $app, $env, $region, $namespace and
 * $version. Either thresholds on the new pods (max/min), or `compare`: the
 * same query over the new and the old pods, compared.
 */
export const analysisCheckSchema = z
  .strictObject({
    query: z.string().min(1),
    max: z.number().optional(),
    min: z.number().optional(),
    compare: z
      .discriminatedUnion('test', [
        z.strictObject({
          test: z.literal('mann-whitney'),
          alpha: z.number().gt(0).lt(1).default(0.05),
          minSamples: z.number().int().min(3).default(5),
        }),
        z.strictObject({
          test: z.literal('ratio'),
          maxRatio: z.number().positive(),
          margin: z.number().min(0).default(0),
          minSamples: z.number().int().min(1).default(3),
        }),
      ])
      .optional(),
    worseWhen: z.enum(['higher', 'lower']).default('higher'),
    failureLimit: z.number().int().min(0).default(0),
  })
  .refine((c) => c.compare !== undefined || c.max !== undefined || c.min !== undefined, {
    message: 'a check needs a threshold (max or min) or a comparison (compare)',
  });
export type AnalysisCheckConfig = z.infer<typeof analysisCheckSchema>;

/** An HTTP hook at a rollout point, like Flagger's webhooks. A non-2xx answer is a no; its body is the reason. */
export const webhookSchema = z.strictObject({
  kind: z.enum(['pre-rollout', 'confirm-promotion', 'post-rollout']),
  url: z.url(),
  timeout: durationSchema.default('10s'),
  retries: z.number().int().min(0).max(10).default(2),
  /** Environment variable of the worker with the HMAC-SHA256 key (X-Ferry-Signature: sha256=<hex>). */
  secretEnv: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
    .optional(),
});
export type WebhookConfig = z.infer<typeof webhookSchema>;

/** Settings a factor (or an environment) may set on a plan. All optional: a layer sets only what it names. */
export const planSettingsSchema = z.strictObject({
  approvals: z
    .strictObject({
      required: z.number().int().min(0).optional(),
      group: nameSchema.optional(),
      allowSelfApproval: z.boolean().optional(),
      expiresAfter: durationSchema.optional(),
    })
    .optional(),
  batches: z.array(batchSchema).min(1).optional(),
  gate: z
    .strictObject({
      pause: durationSchema.optional(),
      maxRestarts: z.number().int().min(0).optional(),
      onFailure: z.enum(['rollback', 'wait']).optional(),
      progressDeadline: durationSchema.optional(),
    })
    .optional(),
  skip: z
    .strictObject({
      prewarm: z.boolean().optional(),
      syncVerification: z.boolean().optional(),
    })
    .optional(),
  priority: z.number().int().min(1).max(100).optional(),
  releaseWindowBypass: z.boolean().optional(),
  promotionRule: z.boolean().optional(),
  regions: z
    .strictObject({
      order: z.enum(['sequential', 'parallel']).optional(),
      continueOnFailure: z.boolean().optional(),
    })
    .optional(),
  whenBusy: z.enum(['queue', 'refuse']).optional(),
  /**
   * Judging each batch by its metrics and by webhooks. A check or webhook is
   * set by name: a later layer naming the same one replaces it whole, `null`
   * removes it.
   */
  analysis: z
    .strictObject({
      interval: durationSchema.optional(),
      duration: durationSchema.optional(),
      checks: nameMap(nameSchema, analysisCheckSchema.nullable()).optional(),
      webhooks: nameMap(nameSchema, webhookSchema.nullable()).optional(),
    })
    .optional(),
});
export type PlanSettings = z.infer<typeof planSettingsSchema>;

export const factorAuthoritySchema = z.strictObject({
  /** The group whose members may ask for the factor; unset means anyone allowed to release the app there. */
  request: nameSchema.optional(),
  /** The group that must approve a release using the factor, besides the environment's approvers. */
  approve: nameSchema,
  /** How many distinct members of `approve` must approve. */
  approvals: z.number().int().min(1).default(1),
});
export type FactorAuthority = z.infer<typeof factorAuthoritySchema>;

export const factorSchema = z.strictObject({
  description: z.string(),
  /** Higher precedence is applied later and so wins where two factors set the same thing. */
  precedence: z.number().int().default(50),
  /** Factors that cannot be combined with this one. */
  excludes: z.array(nameSchema).default([]),
  /** Who may request a release with this factor (a group); unset means anyone allowed to release. */
  requestGroup: nameSchema.optional(),
  /**
   * Who vouches for a factor that relaxes a rule (skips the promotion rule,
   * bypasses the release window, lowers the approvals, skips sync
   * verification): who may ask for it and which group must approve it, on
   * top of the environment's own approvers. `ferry config check` refuses a
   * relaxing factor without one (see relaxedRules in domain/factors.ts).
   */
  authority: factorAuthoritySchema.optional(),
  effects: planSettingsSchema,
});
export type FactorConfig = z.infer<typeof factorSchema>;

export const tailSchema = z.strictObject({
  packages: z.array(z.string()).default([]),
  files: z
    .array(z.strictObject({ path: z.string(), content: z.string(), mode: z.number().int().optional() }))
    .default([]),
  env: nameMap(z.string(), z.string()).prefault({}),
  run: z.array(z.string()).default([]),
  instructions: z.array(z.string()).default([]),
});
export type TailConfig = z.infer<typeof tailSchema>;

export const environmentSchema = z.strictObject({
  description: z.string().optional(),
  regions: z.array(nameSchema).min(1),
  tail: tailSchema.prefault({}),
  /** A version must have succeeded in this environment first (the promotion rule). */
  requiresPassed: nameSchema.optional(),
  /** Releases outside these windows are refused unless a factor bypasses the window. */
  releaseWindows: z
    .array(
      z.strictObject({
        days: z.array(z.enum(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])).min(1),
        from: z.string().regex(/^\d\d:\d\d$/),
        to: z.string().regex(/^\d\d:\d\d$/),
      }),
    )
    .default([]),
  plan: planSettingsSchema.default({}),
});
export type EnvironmentConfig = z.infer<typeof environmentSchema>;

/** A path placeholder, expanded by config/paths.ts: "${FERRY_CACHE}" (spelled out so it is not read as a template). */
const CACHE = '$' + '{FERRY_CACHE}';
const BUILD_DEFAULTS = {
  cacheDir: `${CACHE}/build`,
  packageDir: `${CACHE}/packages`,
  storageDriver: 'auto' as const,
  isolation: 'chroot' as const,
};

export const registrySchema = z.strictObject({
  url: z.url(),
  insecure: z.boolean().default(false),
  username: z.string().optional(),
  passwordEnv: z.string().optional(),
  /** This regional registry is a pull-through cache of the primary: no push needed. */
  pullThrough: z.boolean().default(false),
});

export const regionSchema = z.strictObject({
  registry: registrySchema,
  /** The kubeconfig context of this region's cluster. */
  context: z.string(),
});

/** A Kubernetes probe, as in a pod spec (httpGet, tcpSocket, exec or grpc, plus timing). */
export const probeSchema = z.strictObject({
  httpGet: z
    .strictObject({
      path: z.string().startsWith('/'),
      port: z.union([z.number().int().min(1).max(65535), z.string()]),
    })
    .optional(),
  tcpSocket: z.strictObject({ port: z.union([z.number().int().min(1).max(65535), z.string()]) }).optional(),
  exec: z.strictObject({ command: z.array(z.string()).min(1) }).optional(),
  grpc: z
    .strictObject({ port: z.number().int().min(1).max(65535), service: z.string().optional() })
    .optional(),
  initialDelaySeconds: z.number().int().min(0).optional(),
  periodSeconds: z.number().int().min(1).optional(),
  timeoutSeconds: z.number().int().min(1).optional(),
  failureThreshold: z.number().int().min(1).optional(),
  successThreshold: z.number().int().min(1).optional(),
});
export type ProbeConfig = z.infer<typeof probeSchema>;

const quantity = z
  .union([
    z.number().positive(),
    z
      .string()
      .regex(/^\d+(\.\d+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/, 'a Kubernetes quantity such as 250m, 512Mi or 2Gi'),
  ])
  .transform(String);
const resourceList = z.strictObject({ cpu: quantity.optional(), memory: quantity.optional() });

/** One environment variable: a value, or a key of a Secret or ConfigMap in the app's namespace. */
export const envValueSchema = z.union([
  z.string(),
  z.strictObject({ secret: z.string(), key: z.string(), optional: z.boolean().optional() }),
  z.strictObject({ configMap: z.string(), key: z.string(), optional: z.boolean().optional() }),
]);

/**
 * The app's workload in a cluster: what a team would otherwise write in its
 * Deployment. Field names follow the pod spec, so a platform engineer can
 * read it as one. Every field is optional here; `src/domain/workload.ts`
 * merges Ferry's defaults, the app's `workload` and the environment's
 * override, in that order.
 */
export const workloadSchema = z.strictObject({
  /** Pods of the app in each region of the environment (ignored while an HPA owns the count). */
  replicas: z.number().int().min(1).max(1000).optional(),
  /** Extra pods a batch may start before it removes old ones: a count or a share of the replicas. */
  surge: z
    .union([
      z.number().int().min(1),
      z.string().regex(/^(\d+|\d{1,3}%)$/, 'a pod count such as 1 or a share such as 25%'),
    ])
    .transform(String)
    .optional(),
  ports: z
    .array(
      z.strictObject({
        name: z
          .string()
          .regex(
            /^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/,
            'a port name: up to 15 lower-case letters, digits and dashes',
          ),
        containerPort: z.number().int().min(1).max(65535),
        protocol: z.enum(['TCP', 'UDP', 'SCTP']).optional(),
      }),
    )
    .optional(),
  probes: z
    .strictObject({
      startup: probeSchema.nullable().optional(),
      readiness: probeSchema.nullable().optional(),
      liveness: probeSchema.nullable().optional(),
    })
    .optional(),
  resources: z
    .strictObject({ requests: resourceList.optional(), limits: resourceList.optional() })
    .optional(),
  /** Values may use {memoryLimitMiB} or {memoryLimitMiB:75%}: e.g. JAVA_OPTS: "-Xmx{memoryLimitMiB:75%}m". */
  env: z
    .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'an environment variable name'), envValueSchema)
    .optional(),
  /** Every key of these Secrets and ConfigMaps becomes an environment variable. */
  envFrom: z
    .array(
      z.union([
        z.strictObject({ secret: z.string(), optional: z.boolean().optional() }),
        z.strictObject({ configMap: z.string(), optional: z.boolean().optional() }),
      ]),
    )
    .optional(),
  /** Volumes mounted into the app's container (emptyDir for log directories, Secrets, ConfigMaps). */
  volumes: z
    .array(
      z.strictObject({
        name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'a DNS-1123 label'),
        mountPath: z.string().startsWith('/'),
        readOnly: z.boolean().optional(),
        emptyDir: z
          .strictObject({ sizeLimit: quantity.optional(), medium: z.enum(['', 'Memory']).optional() })
          .optional(),
        secret: z.string().optional(),
        configMap: z.string().optional(),
        persistentVolumeClaim: z.string().optional(),
      }),
    )
    .optional(),
  serviceAccount: z.string().optional(),
  nodeSelector: z.record(z.string(), z.string()).optional(),
  tolerations: z
    .array(
      z.strictObject({
        key: z.string().optional(),
        operator: z.enum(['Exists', 'Equal']).optional(),
        value: z.string().optional(),
        effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
        tolerationSeconds: z.number().int().optional(),
      }),
    )
    .optional(),
  terminationGracePeriodSeconds: z.number().int().min(0).max(3600).optional(),
  /** Extra labels and annotations on the pods (Ferry's own ferry.dev/* and app.kubernetes.io/* win). */
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type WorkloadConfig = z.infer<typeof workloadSchema>;

/** Where an environment's workload lives: patterns with {app}, {env} and {region}. */
export const placementSchema = z.strictObject({
  namespace: z.string().optional(),
  deployment: z.string().optional(),
  workload: workloadSchema.optional(),
});
/**
 * How Ferry reaches a remote repository: a token for https:// (basic auth,
 * `username` + the token), a deploy key for ssh. Secrets are never in the
 * config: it names the variable or file that holds them.
 */
export const gitAccessSchema = z
  .strictObject({
    /** HTTPS user name sent with the token. Default "git". */
    username: z.string().min(1).optional(),
    /** Environment variable of the worker that holds the token. */
    tokenEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'the name of an environment variable, such as PAYMENTS_GIT_TOKEN')
      .optional(),
    /** File that holds the token (one line). */
    tokenFile: z.string().min(1).optional(),
    /** CA bundle (PEM) that signed the server's TLS certificate. */
    caFile: z.string().min(1).optional(),
    /** The deploy key: a private key file without passphrase, mode 0600. */
    sshKeyFile: z.string().min(1).optional(),
    /** known_hosts file holding the server's host key (checked strictly). */
    knownHostsFile: z.string().min(1).optional(),
    /** How long one fetch may take. Default 2m. */
    timeout: durationSchema.optional(),
  })
  .refine((g) => !(g.tokenEnv && g.tokenFile), {
    message: 'set either tokenEnv or tokenFile, not both',
    path: ['tokenFile'],
  });
export type GitAccessConfig = z.infer<typeof gitAccessSchema>;

/** A repository: a path, an https:// or ssh:// URL, or scp-like user@host:path — never with a password in it. */
export const repoSchema = z
  .string()
  .min(1)
  .refine((repo) => !/^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:[^/@\s]*@/i.test(repo), {
    message:
      'the address holds a password; name the variable or file that holds the token in git.tokenEnv or git.tokenFile',
  });

/** A Matrix user id: @localpart:server. */
export const matrixUserIdSchema = z
  .string()
  .regex(/^@[a-z0-9._=/+-]+:[A-Za-z0-9.-]+(:\d{1,5})?$/, 'a Matrix user id such as @alice:example.org');

/** A Matrix room: its id (!abc:server) or an alias (#releases:server). */
export const matrixRoomSchema = z
  .string()
  .regex(/^[!#][^:\s]+:[A-Za-z0-9.-]+(:\d{1,5})?$/, 'a Matrix room id (!id:server) or alias (#name:server)');

/**
 * A person's chat identities: one Slack user id (the first form, unchanged),
 * or one id per platform. Inside Ferry a person acts under one id (see
 * src/domain/people.ts), whichever platform they type in.
 */
export const personSchema = z.union([
  z.string().min(1),
  z
    .strictObject({ slack: z.string().min(1).optional(), matrix: matrixUserIdSchema.optional() })
    .refine((p) => p.slack !== undefined || p.matrix !== undefined, {
      message: 'name at least one chat identity: slack or matrix',
    }),
]);

const appObjectSchema = z.strictObject({
  description: z.string().optional(),
  repo: repoSchema,
  /** Credentials for `repo`; replaces the `gitHosts` entry of its host as a whole. */
  git: gitAccessSchema.optional(),
  dockerfile: z.string().default('Dockerfile'),
  stack: nameSchema,
  owners: z.array(nameSchema).default([]),
  /**
   * The app's Slack channels. Optional: an app served only on Matrix names
   * `rooms` instead. Which platforms a Ferry runs on is not in the config (it
   * is `ferry start --chat …`), so the config only asks for a place on one of
   * them (below); at start, `appsWithoutPlace` refuses an app with no place
   * on the platforms that Ferry serves.
   */
  channels: z.strictObject({ releases: z.string(), alerts: z.string() }).optional(),
  /** The app's Matrix rooms, when Ferry also (or only) serves Matrix. */
  rooms: z.strictObject({ releases: matrixRoomSchema, alerts: matrixRoomSchema }).optional(),
  defaultEnvironment: nameSchema,
  /** The namespace pattern ({app}, {env}, {region}); default `workloads.namespace`. */
  namespace: z.string().optional(),
  /** The Deployment name pattern; default `workloads.deployment`. Environments never share one. */
  deployment: z.string().optional(),
  container: z.string().optional(),
  logFiles: nameMap(nameSchema, z.string()).prefault({}),
  /** The pod spec of every environment... */
  workload: workloadSchema.optional(),
  /** ...and what one environment changes: its placement and workload overrides. */
  environments: nameMap(nameSchema, placementSchema).optional(),
});
// An app with neither has nowhere for its cards and alerts on any platform.
export const appSchema = appObjectSchema.refine(
  (app) => app.channels !== undefined || app.rooms !== undefined,
  {
    message: 'name where the app posts: Slack channels (channels:) or Matrix rooms (rooms:), or both',
    path: ['channels'],
  },
);
export type AppConfig = z.infer<typeof appSchema>;

/** The chat platforms a Ferry serves, and what an app needs on each to post there. */
export type ChatPlatformName = 'slack' | 'matrix';

/**
 * Apps with no place to post on any of `platforms`: Slack needs `channels`,
 * Matrix `rooms`. An app that has a place on one of them is served there (a
 * Matrix-only app in a Slack-and-Matrix Ferry has its cards on Matrix alone).
 */
export function appsWithoutPlace(config: FerryConfig, platforms: readonly ChatPlatformName[]): string[] {
  return Object.entries(config.apps)
    .filter(
      ([, app]) =>
        !platforms.some((p) => (p === 'slack' ? app.channels !== undefined : app.rooms !== undefined)),
    )
    .map(([name]) => name);
}

export const stackSchema = z.strictObject({
  image: z.string(),
  logFiles: nameMap(nameSchema, z.string()).prefault({}),
});

// Approving is not a rule action: who approves a release is the plan's
// approval group (set per environment or by a factor), so it is decided where
// the plan is explained.
export const actionSchema = z.enum([
  'request',
  'pause',
  'resume',
  'abort',
  'rollback',
  'logs',
  'sync',
  'silence',
  'adopt',
]);
export type Action = z.infer<typeof actionSchema>;

export const ruleSchema = z.strictObject({
  groups: z.array(nameSchema).min(1),
  actions: z.array(actionSchema).min(1),
  apps: z.array(z.string()).default(['*']),
  environments: z.array(z.string()).default(['*']),
});

export const syncRuleSchema = z.strictObject({
  apps: z.array(z.string()).default(['*']),
  environments: z.array(z.string()).default(['*']),
  /** Glob on the tag, e.g. "v*-prod". */
  tags: z.string().default('*'),
  regions: z.array(nameSchema).min(1),
});

/** A team's alert destinations: its Slack channel, and its Matrix room when Ferry serves Matrix (one at least, as for apps). */
export const teamSchema = z
  .strictObject({
    alerts: z.string().min(1).optional(),
    alertsRoom: matrixRoomSchema.optional(),
  })
  .refine((t) => t.alerts !== undefined || t.alertsRoom !== undefined, {
    message: "name the team's alert place: a Slack channel (alerts:) or a Matrix room (alertsRoom:)",
    path: ['alerts'],
  });

export const alertRouteSchema = z.strictObject({
  /** Environment names, or `*`; default every environment. */
  environments: z.array(z.string()).default(['*']),
  /** App names, or `*`; default every app. */
  apps: z.array(z.string()).default(['*']),
  to: z.enum(['app', 'team']),
});
export type AlertRoute = z.infer<typeof alertRouteSchema>;

export const configSchema = z.strictObject({
  primaryRegistry: registrySchema,
  regions: nameMap(nameSchema, regionSchema),
  stacks: nameMap(nameSchema, stackSchema),
  environments: nameMap(nameSchema, environmentSchema),
  apps: nameMap(nameSchema, appSchema),
  factors: nameMap(nameSchema, factorSchema).prefault({}),
  /** Chat user ids by person name: a Slack id, or `{ slack, matrix }`. */
  people: nameMap(nameSchema, personSchema),
  groups: nameMap(nameSchema, z.array(nameSchema)),
  rules: z.array(ruleSchema).min(1),
  sync: z.array(syncRuleSchema).default([]),
  /** Default placement of every app's workload. `{env}` keeps environments apart. */
  workloads: z
    .strictObject({
      namespace: z.string().default('{app}'),
      deployment: z.string().default('{app}-{env}'),
    })
    .default({ namespace: '{app}', deployment: '{app}-{env}' }),
  /** Credentials per repository host ("github.com", "git.internal:8443"), for apps without their own `git`. */
  gitHosts: z
    .record(
      z.string().regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, 'a host name, with a port if not the default'),
      gitAccessSchema,
    )
    .default({}),
  /**
   * While a release waits (for approval, or in line behind another), Ferry
   * builds its image, syncs it and has the nodes that will run it pull it, so
   * the rollout starts on warm nodes. Nothing in the cluster but the pull pods
   * changes before approval. `nodesAtOnce` limits how many nodes pull at once
   * per region.
   */
  prePull: z
    .strictObject({
      whileWaiting: z.boolean().default(true),
      nodesAtOnce: z.number().int().min(1).default(2),
      /**
       * Caps the bytes a node's pre-pull takes. Kubernetes has no per-pull
       * rate (kubelet's `registryPullQPS` and `maxParallelImagePulls` count
       * pulls, not bytes), so the pull pods pull through the node agent's
       * relay on the node's loopback, `127.0.0.1:<relayPort>`, which reads
       * from the region registry and hands the bytes on at most at
       * `share` × `nodeBandwidthMbps`. containerd stores layers by digest,
       * so the rollout's own pull of the region registry's name finds them
       * there. Absent: the pull pods pull straight from the region
       * registry, unthrottled. It needs the node agent on every node
       * (deploy/agent) and `serializeImagePulls: false` in the kubelet
       * config, or a throttled pull holds up every other pull on the node.
       */
      throttle: z
        .strictObject({
          /** What one node's network carries, in megabits per second (10 GbE: 10000). */
          nodeBandwidthMbps: z.number().positive(),
          /** The share of it a node's pre-pulls may take together, over 0 and at most 1. */
          share: z.number().positive().max(1),
          /** The relay's port on each node's loopback. */
          relayPort: z.number().int().min(1).max(65535).default(5055),
        })
        .optional(),
    })
    .default({ whileWaiting: true, nodesAtOnce: 2 }),
  build: z
    .strictObject({
      /** Buildah storage (the layer cache), build work dirs and logs. */
      cacheDir: z.string().default(BUILD_DEFAULTS.cacheDir),
      /** Package bundles the dependency-injection tail can install: `<packageDir>/<name>/` laid out like a root fs. */
      packageDir: z.string().default(BUILD_DEFAULTS.packageDir),
      /** buildah storage; "auto": overlay where the kernel and file system allow it, else vfs (the reason in the build log). */
      storageDriver: z.enum(['auto', 'vfs', 'overlay']).default('auto'),
      isolation: z.enum(['chroot', 'oci']).default('chroot'),
    })
    .default(BUILD_DEFAULTS),
  limits: z
    .strictObject({
      parallelBuilds: z.number().int().min(1).default(2),
      logLines: z.number().int().min(1).default(200),
      logBytes: z.number().int().min(1024).default(5_000_000),
      /** Releases of one `/release rebuild stack` in flight at once; the rest wait their turn. */
      parallelRebuilds: z.number().int().min(1).default(5),
    })
    .default({ parallelBuilds: 2, logLines: 200, logBytes: 5_000_000, parallelRebuilds: 5 }),
  redaction: z.array(z.strictObject({ name: z.string(), pattern: z.string() })).default([]),
  /** Where the analysis gates read metrics (Prometheus' HTTP API). */
  metrics: z
    .strictObject({
      prometheus: z.url(),
      /** How long one query may take before the measurement counts as missing. */
      timeout: durationSchema.default('5s'),
    })
    .optional(),
  /**
   * Teams by group name (an app's `owners` are groups): where a team's alerts go. The owner team of
   * an app is the first of its owners that has an entry here.
   */
  teams: nameMap(nameSchema, teamSchema).prefault({}),
  alerts: z
    .strictObject({
      dedupeWindow: durationSchema.default('15m'),
      silenceFor: durationSchema.default('1h'),
      /**
       * Where an alert goes, by the environment (and optionally the app): the first route that
       * matches decides. `to: app` is the app's alerts channel, `to: team` the owner team's (the
       * app's, when the team has none). No route matches (or none is set): the app's channel.
       */
      routes: z.array(alertRouteSchema).default([]),
      /**
       * The PromQL of a container's memory in use, drawn in OOM alerts (with `metrics.prometheus`);
       * {namespace}, {pod} and {container} are filled in.
       */
      memoryQuery: z
        .string()
        .default('max(process_resident_memory_bytes{namespace="{namespace}",pod="{pod}"})'),
      /** How far back the memory chart of an OOM alert reaches. */
      memoryWindow: durationSchema.default('15m'),
    })
    .prefault({}),
  /** Ferry's own operations: a config change that is refused (with its problems) is posted to `channel`. */
  ops: z.strictObject({ channel: z.string().min(1) }).optional(),
});
export type FerryConfig = z.infer<typeof configSchema>;
export type FerryConfigInput = z.input<typeof configSchema>;
