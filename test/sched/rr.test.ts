import t from 'tap';
import { rr } from '../../src/sched/rr.js';
import { MSG_NO_DEST } from '../../src/sched/common.js';
import { addDest, addDests, delDest, initSched, mkDest, mkEnv, mkService, picks, setOverloaded } from './fixtures.js';

function svcABC() {
  const env = mkEnv();
  const svc = mkService(rr);
  initSched(svc, env);
  const [a, b, c] = addDests(svc, env, [['A'], ['B'], ['C']]);
  return { env, svc, a: a!, b: b!, c: c! };
}

t.test('dests added A, B, C are picked newest first: C, B, A, C, ...', async (t) => {
  const { env, svc } = svcABC();
  t.same(picks(svc, env, 7), ['C', 'B', 'A', 'C', 'B', 'A', 'C']);
});

t.test('overloaded and weight-0 dests are skipped', async (t) => {
  const { env, svc, a, b } = svcABC();
  setOverloaded(b, true);
  t.same(picks(svc, env, 4), ['C', 'A', 'C', 'A']);
  setOverloaded(b, false);
  a.weight = 0;
  // the cursor is on A: the walk after it is empty, so it wraps to C
  t.same(picks(svc, env, 4), ['C', 'B', 'C', 'B']);
});

t.test('the second pass reaches the cursor dest itself', async (t) => {
  const { env, svc, a, b } = svcABC();
  t.same(picks(svc, env, 1), ['C']);
  setOverloaded(b, true);
  setOverloaded(a, true);
  // walk after C finds nothing, wraps to the head and stops at C inclusive
  t.same(picks(svc, env, 2), ['C', 'C']);
});

t.test('no usable dest: null, "no destination available", cursor unchanged', async (t) => {
  const { env, svc, a, b, c } = svcABC();
  t.same(picks(svc, env, 1), ['C']);
  for (const d of [a, b, c]) d.weight = 0;
  t.same(picks(svc, env, 1), ['null']);
  t.same(env.errors, [MSG_NO_DEST]);
  for (const d of [a, b, c]) d.weight = 1;
  t.same(picks(svc, env, 1), ['B'], 'continues after C');
});

t.test('empty service', async (t) => {
  const env = mkEnv();
  const svc = mkService(rr);
  initSched(svc, env);
  t.equal(rr.schedule(svc, null as never, env), null);
});

t.test("deleting the cursor's dest: the next pick is the dest that followed it", async (t) => {
  const { env, svc, b } = svcABC();
  t.same(picks(svc, env, 2), ['C', 'B']);
  delDest(svc, b, env);
  t.same(picks(svc, env, 3), ['A', 'C', 'A']);
});

t.test('deleting the first dest while the cursor is on it restarts from the head', async (t) => {
  const { env, svc, c } = svcABC();
  t.same(picks(svc, env, 1), ['C']);
  delDest(svc, c, env);
  t.same(picks(svc, env, 3), ['B', 'A', 'B']);
});

t.test('deleting a dest before the cursor keeps the cursor on its dest', async (t) => {
  const { env, svc, c } = svcABC();
  t.same(picks(svc, env, 2), ['C', 'B']);
  delDest(svc, c, env);
  t.same(picks(svc, env, 3), ['A', 'B', 'A']);
});

t.test('deleting a dest after the cursor', async (t) => {
  const { env, svc, a } = svcABC();
  t.same(picks(svc, env, 1), ['C']);
  delDest(svc, a, env);
  t.same(picks(svc, env, 3), ['B', 'C', 'B']);
});

t.test('a dest added mid-cycle goes to the list head and is reached after the wrap', async (t) => {
  const { env, svc } = svcABC();
  t.same(picks(svc, env, 1), ['C']);
  addDest(svc, mkDest(svc, 'D'), env);
  t.same(picks(svc, env, 5), ['B', 'A', 'D', 'C', 'B']);
});
