#!/usr/bin/env node
// `npm test`: build, then run every tap test file. Under CI (CI=true) a skipped
// test is a failure: lab tests must really run there. Prints one closing line
// "tests: N passed, N failed, N skipped" (assertion counts from tap's summary).
import { spawnSync, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';

// Stale compiled tests from deleted sources must not run: start from a clean dist/test.
rmSync('dist/test', { recursive: true, force: true });
const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
if (build.status !== 0) {
  console.log('tests: 0 passed, 1 failed (TypeScript build failed)');
  process.exit(1);
}
const args = ['tap', ...process.argv.slice(2)];
if (args.length === 1) args.push('dist/test/**/*.test.js');
if (process.env.CI === 'true' || process.env.ULVS_FAIL_SKIP === '1') args.push('--fail-skip');
const child = spawn('npx', args, { stdio: ['ignore', 'pipe', 'inherit'] });
let tail = '';
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  tail = (tail + d.toString()).slice(-4000);
});
child.on('close', (code) => {
  const m = /# \{([^}]*)\}/.exec(tail);
  const counts = { total: 0, pass: 0, fail: 0, skip: 0, todo: 0 };
  if (m) for (const part of m[1].split(',')) {
    const [k, v] = part.split(':').map((s) => s.trim());
    if (k in counts) counts[k] = Number(v);
  }
  const failed = counts.fail + (code !== 0 && counts.fail === 0 ? 1 : 0);
  console.log(`tests: ${counts.pass} passed, ${failed} failed, ${counts.skip} skipped`);
  process.exit(code ?? 1);
});
