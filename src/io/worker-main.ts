/**
 * Entry point of the data-plane worker thread: serves the data plane
 * (worker-core.ts) on the thread's parent port. See io/dataplane.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { serveDataPlane } from './worker-core.js';
import type { WorkerInit } from './worker-protocol.js';

if (parentPort === null) throw new Error('worker-main runs as a worker thread only');
if (!serveDataPlane(parentPort, workerData as WorkerInit)) process.exit(1);
