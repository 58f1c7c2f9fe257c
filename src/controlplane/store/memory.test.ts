import { captureLogger, runStoreSuite } from '../../../test/support/store-suite.ts';
import { MemoryStore } from './memory.ts';

runStoreSuite('MemoryStore', async () => new MemoryStore({ logger: captureLogger() }));
