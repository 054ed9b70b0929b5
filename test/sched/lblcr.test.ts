import t from 'tap';
import { lblcr } from '../../src/sched/lblcr.js';
import type { LblcrTable } from '../../src/sched/lblcr.js';
import { MSG_NO_DEST } from '../../src/sched/common.js';
import type { Service } from '../../src/svc/types.js';
import type { TestEnv } from './fixtures.js';
import { delDest, initSched, label, mkEnv, mkService, pkt4, setDests, setOverloaded } from './fixtures.js';

const toX = pkt4('198.51.100.1', '10.9.0.1');

function tbl(svc: Service): LblcrTable {
  return svc.schedData as LblcrTable;
}

function members(svc: Service): string[] {
  const e = tbl(svc).find(toX.daddr);
  return e === -1 ? [] : tbl(svc).members(e).map(label);
}

function runUntil(svc: Service, env: TestEnv, until: number): void {
  while (env.t < until) {
    env.t++;
    lblcr.tick!(svc, env);
  }
}

t.test('the set grows when its best member is overloaded (lblc sense)', async (t) => {
  const env = mkEnv();
  const svc = mkService(lblcr);
  const [a, b, c] = setDests(svc, [['A'], ['B'], ['C', { active: 9 }]]);
  initSched(svc, env);
  t.equal(label(lblcr.schedule(svc, toX, env)), 'A');
  t.same(members(svc), ['A']);
  a!.activeConns = 2; // > weight 1, and B has 0*2 < 1
  t.equal(label(lblcr.schedule(svc, toX, env)), 'B', 'service-wide wlc');
  t.same(members(svc), ['B', 'A'], 'newest member first');
  t.same([a!.refcnt, b!.refcnt, c!.refcnt], [1, 1, 0]);
  // from now on the least loaded member of the set is used
  b!.activeConns = 1;
  a!.activeConns = 1;
  t.equal(label(lblcr.schedule(svc, toX, env)), 'B', 'tie in the set: first member');
  b!.activeConns = 2;
  t.equal(label(lblcr.schedule(svc, toX, env)), 'A');
});

t.test('set members that are unavailable, weight 0 or overloaded are not picked', async (t) => {
  const env = mkEnv();
  const svc = mkService(lblcr);
  const [a, b, c] = setDests(svc, [['A'], ['B'], ['C']]);
  initSched(svc, env);
  lblcr.schedule(svc, toX, env);
  a!.activeConns = 2;
  lblcr.schedule(svc, toX, env);
  t.same(members(svc), ['B', 'A']);
  a!.activeConns = 0;
  b!.weight = 0;
  t.equal(label(lblcr.schedule(svc, toX, env)), 'A');
  b!.weight = 1;
  setOverloaded(a!, true);
  t.equal(label(lblcr.schedule(svc, toX, env)), 'B');
  delDest(svc, b!, env);
  // A overloaded, B gone: no usable member -> wlc over the service -> C joins the set
  t.equal(label(lblcr.schedule(svc, toX, env)), 'C');
  t.same(members(svc), ['C', 'B', 'A']);
  t.equal(c!.refcnt, 1);
});

t.test('a set unchanged for longer than lblcr_expiration loses its most loaded member', async (t) => {
  const env = mkEnv({ now: 1000, lblcrExpiration: 100 });
  const svc = mkService(lblcr);
  const [a, b] = setDests(svc, [['A'], ['B']]);
  initSched(svc, env);
  lblcr.schedule(svc, toX, env);
  a!.activeConns = 2;
  env.t = 1010;
  lblcr.schedule(svc, toX, env); // B added at 1010: lastmod = 1010
  t.same(members(svc), ['B', 'A']);
  env.t = 1110;
  t.equal(label(lblcr.schedule(svc, toX, env)), 'B');
  t.same(members(svc), ['B', 'A'], 'not yet: now must be strictly after lastmod + 100');
  env.t = 1111;
  t.equal(label(lblcr.schedule(svc, toX, env)), 'B');
  t.same(members(svc), ['B'], 'A (512/1 vs 0/1) dropped');
  t.same([a!.refcnt, b!.refcnt], [0, 1]);
  env.t = 5000;
  lblcr.schedule(svc, toX, env);
  t.same(members(svc), ['B'], 'a single member is never dropped');
});

t.test('the pick is made before the shrink, so it can be the member just dropped', async (t) => {
  const env = mkEnv({ now: 1000, lblcrExpiration: 100 });
  const svc = mkService(lblcr);
  const [a, b] = setDests(svc, [['A'], ['B']]);
  initSched(svc, env);
  lblcr.schedule(svc, toX, env);
  a!.activeConns = 2;
  lblcr.schedule(svc, toX, env);
  t.same(members(svc), ['B', 'A']);
  delDest(svc, a!, env); // A: no longer AVAILABLE, so never the minimum; its overhead is still 512
  a!.activeConns = 0; // its connections expired: overhead 0, so B (256) is now the most loaded
  b!.activeConns = 1;
  env.t = 1200;
  t.equal(label(lblcr.schedule(svc, toX, env)), 'B');
  t.same(members(svc), ['A'], 'B was the set maximum and was erased after being picked');
});

t.test('failures: logged when an entry exists, debug-only when it does not', async (t) => {
  const env = mkEnv();
  const svc = mkService(lblcr);
  const [a] = setDests(svc, [['A']]);
  initSched(svc, env);
  a!.weight = 0;
  t.equal(lblcr.schedule(svc, toX, env), null);
  t.same(env.errors, [], 'no entry: the kernel only has a debug message');
  a!.weight = 1;
  lblcr.schedule(svc, toX, env);
  a!.weight = 0;
  t.equal(lblcr.schedule(svc, toX, env), null);
  t.same(env.errors, [MSG_NO_DEST]);
});

t.test('the full check frees whole entries idle beyond lblcr_expiration', async (t) => {
  const env = mkEnv({ now: 0, lblcrExpiration: 600 });
  const svc = mkService(lblcr);
  const [a, b] = setDests(svc, [['A'], ['B']]);
  initSched(svc, env);
  lblcr.schedule(svc, toX, env);
  a!.activeConns = 2;
  lblcr.schedule(svc, toX, env);
  a!.activeConns = 0;
  t.same([a!.refcnt, b!.refcnt], [1, 1]);
  runUntil(svc, env, 1799);
  t.equal(tbl(svc).live, 1);
  runUntil(svc, env, 1800); // 30th collector run
  t.equal(tbl(svc).live, 0);
  t.same([a!.refcnt, b!.refcnt], [0, 0]);
});
