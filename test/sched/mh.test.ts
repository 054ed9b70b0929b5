import t from 'tap';
import { MH_HASH1, MH_HASH2, MH_TAB_SIZE, mh } from '../../src/sched/mh.js';
import type { MhState } from '../../src/sched/mh.js';
import { SchedInitError } from '../../src/sched/common.js';
import { sipHashBytes } from '../../src/sched/hash.js';
import { SVC_F_SCHED_MH_FALLBACK, SVC_F_SCHED_MH_PORT } from '../../src/svc/types.js';
import type { Dest, Service } from '../../src/svc/types.js';
import { addDests, addr4, delDest, editDest, initSched, label, mkDest, mkEnv, mkService, pkt4, setDests } from './fixtures.js';

const M = 4093;

/** Independent hsiphash: SipHash-1-3 of the 4 little-endian bytes of v, low 32 bits. */
function hs(v: number, key: Uint32Array): number {
  const out = new Uint32Array(2);
  sipHashBytes(new Uint8Array(Uint32Array.of(v >>> 0).buffer), key, 1, 3, out);
  return out[1]!;
}

function table(svc: Service): (Dest | null)[] {
  return (svc.schedData as MhState).lookup;
}

function counts(svc: Service): Record<string, number> {
  const c: Record<string, number> = {};
  for (const d of table(svc)) c[label(d)] = (c[label(d)] ?? 0) + 1;
  return c;
}

t.test('M is the default prime 4093', async (t) => {
  t.equal(MH_TAB_SIZE, M);
});

t.test('equal weights: dests take one slot per turn, so shares differ by at most one', async (t) => {
  const env = mkEnv();
  const svc = mkService(mh);
  initSched(svc, env);
  addDests(svc, env, [['A'], ['B'], ['C']]);
  // list C, B, A; 4093 = 3 * 1364 + 1: the extra slot goes to the first dest in list order
  t.same(counts(svc), { C: 1365, B: 1364, A: 1364 }, 'every slot filled');
});

t.test('weights 1, 2, 3: turns proportional to weight', async (t) => {
  const env = mkEnv();
  const svc = mkService(mh);
  initSched(svc, env);
  addDests(svc, env, [['A', { weight: 1 }], ['B', { weight: 2 }], ['C', { weight: 3 }]]);
  // rounds of 6 slots (C 3, B 2, A 1); 4093 = 6 * 682 + 1
  t.same(counts(svc), { C: 2047, B: 1364, A: 682 });
});

t.test('large weight ratios are divided by the gcd and shifted to 6 bits', async (t) => {
  const env = mkEnv();
  const svc = mkService(mh);
  initSched(svc, env);
  addDests(svc, env, [['A', { weight: 200 }], ['B', { weight: 2 }]]);
  const st = svc.schedData as MhState;
  // gcd 2 -> 100 and 1; fls(100) = 7 > 6 -> rshift 1 -> turns 50 and (0, but weight != 0) 1
  t.equal(st.gcd, 2);
  t.equal(st.rshift, 1);
  // list B, A; rounds of 51 slots: 4093 = 51 * 80 + 13 -> B 80 + 1, A 4000 + 12
  t.same(counts(svc), { B: 81, A: 4012 });
});

t.test('the permutation starts at hsiphash(port + addr, hash1) % M and steps by hash2 % (M-1) + 1', async (t) => {
  const env = mkEnv();
  const svc = mkService(mh);
  const ds = setDests(svc, [
    ['A', { port: 80 }],
    ['B', { port: 8080 }],
    ['C', { port: 443 }],
  ]);
  initSched(svc, env);
  const offset = (d: Dest) => hs(d.port + d.addr.w0, MH_HASH1) % M;
  const skip = (d: Dest) => (hs(d.port + d.addr.w0, MH_HASH2) % (M - 1)) + 1;
  const offs = ds.map(offset);
  const lookup = table(svc);
  // the list head claims its first preference before anyone else
  t.equal(lookup[offs[0]!], ds[0], 'A owns its offset slot');
  for (let i = 1; i < ds.length; i++) {
    if (!offs.slice(0, i).includes(offs[i]!)) t.equal(lookup[offs[i]!], ds[i], `${label(ds[i]!)} owns its offset slot`);
  }
  // in its second turn the head takes offset + skip (unless another dest's first pick was there)
  const second = (offs[0]! + skip(ds[0]!)) % M;
  if (!offs.includes(second)) t.equal(lookup[second], ds[0], 'A owns offset + skip');
});

t.test('lookup: client slot = hsiphash(addr [+ port with mh-port], hash1) % M', async (t) => {
  const env = mkEnv();
  const svc = mkService(mh);
  initSched(svc, env);
  addDests(svc, env, [['A'], ['B'], ['C'], ['D']]);
  const lookup = table(svc);
  let ok = 0;
  for (let i = 1; i <= 200; i++) {
    const ip = `198.51.${i >> 8}.${i & 255}`;
    const p = pkt4(ip, '192.0.2.1', 30000 + i);
    svc.flags = 0;
    const plain = mh.schedule(svc, p, env);
    svc.flags = SVC_F_SCHED_MH_PORT;
    const withPort = mh.schedule(svc, p, env);
    if (plain === lookup[hs(addr4(ip), MH_HASH1) % M] && withPort === lookup[hs(addr4(ip) + 30000 + i, MH_HASH1) % M]) ok++;
  }
  t.equal(ok, 200);
});

t.test('a dest edited to weight 0 keeps its slots (last_weight) but is not chosen', async (t) => {
  const env = mkEnv();
  const svc = mkService(mh);
  initSched(svc, env);
  const [a] = addDests(svc, env, [['A'], ['B'], ['C']]);
  const before = table(svc).slice();
  editDest(svc, a!, 0, env);
  t.same(table(svc), before, 'table unchanged');
  // find clients that hash to A
  const lookup = table(svc);
  const clients: string[] = [];
  for (let i = 1; clients.length < 20; i++) {
    const ip = `203.0.${i >> 8}.${i & 255}`;
    if (lookup[hs(addr4(ip), MH_HASH1) % M] === a) clients.push(ip);
  }
  for (const ip of clients) t.equal(mh.schedule(svc, pkt4(ip), env), null, `${ip} -> no dest`);
  svc.flags = SVC_F_SCHED_MH_FALLBACK;
  for (const ip of clients) {
    // fallback: slots hsiphash(addr + (offset + ihash) % M) % M for offset = 0, 1, ...
    const ihash = hs(addr4(ip), MH_HASH1) % M;
    let want: Dest | null = null;
    for (let off = 0; off < M && want === null; off++) {
      const d = lookup[hs(addr4(ip) + ((off + ihash) % M), MH_HASH1) % M]!;
      if (d !== a) want = d;
    }
    t.equal(mh.schedule(svc, pkt4(ip), env), want, `${ip} falls back`);
  }
});

t.test('dests added with weight 0 get no slot; no weighted dest means an empty table', async (t) => {
  const env = mkEnv();
  const svc = mkService(mh);
  initSched(svc, env);
  const [z] = addDests(svc, env, [['Z', { weight: 0 }], ['A']]);
  t.same(counts(svc), { A: M });
  delDest(svc, svc.dests[0]!, env); // remove A
  t.same(counts(svc), { null: M });
  svc.flags = SVC_F_SCHED_MH_FALLBACK;
  t.equal(mh.schedule(svc, pkt4('10.0.0.1'), env), null);
  editDest(svc, z!, 5, env);
  t.same(counts(svc), { Z: M });
});

t.test('removing one of five dests moves few of the other slots (Maglev minimal disruption)', async (t) => {
  const env = mkEnv();
  const svc = mkService(mh);
  initSched(svc, env);
  const ds = addDests(svc, env, [['A'], ['B'], ['C'], ['D'], ['E']]);
  const before = table(svc).slice();
  const gone = ds[2]!;
  delDest(svc, gone, env);
  const after = table(svc);
  let moved = 0;
  let orphans = 0;
  for (let i = 0; i < M; i++) {
    if (before[i] === gone) {
      orphans++;
      if (after[i] === gone || after[i] === null) t.fail(`slot ${i} not reassigned`);
    } else if (after[i] !== before[i]) moved++;
  }
  // list E, D, C, B, A; 4093 = 5 * 818 + 3: E, D and C had 819 slots
  t.equal(orphans, 819, 'the removed dest had its share of slots');
  // only the removed dest's slots need to move; Maglev disturbs a few percent of the others
  t.ok(moved < M * 0.05, `${moved} of ${M - orphans} other slots moved`);
  t.same(Object.keys(counts(svc)).sort(), ['A', 'B', 'D', 'E']);
});

t.test('more dests than slots: init fails with EINVAL', async (t) => {
  const env = mkEnv();
  const svc = mkService(mh);
  for (let i = 0; i <= M; i++) svc.dests.push(mkDest(svc, `d${i}`));
  let err: unknown = null;
  try {
    initSched(svc, env);
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof SchedInitError, 'SchedInitError thrown');
  t.equal((err as SchedInitError).code, 'EINVAL');
});
