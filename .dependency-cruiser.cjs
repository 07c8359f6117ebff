// The import rules of Ferry's layout (README, "Layout"), checked by scripts/test.sh after tsc:
//   npx depcruise --config .dependency-cruiser.cjs src commands jobs dev
// Data goes one way: chat adapter → command → domain → ports ← adapters. A rule that fails names the
// import that breaks it; fix the import, not the rule.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'A cycle makes two modules one: neither can be understood, tested or replaced alone.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'domain-is-self-contained',
      severity: 'error',
      comment:
        'src/domain is the release logic: it imports nothing else of Ferry (no config loading, stores, queues, chat or clusters). Node built-ins and pure npm libraries are allowed; see the next rule.',
      from: { path: '^src/domain/' },
      to: { pathNot: ['^src/domain/'], dependencyTypesNot: ['core', 'npm', 'npm-dev'] },
    },
    {
      name: 'domain-has-no-io-packages',
      severity: 'error',
      comment:
        'The domain imports no Slack, Redis, Kubernetes, HTTP or logging package — not even their types.',
      from: { path: '^src/domain/' },
      to: {
        path: 'node_modules/(@slack|ioredis|bullmq|@kubernetes|express|matrix-js-sdk|ws|pino|prom-client|@bull-board)(/|$)',
      },
    },
    {
      name: 'commands-use-domain-and-ports',
      severity: 'error',
      comment:
        'A command (grammar, handler, help, permission) calls the domain and the ports only; adapters, stores and clusters sit behind the ports.',
      from: { path: '^commands/' },
      to: {
        path: '^(src|jobs|dev|test)/',
        // src/chat/port.ts is the chat port: the chat-neutral requests commands/requests.ts answers.
        pathNot: ['^src/domain/', '^src/ports\\.ts$', '^src/ports/', '^src/chat/port\\.ts$'],
      },
    },
    {
      name: 'chat-adapters-are-independent',
      severity: 'error',
      comment:
        'Each chat platform is one folder under src/chat/; a second platform must not reach into the first.',
      from: { path: '^src/chat/([^/]+)/' },
      to: { path: '^src/chat/[^/]+/', pathNot: '^src/chat/$1/' },
    },
    {
      name: 'product-has-no-test-code',
      severity: 'error',
      comment:
        'Test doubles and harnesses live in test/; the Slack emulator is a development tool in dev/. Only the dev entry point `ferry start` (src/cli/start.ts) starts the emulator.',
      from: { path: '^(src|commands|jobs)/', pathNot: '^src/cli/start\\.ts$' },
      to: { path: '^(test|dev)/' },
    },
    {
      name: 'emulator-stands-alone',
      severity: 'error',
      comment: 'The Slack emulator plays Slack: it shares no code with the bot it is testing.',
      from: { path: '^dev/slack-emulator/' },
      to: { path: '^(src|commands|jobs|test)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.json'] },
  },
};
