import t from 'tap';
import { lc } from '../../src/sched/lc.js';
import { wlc } from '../../src/sched/wlc.js';
import { sed } from '../../src/sched/sed.js';
import { nq } from '../../src/sched/nq.js';
import { MSG_NO_DEST } from '../../src/sched/common.js';
import type { Scheduler } from '../../src/sched/types.js';
import type { DestOpts } from './fixtures.js';
import { mkEnv, mkService, picks, setDests } from './fixtures.js';

/** One pick from a service whose list is exactly `specs` (index 0 = list head). */
function pick(sched: Scheduler, specs: [string, DestOpts?][]): string {
  const env = mkEnv();
  const svc = mkService(sched);
  setDests(svc, specs);
  return picks(svc, env, 1)[0]!;
}

t.test('lc: smallest active*256 + inactive, weight ignored, first wins ties', async (t) => {
  // A = 256, B = 300, C = 256
  t.equal(pick(lc, [['A', { active: 1 }], ['B', { inact: 300 }], ['C', { inact: 256 }]]), 'A');
  // B = 255 < 256
  t.equal(pick(lc, [['A', { active: 1 }], ['B', { inact: 255 }]]), 'B');
  // weight is not a factor: A(w1) 256 beats B(w100) 257
  t.equal(pick(lc, [['A', { weight: 1, active: 1 }], ['B', { weight: 100, inact: 257 }]]), 'A');
  // weight 0 and overloaded are skipped even when idle
  t.equal(pick(lc, [['Z', { weight: 0 }], ['O', { overloaded: true }], ['A', { active: 3 }]]), 'A');
  t.equal(pick(lc, [['Z', { weight: 0 }]]), 'null');
});

t.test('wlc: smallest overhead/weight by cross-multiplication', async (t) => {
  // A 256/1, B 512/3 = 170.7, C 356/2 = 178 -> B
  t.equal(pick(wlc, [['A', { weight: 1, active: 1 }], ['B', { weight: 3, active: 2 }], ['C', { weight: 2, active: 1, inact: 100 }]]), 'B');
  // equal ratios 256/1 and 512/2: the earlier dest stays
  t.equal(pick(wlc, [['A', { weight: 1, active: 1 }], ['B', { weight: 2, active: 2 }]]), 'A');
  t.equal(pick(wlc, [['B', { weight: 2, active: 2 }], ['A', { weight: 1, active: 1 }]]), 'B');
  // inactive connections count 1/256 of an active one: 1 active (256) vs 255 inactive
  t.equal(pick(wlc, [['A', { active: 1 }], ['B', { inact: 255 }]]), 'B');
  // a leading weight-0 or overloaded dest cannot be the first candidate
  t.equal(pick(wlc, [['Z', { weight: 0 }], ['O', { overloaded: true }], ['A', { active: 5 }], ['B', { active: 9 }]]), 'A');
  // a weight-0 dest later in the list never wins, even when idle (its product is 0)
  t.equal(pick(wlc, [['A', { active: 5 }], ['Z', { weight: 0 }]]), 'A');
  t.equal(pick(wlc, [['O', { overloaded: true }]]), 'null');
});

t.test('wlc: repeated picks follow the load', async (t) => {
  const env = mkEnv();
  const svc = mkService(wlc);
  const [a, b] = setDests(svc, [['A', { weight: 1 }], ['B', { weight: 2 }]]);
  const seq: string[] = [];
  for (let i = 0; i < 6; i++) {
    const d = wlc.schedule(svc, null as never, env)!;
    seq.push(d === a ? 'A' : d === b ? 'B' : '?');
    d.activeConns++;
  }
  // A 0/1 vs B 0/2 tie -> A; 256/1 vs 0/2 -> B; 256/1 vs 256/2 -> B; 256/1 vs 512/2 tie -> A;
  // 512/1 vs 512/2 -> B; 512/1 vs 768/2 -> B
  t.same(seq, ['A', 'B', 'B', 'A', 'B', 'B']);
});

t.test('sed: (active + 1) / weight, inactive ignored', async (t) => {
  // A (1+1)/1 = 2, B (2+1)/3 = 1 -> B
  t.equal(pick(sed, [['A', { weight: 1, active: 1 }], ['B', { weight: 3, active: 2 }]]), 'B');
  // A 1/1 vs B 3/3: tie -> A
  t.equal(pick(sed, [['A', { weight: 1 }], ['B', { weight: 3, active: 2 }]]), 'A');
  // inactive connections do not count (wlc would pick B here)
  t.equal(pick(sed, [['A', { inact: 1000 }], ['B', {}]]), 'A');
  t.equal(pick(wlc, [['A', { inact: 1000 }], ['B', {}]]), 'B');
  // the weight changes the choice where lc would not: idle A(w1) vs idle B(w5)
  t.equal(pick(sed, [['A', { weight: 1 }], ['B', { weight: 5 }]]), 'B');
  t.equal(pick(sed, [['Z', { weight: 0 }], ['O', { overloaded: true, weight: 9 }], ['A', { active: 7 }]]), 'A');
  t.equal(pick(sed, [['Z', { weight: 0 }]]), 'null');
});

t.test('nq: the first idle dest wins outright, else sed', async (t) => {
  // B is the first with no active connection, even though C is idle and heavier
  t.equal(pick(nq, [['A', { weight: 1, active: 3 }], ['B', { weight: 1 }], ['C', { weight: 10 }]]), 'B');
  // inactive connections do not make a dest busy
  t.equal(pick(nq, [['A', { weight: 1, active: 1 }], ['B', { weight: 1, inact: 50 }]]), 'B');
  // no idle dest: A (1+1)/1 = 2 vs B (3+1)/4 = 1 -> B
  t.equal(pick(nq, [['A', { weight: 1, active: 1 }], ['B', { weight: 4, active: 3 }]]), 'B');
  // tie (2/1 vs 4/2) -> first
  t.equal(pick(nq, [['A', { weight: 1, active: 1 }], ['B', { weight: 2, active: 3 }]]), 'A');
  // idle but overloaded or weight 0: skipped
  t.equal(pick(nq, [['O', { overloaded: true }], ['Z', { weight: 0 }], ['A', { active: 2 }]]), 'A');
  t.equal(pick(nq, []), 'null');
});

t.test('empty or unusable service reports "no destination available"', async (t) => {
  for (const s of [lc, wlc, sed, nq]) {
    const env = mkEnv();
    const svc = mkService(s);
    setDests(svc, [['O', { overloaded: true }], ['Z', { weight: 0 }]]);
    t.same(picks(svc, env, 1), ['null'], s.name);
    t.same(env.errors, [MSG_NO_DEST], `${s.name} message`);
  }
});
