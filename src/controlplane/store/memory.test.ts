import { MemoryStore } from './memory.ts';
import { captureLogger, runStoreSuite } from './store-suite.ts';

runStoreSuite('MemoryStore', async () => new MemoryStore({ logger: captureLogger() }));
