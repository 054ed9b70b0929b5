import t from 'tap';
import { fo } from '../../src/sched/fo.js';
import { ovf } from '../../src/sched/ovf.js';
import { MSG_NO_DEST } from '../../src/sched/common.js';
import { mkEnv, mkService, picks, setDests, setOverloaded } from './fixtures.js';

t.test('fo: the highest weight takes everything, first of equals, load ignored', async (t) => {
  const env = mkEnv();
  const svc = mkService(fo);
  const [, b, c] = setDests(svc, [['A', { weight: 5 }], ['B', { weight: 10, active: 1000 }], ['C', { weight: 10 }]]);
  t.same(picks(svc, env, 3), ['B', 'B', 'B']);
  setOverloaded(b!, true);
  t.same(picks(svc, env, 1), ['C']);
  setOverloaded(c!, true);
  t.same(picks(svc, env, 1), ['A']);
});

t.test('fo: weight 0 never wins', async (t) => {
  const env = mkEnv();
  const svc = mkService(fo);
  setDests(svc, [['Z', { weight: 0 }], ['Y', { weight: 0 }]]);
  t.same(picks(svc, env, 1), ['null']);
  t.same(env.errors, [MSG_NO_DEST]);
});

t.test('ovf: stay on the heaviest until active > weight, then overflow', async (t) => {
  const env = mkEnv();
  const svc = mkService(ovf);
  const [, b, c] = setDests(svc, [['A', { weight: 2 }], ['B', { weight: 5, active: 5 }], ['C', { weight: 5 }]]);
  // B: active 5 is not > 5, and B is the first of the two weight-5 dests
  t.same(picks(svc, env, 1), ['B']);
  b!.activeConns = 6;
  t.same(picks(svc, env, 1), ['C']);
  c!.activeConns = 6;
  t.same(picks(svc, env, 1), ['A']);
  // inactive connections do not count
  c!.activeConns = 0;
  c!.inactConns = 10000;
  t.same(picks(svc, env, 1), ['C']);
});

t.test('ovf: overloaded, weight 0 and full dests are all skipped', async (t) => {
  const env = mkEnv();
  const svc = mkService(ovf);
  setDests(svc, [['O', { weight: 9, overloaded: true }], ['Z', { weight: 0 }], ['F', { weight: 3, active: 4 }]]);
  t.same(picks(svc, env, 1), ['null']);
  t.same(env.errors, [MSG_NO_DEST]);
});
