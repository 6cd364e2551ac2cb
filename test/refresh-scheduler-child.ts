/**
 * A broker process running only the scheduler role, for test/refresh-scheduler.test.ts (spawned with
 * tsx; configuration from the environment). Prints "ready" once started; exits on SIGTERM.
 */
import { startBroker } from '../src/broker.js';
import { loadConfig } from '../src/shared/config.js';
import { createLogger } from '../src/shared/logger.js';

const config = loadConfig({ env: process.env });
const logger = createLogger({ level: config.logLevel });
const broker = await startBroker(config, logger, ['scheduler']);
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  broker.close().then(() => process.exit(0), () => process.exit(1));
});
