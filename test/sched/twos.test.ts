import t from 'tap';
import { randomBelow, twos } from '../../src/sched/twos.js';
import { MSG_NO_DEST } from '../../src/sched/common.js';
import { label, mkEnv, mkService, picks, setDests } from './fixtures.js';

/** A random32() value r with floor(ceil * r / 2^32) = k, far from any rejection. */
function drawFor(k: number, ceil: number): number {
  return Math.floor(((k + 0.5) * 0x100000000) / ceil);
}

t.test('randomBelow: high half of ceil * rand, rejecting low halves below 2^32 mod ceil', async (t) => {
  const env = mkEnv();
  env.script = [0xffffffff];
  t.equal(randomBelow(env, 7), 6, 'max draw maps to ceil - 1');
  env.script = [drawFor(3, 7)];
  t.equal(randomBelow(env, 7), 3);
  // rand = 0: low half 0 < 2^32 mod 7 = 4 -> rejected, the next draw is used
  env.randomCalls = 0;
  env.script = [0, drawFor(5, 7)];
  t.equal(randomBelow(env, 7), 5);
  t.equal(env.randomCalls, 2);
  // exact for large ceilings (64-bit product): 0xfffffffe * 0xffffffff >> 32 = 0xfffffffd
  env.script = [0xffffffff];
  t.equal(randomBelow(env, 0xfffffffe), 0xfffffffd);
});

t.test('two weighted draws, the less loaded (per weight) wins', async (t) => {
  const env = mkEnv();
  const svc = mkService(twos);
  // list A(1), B(2), C(3): total 6, draws in [0, 6]: 0,1 -> A; 2,3 -> B; 4,5,6 -> C
  const [a, , c] = setDests(svc, [['A', { weight: 1 }], ['B', { weight: 2 }], ['C', { weight: 3 }]]);
  const cases: [number, number, string][] = [
    [0, 0, 'A'],
    [1, 2, 'A'], // A and B both idle: choice2 (B) only wins when strictly better
    [2, 0, 'B'],
    [4, 6, 'C'],
  ];
  for (const [k1, k2, want] of cases) {
    env.script = [drawFor(k1, 7), drawFor(k2, 7)];
    t.equal(label(twos.schedule(svc, null as never, env)), want, `draws ${k1}, ${k2}`);
  }
  a!.activeConns = 1; // overhead 256 with weight 1
  env.script = [drawFor(0, 7), drawFor(4, 7)];
  // choice2 C (idle): 3 * 256 > 1 * 0 -> C
  t.equal(label(twos.schedule(svc, null as never, env)), 'C');
  c!.inactConns = 1000; // C: 3 * 256 = 768 > 1 * 1000? no -> A
  env.script = [drawFor(0, 7), drawFor(4, 7)];
  t.equal(label(twos.schedule(svc, null as never, env)), 'A');
});

t.test('overloaded and weight-0 dests take no part in the draw', async (t) => {
  const env = mkEnv();
  const svc = mkService(twos);
  setDests(svc, [['O', { weight: 5, overloaded: true }], ['Z', { weight: 0 }], ['A', { weight: 1 }], ['B', { weight: 1 }]]);
  // total 2, draws in [0, 2]: 0,1 -> A; 2 -> B
  env.script = [drawFor(2, 3), drawFor(2, 3)];
  t.same(picks(svc, env, 1), ['B']);
  env.script = [drawFor(0, 3), drawFor(1, 3)];
  t.same(picks(svc, env, 1), ['A']);
});

t.test('with equal load the first draw decides: weight+1 chances for the first dest out of total+1', async (t) => {
  const env = mkEnv({ seed: 99 });
  const svc = mkService(twos);
  setDests(svc, [['A', { weight: 1 }], ['B', { weight: 2 }], ['C', { weight: 3 }]]);
  const n = 70000;
  const count: Record<string, number> = { A: 0, B: 0, C: 0 };
  for (const p of picks(svc, env, n)) count[p]!++;
  // expected A 2/7, B 2/7, C 3/7
  t.ok(Math.abs(count.A! / n - 2 / 7) < 0.01, `A ${count.A}`);
  t.ok(Math.abs(count.B! / n - 2 / 7) < 0.01, `B ${count.B}`);
  t.ok(Math.abs(count.C! / n - 3 / 7) < 0.01, `C ${count.C}`);
});

t.test('no eligible dest', async (t) => {
  const env = mkEnv();
  const svc = mkService(twos);
  t.same(picks(svc, env, 1), ['null']);
  setDests(svc, [['Z', { weight: 0 }], ['O', { overloaded: true }]]);
  t.same(picks(svc, env, 1), ['null']);
  t.same(env.errors, [MSG_NO_DEST, MSG_NO_DEST]);
  t.equal(env.randomCalls, 0, 'no random number drawn');
});
