import t from 'tap';
import { dh } from '../../src/sched/dh.js';
import type { DhState } from '../../src/sched/dh.js';
import { sh } from '../../src/sched/sh.js';
import type { ShState } from '../../src/sched/sh.js';
import { hash32 } from '../../src/sched/hash.js';
import { MSG_NO_DEST } from '../../src/sched/common.js';
import { PROTO_ICMP, SVC_F_SCHED_SH_FALLBACK, SVC_F_SCHED_SH_PORT } from '../../src/svc/types.js';
import { newSchedPacket } from '../../src/sched/types.js';
import type { Dest } from '../../src/svc/types.js';
import { addDests, delDest, editDest, initSched, label, mkEnv, mkService, pkt4, setOverloaded } from './fixtures.js';

function counts(buckets: (Dest | null)[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const d of buckets) c[label(d)] = (c[label(d)] ?? 0) + 1;
  return c;
}

// Bucket indexes used below (hash_32(addr, 8), see hash.test.ts): 10.0.0.1 -> 39,
// 192.168.1.100 -> 89, 0.0.0.1 -> 97, 203.0.113.7 -> 124, 0.0.0.2 -> 195.

t.test('dh: one bucket per dest, cyclically in list order; weights unused', async (t) => {
  const env = mkEnv();
  const svc = mkService(dh);
  initSched(svc, env);
  const [a, , c] = addDests(svc, env, [['A', { weight: 1 }], ['B', { weight: 50 }], ['C', { weight: 3 }]]);
  const st = svc.schedData as DhState;
  t.same(st.buckets.slice(0, 4).map(label), ['C', 'B', 'A', 'C'], 'list order is C, B, A');
  t.same(counts(st.buckets), { C: 86, B: 85, A: 85 });
  // keyed by the packet's destination: bucket 39 -> 39 % 3 = 0 -> C, 89 -> A, 97 -> B
  const to = (dst: string) => label(dh.schedule(svc, pkt4('198.51.100.7', dst), env));
  t.equal(to('10.0.0.1'), 'C');
  t.equal(to('192.168.1.100'), 'A');
  t.equal(to('0.0.0.1'), 'B');
  t.equal(label(dh.schedule(svc, pkt4('198.51.100.99', '10.0.0.1'), env)), 'C', 'the client does not matter');
  // a weight edit does not rebuild the table (dh has no upd_dest)
  editDest(svc, a!, 9, env);
  t.same(counts(st.buckets), { C: 86, B: 85, A: 85 });
  // an unusable bucket dest means no destination; there is no fallback
  editDest(svc, c!, 0, env);
  t.equal(to('10.0.0.1'), 'null');
  t.same(env.errors, [MSG_NO_DEST]);
  t.equal(to('192.168.1.100'), 'A');
});

t.test('dh: rebuilt on delete', async (t) => {
  const env = mkEnv();
  const svc = mkService(dh);
  initSched(svc, env);
  const [, b] = addDests(svc, env, [['A'], ['B'], ['C']]);
  delDest(svc, b!, env);
  const st = svc.schedData as DhState;
  t.same(counts(st.buckets), { C: 128, A: 128 });
  // list C, A: odd buckets -> A, even -> C
  t.equal(label(dh.schedule(svc, pkt4('198.51.100.7', '10.0.0.1'), env)), 'A');
  t.equal(label(dh.schedule(svc, pkt4('198.51.100.7', '203.0.113.7'), env)), 'C');
});

t.test('dh: IPv6 destinations are folded by XOR of the four words', async (t) => {
  const env = mkEnv();
  const svc = mkService(dh, { af: 6 });
  initSched(svc, env);
  addDests(svc, env, [['A'], ['B'], ['C']]);
  const p = newSchedPacket();
  p.af = 6;
  p.daddr.set([0x20010db8, 0, 0, 1]);
  const bucket = hash32(0x20010db9, 8);
  t.equal(label(dh.schedule(svc, p, env)), ['C', 'B', 'A'][bucket % 3]);
});

t.test('dh/sh: empty service', async (t) => {
  for (const s of [dh, sh]) {
    const env = mkEnv();
    const svc = mkService(s, { flags: SVC_F_SCHED_SH_FALLBACK });
    initSched(svc, env);
    t.equal(s.schedule(svc, pkt4('10.0.0.1'), env), null, s.name);
  }
});

t.test('sh: each dest fills max(weight, 1) consecutive buckets', async (t) => {
  const env = mkEnv();
  const svc = mkService(sh);
  initSched(svc, env);
  addDests(svc, env, [['A', { weight: 0 }], ['B', { weight: 1 }], ['C', { weight: 3 }]]);
  const st = svc.schedData as ShState;
  // cycle of 5 buckets C C C B A; 256 = 51 * 5 + 1
  t.same(st.buckets.slice(0, 6).map(label), ['C', 'C', 'C', 'B', 'A', 'C']);
  t.same(counts(st.buckets), { C: 154, B: 51, A: 51 });
  // 0.0.0.1 -> bucket 97 -> 97 % 5 = 2 -> C; 0.0.0.2 -> 195 % 5 = 0 -> C; 10.0.0.1 -> 39 % 5 = 4 -> A (weight 0)
  t.equal(label(sh.schedule(svc, pkt4('0.0.0.1'), env)), 'C');
  t.equal(label(sh.schedule(svc, pkt4('10.0.0.1'), env)), 'null', 'weight-0 bucket owner, no fallback');
});

t.test('sh: rebuilt on edit, so a weight change moves clients', async (t) => {
  const env = mkEnv();
  const svc = mkService(sh);
  initSched(svc, env);
  const [, , c] = addDests(svc, env, [['A'], ['B'], ['C']]);
  // layout C B A C B A ...: bucket 97 -> 97 % 3 = 1 -> B
  t.equal(label(sh.schedule(svc, pkt4('0.0.0.1'), env)), 'B');
  editDest(svc, c!, 3, env);
  // layout C C C B A ...: 97 % 5 = 2 -> C
  t.equal(label(sh.schedule(svc, pkt4('0.0.0.1'), env)), 'C');
  t.same(counts((svc.schedData as ShState).buckets), { C: 154, B: 51, A: 51 });
});

t.test('sh-port: the client port is added for TCP/UDP/SCTP only', async (t) => {
  const env = mkEnv();
  const svc = mkService(sh, { flags: SVC_F_SCHED_SH_PORT });
  initSched(svc, env);
  addDests(svc, env, [['A'], ['B']]); // list B, A: even buckets B, odd A
  // 10.0.0.1 + port 12345 -> bucket 134 -> B; without the port -> 39 -> A
  t.equal(label(sh.schedule(svc, pkt4('10.0.0.1', '192.0.2.1', 12345), env)), 'B');
  t.equal(label(sh.schedule(svc, pkt4('10.0.0.1', '192.0.2.1', 12345, 80, PROTO_ICMP), env)), 'A');
  svc.flags = 0;
  t.equal(label(sh.schedule(svc, pkt4('10.0.0.1', '192.0.2.1', 12345), env)), 'A');
});

t.test('sh-fallback: tries buckets (offset + 2*hash) & 255 until an available dest', async (t) => {
  const env = mkEnv();
  const svc = mkService(sh);
  initSched(svc, env);
  const [a, b, c] = addDests(svc, env, [['A'], ['B'], ['C']]); // layout C B A: bucket i -> i % 3
  const client = pkt4('10.0.0.1'); // bucket 39 -> C
  t.equal(label(sh.schedule(svc, client, env)), 'C');
  editDest(svc, c!, 0, env); // still one bucket each, C now unavailable
  t.equal(label(sh.schedule(svc, client, env)), 'null', 'without the flag');
  svc.flags = SVC_F_SCHED_SH_FALLBACK;
  // offset 0 -> bucket 78 -> C (unavailable); offset 1 -> bucket 79 -> B
  t.equal(label(sh.schedule(svc, client, env)), 'B');
  setOverloaded(b!, true);
  // offset 2 -> bucket 80 -> A
  t.equal(label(sh.schedule(svc, client, env)), 'A');
  setOverloaded(a!, true);
  t.equal(label(sh.schedule(svc, client, env)), 'null');
});
