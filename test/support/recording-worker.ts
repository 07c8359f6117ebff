// `ferry worker` with the recording runners instead of the real ones, in a process of its own, so
// crash and health tests can kill it or probe it like the real worker. The worker is Ferry's own
// (src/cli/worker.ts runWorker); only the runners are the test's.
//
//   node test/support/recording-worker.ts --config FILE
// Env: what `ferry worker` reads (REDIS_URL, FERRY_PREFIX, FERRY_LOCK_MS, …) plus, for the runners,
// RECORDING_STEP_MS (default 300), RECORDING_REPLICAS (default 4), RECORDING_FAIL_GATE (JSON
// {region: batch}) and RECORDING_REDIS_URL (record effects in another Redis, the way a real cluster
// keeps its state apart from Ferry's).
import { parseArgs } from 'node:util';
import { runWorker } from '../../src/cli/worker.ts';
import { defaultConfigPath } from '../../src/config/load.ts';
import { storeConnection } from '../../src/queue/connection.ts';
import { RecordingRunners } from './recording-runners.ts';

// The config as `ferry worker` finds it: --config, else $FERRY_CONFIG, else ferry.yaml (bench/ack sets FERRY_CONFIG).
const { values } = parseArgs({ options: { config: { type: 'string' } } });
const env = process.env;
const code = await runWorker(
  { configPath: values.config ?? defaultConfigPath(), args: [], noInfra: true },
  { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) },
  {
    runnersUseKube: false,
    runners: async (rt) =>
      new RecordingRunners(
        env.RECORDING_REDIS_URL ? storeConnection(env.RECORDING_REDIS_URL) : rt.store,
        {
          stepMs: Number(env.RECORDING_STEP_MS ?? 300),
          replicas: Number(env.RECORDING_REPLICAS ?? 4),
          ...(env.RECORDING_FAIL_GATE ? { failGate: JSON.parse(env.RECORDING_FAIL_GATE) } : {}),
        },
        rt.prefix ?? 'ferry',
      ),
  },
);
process.exitCode = code;
