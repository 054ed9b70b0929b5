import t from 'tap';
import { wrr } from '../../src/sched/wrr.js';
import { MSG_ALL_OVERLOADED, MSG_NO_DEST } from '../../src/sched/common.js';
import { addDests, delDest, editDest, initSched, mkEnv, mkService, picks, setDests, setOverloaded } from './fixtures.js';

const CYCLE_432 = ['A', 'A', 'B', 'A', 'B', 'C', 'A', 'B', 'C'];

t.test('fresh init with list A(4), B(3), C(2): the interleaved cycle', async (t) => {
  const env = mkEnv();
  const svc = mkService(wrr);
  setDests(svc, [['A', { weight: 4 }], ['B', { weight: 3 }], ['C', { weight: 2 }]]);
  initSched(svc, env);
  t.same(picks(svc, env, 18), [...CYCLE_432, ...CYCLE_432]);
});

t.test('the same dests added one by one (C, B, A) start with a weight-1 pass', async (t) => {
  // After `-a C(2)`: di=2, mw=1, cw 0 -> 1. `-a B(3)` and `-a A(4)` keep cw = 1 (only clamped).
  // So the first pass takes every dest, then cw wraps to mw = 4 and the usual cycle follows.
  const env = mkEnv();
  const svc = mkService(wrr);
  initSched(svc, env);
  addDests(svc, env, [['C', { weight: 2 }], ['B', { weight: 3 }], ['A', { weight: 4 }]]);
  t.same(svc.dests.map((d) => d.weight), [4, 3, 2], 'same list as the fresh case');
  t.same(picks(svc, env, 12), ['A', 'B', 'C', ...CYCLE_432]);
});

t.test('weights with a common divisor: A(4), B(2) -> A, A, B', async (t) => {
  // di = 2, mw = 4 - 1 = 3: pass cw=3 takes A; pass cw=1 takes A and B.
  const env = mkEnv();
  const svc = mkService(wrr);
  setDests(svc, [['A', { weight: 4 }], ['B', { weight: 2 }]]);
  initSched(svc, env);
  t.same(picks(svc, env, 6), ['A', 'A', 'B', 'A', 'A', 'B']);
});

t.test('an edit restarts from the list head but keeps the current weight', async (t) => {
  const env = mkEnv();
  const svc = mkService(wrr);
  const [a] = setDests(svc, [['A', { weight: 4 }], ['B', { weight: 3 }], ['C', { weight: 2 }]]);
  initSched(svc, env);
  t.same(picks(svc, env, 2), ['A', 'A']); // now cw = 3, position A
  editDest(svc, a!, 4, env); // e.g. a threshold change: upd_dest runs
  // without the edit the next pick would be B (cw=3 after A); now the cw=3 pass restarts at A
  t.same(picks(svc, env, 9), ['A', 'B', 'A', 'B', 'C', 'A', 'B', 'C', 'A']);
});

t.test('when the gcd changes, cw is re-aligned to (cw / di) * di + 1', async (t) => {
  const env = mkEnv();
  const svc = mkService(wrr);
  const [, b] = setDests(svc, [['A', { weight: 6 }], ['B', { weight: 4 }]]);
  initSched(svc, env); // di=2, mw=5, cw=5
  t.same(picks(svc, env, 2), ['A', 'A']); // the cw=5 pass takes A, the cw=3 pass starts with A
  editDest(svc, b!, 3, env); // di=3, mw=4, cw = (3/3)*3+1 = 4
  // cw=4 pass: A only; cw=1 pass: A, B. (Keeping cw=3 would have given A, B first.)
  t.same(picks(svc, env, 6), ['A', 'A', 'B', 'A', 'A', 'B']);
});

t.test('deleting a dest resets the position to the head', async (t) => {
  const env = mkEnv();
  const svc = mkService(wrr);
  const [, b] = setDests(svc, [['A', { weight: 1 }], ['B', { weight: 1 }], ['C', { weight: 1 }]]);
  initSched(svc, env);
  t.same(picks(svc, env, 2), ['A', 'B']);
  delDest(svc, b!, env);
  t.same(picks(svc, env, 3), ['A', 'C', 'A']);
});

t.test('overloaded dests are passed over; the last pass stops at the starting dest', async (t) => {
  const env = mkEnv();
  const svc = mkService(wrr);
  const [a, b, c] = setDests(svc, [['A'], ['B'], ['C']]);
  initSched(svc, env);
  t.same(picks(svc, env, 2), ['A', 'B']);
  setOverloaded(a!, true);
  setOverloaded(c!, true);
  t.same(picks(svc, env, 2), ['B', 'B']);
  setOverloaded(b!, true);
  t.same(picks(svc, env, 1), ['null']);
  t.same(env.errors, [MSG_ALL_OVERLOADED]);
  setOverloaded(c!, false);
  t.same(picks(svc, env, 2), ['C', 'C']);
});

t.test('all overloaded from the head', async (t) => {
  const env = mkEnv();
  const svc = mkService(wrr);
  const ds = setDests(svc, [['A', { weight: 2 }], ['B', { weight: 1 }]]);
  initSched(svc, env);
  for (const d of ds) setOverloaded(d, true);
  t.same(picks(svc, env, 1), ['null']);
  t.same(env.errors, [MSG_ALL_OVERLOADED]);
});

t.test('all weights 0, or no dests: "no destination available"', async (t) => {
  const env = mkEnv();
  const svc = mkService(wrr);
  initSched(svc, env);
  t.same(picks(svc, env, 1), ['null']);
  addDests(svc, env, [['A', { weight: 0 }], ['B', { weight: 0 }]]);
  t.same(picks(svc, env, 1), ['null']);
  t.same(env.errors, [MSG_NO_DEST, MSG_NO_DEST]);
});

t.test('a weight-0 dest is never picked', async (t) => {
  const env = mkEnv();
  const svc = mkService(wrr);
  setDests(svc, [['A', { weight: 0 }], ['B', { weight: 2 }], ['C', { weight: 1 }]]);
  initSched(svc, env);
  t.same(picks(svc, env, 6), ['B', 'B', 'C', 'B', 'B', 'C']);
});
