// One leader-election candidate in its own process, for test/e2e/leader.test.ts:
// the real LeaderElector on a Lease of a real API server. It prints one JSON
// line whenever what it believes changes ({"role":"leader"|"standby"}), one
// after each round ({"observed":"<holder>"}) and, on
// SIGTERM, stops the way `ferry watch` does (stop leading, release the Lease).
//
//   node test/support/leader-child.ts <context> <namespace> <lease> <identity>
import { KubeConfig } from '@kubernetes/client-node';
import { logger } from '../../src/logging.ts';
import { LeaderElector } from '../../src/watch/leader.ts';

const [context, namespace, name, identity] = process.argv.slice(2);
if (!context || !namespace || !name || !identity) {
  console.error('usage: leader-child.ts <context> <namespace> <lease> <identity>');
  process.exit(2);
}
const kc = new KubeConfig();
kc.loadFromDefault();
kc.setCurrentContext(context);
const say = (role: string): void =>
  void process.stdout.write(`${JSON.stringify({ role, identity, at: Date.now() })}\n`);
const observed = (holder: string): void =>
  void process.stdout.write(`${JSON.stringify({ observed: holder, identity, at: Date.now() })}\n`);
const elector = new LeaderElector({
  kc,
  name,
  namespace,
  identity,
  log: logger(`leader-${identity}`),
  onStartedLeading: () => say('leader'),
  onStoppedLeading: () => say('standby'),
  onRound: observed,
}).start();
say('standby');
process.once('SIGTERM', () => {
  elector.stop().then(
    () => {
      say('stopped');
      process.exit(0);
    },
    () => process.exit(1),
  );
});
