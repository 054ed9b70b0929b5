import t from 'tap';
import { lblc } from '../../src/sched/lblc.js';
import type { LblcTable } from '../../src/sched/lblc.js';
import { hash32 } from '../../src/sched/hash.js';
import { MSG_NO_DEST } from '../../src/sched/common.js';
import { newSchedPacket } from '../../src/sched/types.js';
import type { Service } from '../../src/svc/types.js';
import type { TestEnv } from './fixtures.js';
import { addDest, addr4, delDest, initSched, label, mkEnv, mkService, pkt4, setDests, setOverloaded } from './fixtures.js';

const toX = pkt4('198.51.100.1', '10.9.0.1');
const toY = pkt4('198.51.100.1', '10.9.0.2');

function tbl(svc: Service): LblcTable {
  return svc.schedData as LblcTable;
}

/** Tick once per second up to and including time `until`. */
function runUntil(svc: Service, env: TestEnv, until: number): void {
  while (env.t < until) {
    env.t++;
    lblc.tick!(svc, env);
  }
}

t.test('an entry keeps sending an address to the same dest until it is overloaded (lblc sense)', async (t) => {
  const env = mkEnv();
  const svc = mkService(lblc);
  const [a, b] = setDests(svc, [['A'], ['B']]);
  initSched(svc, env);
  t.equal(label(lblc.schedule(svc, toX, env)), 'A', 'wlc tie -> first dest');
  t.equal(a!.refcnt, 1, 'the entry holds a reference');
  a!.activeConns = 2;
  b!.activeConns = 1;
  // wlc would now pick B, but A is only "overloaded" if some dest has active*2 < weight: none has
  t.equal(label(lblc.schedule(svc, toX, env)), 'A');
  // another address has no entry: plain wlc
  t.equal(label(lblc.schedule(svc, toY, env)), 'B');
  b!.activeConns = 0; // now B has 0*2 < 1, and A (2 > 1) counts as overloaded
  t.equal(label(lblc.schedule(svc, toX, env)), 'B');
  t.same([a!.refcnt, b!.refcnt], [0, 2], 'entry X moved from A to B');
  t.equal(label(lblc.schedule(svc, toX, env)), 'B');
});

t.test('an entry whose dest was removed or quiesced is rescheduled', async (t) => {
  const env = mkEnv();
  const svc = mkService(lblc);
  const [a, b] = setDests(svc, [['A'], ['B']]);
  initSched(svc, env);
  t.equal(label(lblc.schedule(svc, toX, env)), 'A');
  delDest(svc, a!, env);
  t.equal(a!.refcnt, 1, 'a removed dest stays referenced (kept in the trash)');
  t.equal(label(lblc.schedule(svc, toX, env)), 'B');
  t.equal(a!.refcnt, 0);
  b!.weight = 0;
  addDest(svc, a!, env); // re-added (from the trash)
  t.equal(label(lblc.schedule(svc, toX, env)), 'A', 'weight 0 entry dest -> rescheduled');
});

t.test('a dest re-added from the trash is used again by its old entries', async (t) => {
  const env = mkEnv();
  const svc = mkService(lblc);
  const [a] = setDests(svc, [['A'], ['B']]);
  initSched(svc, env);
  t.equal(label(lblc.schedule(svc, toX, env)), 'A');
  delDest(svc, a!, env);
  addDest(svc, a!, env);
  a!.activeConns = 1; // wlc alone would now pick the idle B; 1 active is not > weight 1
  t.equal(label(lblc.schedule(svc, toX, env)), 'A', 'entry valid again');
});

t.test('a cached dest is reused even with the OVERLOAD (upper threshold) flag set', async (t) => {
  // ip_vs_lblc_schedule() checks AVAILABLE, weight > 0 and its own is_overloaded() only
  const env = mkEnv();
  const svc = mkService(lblc);
  const [a, b] = setDests(svc, [['A'], ['B']]);
  initSched(svc, env);
  t.equal(label(lblc.schedule(svc, toX, env)), 'A');
  setOverloaded(a!, true);
  t.equal(label(lblc.schedule(svc, toX, env)), 'A', 'cached address');
  t.equal(label(lblc.schedule(svc, toY, env)), 'B', 'new address: wlc skips the overloaded dest');
  setOverloaded(b!, true);
  t.equal(lblc.schedule(svc, pkt4('198.51.100.1', '10.9.0.3'), env), null);
});

t.test('no usable dest', async (t) => {
  const env = mkEnv();
  const svc = mkService(lblc);
  setDests(svc, [['O', { overloaded: true }], ['Z', { weight: 0 }]]);
  initSched(svc, env);
  t.equal(lblc.schedule(svc, toX, env), null);
  t.same(env.errors, [MSG_NO_DEST]);
  t.equal(tbl(svc).live, 0);
});

t.test('replacing an entry increments the kernel entry counter without a decrement', async (t) => {
  const env = mkEnv();
  const svc = mkService(lblc);
  const [a] = setDests(svc, [['A'], ['B']]);
  initSched(svc, env);
  lblc.schedule(svc, toX, env);
  a!.weight = 0;
  lblc.schedule(svc, toX, env);
  t.equal(tbl(svc).live, 1);
  t.equal(tbl(svc).entries, 2, 'ip_vs_lblc_new() frees the old entry without atomic_dec');
});

t.test('full expiration check: every 30th collector run (30 min), lblc_expiration idle', async (t) => {
  const env = mkEnv({ now: 1000, lblcExpiration: 120 });
  const svc = mkService(lblc);
  setDests(svc, [['A'], ['B']]);
  initSched(svc, env); // collector runs at 1060, 1120, ...; run 30 at 2800
  lblc.schedule(svc, toX, env); // X used at 1000
  runUntil(svc, env, 2700);
  lblc.schedule(svc, toY, env); // Y used at 2700
  runUntil(svc, env, 2799);
  t.equal(tbl(svc).live, 2, 'X idle 1799 s > 120 s but no full check yet');
  runUntil(svc, env, 2800);
  t.equal(tbl(svc).live, 1, 'run 30 removed X');
  t.not(tbl(svc).find(toY.daddr), -1, 'Y (idle 100 s) survived');
  runUntil(svc, env, 4599);
  t.equal(tbl(svc).live, 1);
  runUntil(svc, env, 4600);
  t.equal(tbl(svc).live, 0, 'run 60 removed Y');
  t.same(svc.dests.map((d) => d.refcnt), [0, 0], 'references released');
});

t.test('default lblc_expiration (24 h) keeps an entry idle for hours', async (t) => {
  const env = mkEnv({ now: 0 });
  const svc = mkService(lblc);
  setDests(svc, [['A']]);
  initSched(svc, env);
  lblc.schedule(svc, toX, env);
  runUntil(svc, env, 4 * 3600);
  t.equal(tbl(svc).live, 1);
});

t.test('over 16384 entries: entries idle for 6 min are collected bucket by bucket until the goal', async (t) => {
  const env = mkEnv({ now: 1000 });
  const svc = mkService(lblc);
  setDests(svc, [['A']]);
  initSched(svc, env);
  const n = 16384 + 100;
  const p = pkt4('198.51.100.1');
  const perBucket = new Array<number>(1024).fill(0);
  for (let i = 0; i < n; i++) {
    p.daddr[0] = (addr4('10.0.0.0') + i) >>> 0;
    lblc.schedule(svc, p, env);
    perBucket[hash32(p.daddr[0], 10)]!++;
  }
  t.equal(tbl(svc).live, n);
  runUntil(svc, env, 1359); // runs at 1060..1300: too full, but nothing idle 360 s yet
  t.equal(tbl(svc).live, n);
  t.equal(tbl(svc).counter, 1, 'the full-check counter does not advance while over the limit');
  runUntil(svc, env, 1360); // run 6: everything is 360 s idle now
  // goal = (16484 - 16384) * 4 / 3 = 133, whole buckets from rover + 1 = 1 onwards
  let want = 0;
  let k = 0;
  while (want < 133) want += perBucket[++k]!;
  t.equal(n - tbl(svc).live, want, `removed buckets 1..${k}`);
  t.equal(tbl(svc).rover, k);
  t.equal(svc.dests[0]!.refcnt, tbl(svc).live, 'one reference per remaining entry');
});

t.test('IPv6 keys: addresses folding to the same value stay distinct', async (t) => {
  const env = mkEnv();
  const svc = mkService(lblc, { af: 6 });
  const [a, b] = setDests(svc, [['A'], ['B']]);
  initSched(svc, env);
  const p1 = newSchedPacket();
  p1.af = 6;
  p1.daddr.set([0x20010db8, 1, 2, 3]);
  const p2 = newSchedPacket();
  p2.af = 6;
  p2.daddr.set([0x20010db8, 1, 3, 2]); // same XOR fold, same bucket
  t.equal(lblc.schedule(svc, p1, env), a);
  a!.activeConns = 1;
  t.equal(lblc.schedule(svc, p2, env), b, 'p2 has no entry yet: wlc');
  t.equal(tbl(svc).live, 2);
  t.equal(lblc.schedule(svc, p1, env), a, 'p1 still on A');
});

t.test('done() drops every entry and its references', async (t) => {
  const env = mkEnv();
  const svc = mkService(lblc);
  const [a, b] = setDests(svc, [['A'], ['B']]);
  initSched(svc, env);
  lblc.schedule(svc, toX, env);
  a!.activeConns = 1;
  lblc.schedule(svc, toY, env);
  t.same([a!.refcnt, b!.refcnt], [1, 1]);
  lblc.done!(svc);
  t.same([a!.refcnt, b!.refcnt], [0, 0]);
  t.equal(svc.schedData, null);
});
