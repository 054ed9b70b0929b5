import t from 'tap';
import { ConnTable, ADDR_C, ADDR_D, ADDR_V } from '../../src/conn/table.js';
import {
  CONN_F_DROUTE, CONN_F_HASHED, CONN_F_NO_CPORT, CONN_F_ONE_PACKET, CONN_F_TEMPLATE,
} from '../../src/conn/flags.js';
import { FWD_DROUTE, FWD_TUNNEL } from '../../src/svc/types.js';
import { a4, a6, ipOf6, prng, Registry, table } from './helpers.js';

const TCP = 6;
const UDP = 17;
const ZERO = new Uint32Array(4);

t.test('200k random IPv4 tuples: insert, delete half, look up all', (t) => {
  const N = 200_000;
  const reg = new Registry();
  const dest = reg.add();
  const { t: ct } = table(N, reg);
  const rnd = prng(7);
  const seen = new Set<string>();
  const cAddr = new Uint32Array(N), cPort = new Uint16Array(N), vAddr = new Uint32Array(N), vPort = new Uint16Array(N);
  const ids = new Int32Array(N);
  const ca = new Uint32Array(4), va = new Uint32Array(4), da = a4('192.168.10.1');
  for (let i = 0; i < N;) {
    const c = rnd(), p = (rnd() % 64511) + 1024, v = 0x0a000001 + (rnd() % 4), vp = [80, 443, 8080][rnd() % 3]!;
    const k = `${c}:${p}:${v}:${vp}`;
    if (seen.has(k)) continue;
    seen.add(k);
    cAddr[i] = c; cPort[i] = p; vAddr[i] = v; vPort[i] = vp;
    ca[0] = c; va[0] = v;
    ids[i] = ct.create(4, TCP, ca, p, va, vp, da, 8080, 0, 0, 0, dest.id, 0);
    i++;
  }
  t.equal(ct.count, N, 'all inserted');
  t.equal(new Set(ids).size, N, 'distinct ids');
  t.ok(ids.every((x) => x >= 0), 'no create failed below capacity');
  t.equal(ct.create(4, TCP, a4('1.1.1.1'), 1, a4('2.2.2.2'), 2, da, 3, 0, 0, 0, dest.id, 0), -1, 'one more: full');

  let wrong = 0;
  for (let i = 0; i < N; i++) {
    ca[0] = cAddr[i]!; va[0] = vAddr[i]!;
    if (ct.lookupIn(4, TCP, ca, cPort[i]!, va, vPort[i]!) !== ids[i]) wrong++;
  }
  t.equal(wrong, 0, 'every tuple finds its own id');

  for (let i = 0; i < N; i += 2) ct.free(ids[i]!);
  t.equal(ct.count, N / 2, 'half deleted');
  t.equal(dest.inactConns, N / 2, 'dest counts follow deletes');

  let t0 = process.hrtime.bigint();
  wrong = 0;
  for (let i = 0; i < N; i++) {
    ca[0] = cAddr[i]!; va[0] = vAddr[i]!;
    const want = i % 2 === 0 ? -1 : ids[i]!;
    if (ct.lookupIn(4, TCP, ca, cPort[i]!, va, vPort[i]!) !== want) wrong++;
  }
  const ns = Number(process.hrtime.bigint() - t0) / N;
  t.equal(wrong, 0, 'deleted tuples miss, kept ones hit');
  t.comment(`lookupIn at ${N / 2} entries: ${ns.toFixed(0)} ns per lookup (hits and misses)`);

  // Wrong protocol / port / vaddr never hits.
  ca[0] = cAddr[1]!; va[0] = vAddr[1]!;
  t.equal(ct.lookupIn(4, UDP, ca, cPort[1]!, va, vPort[1]!), -1, 'other protocol misses');
  t.equal(ct.lookupIn(4, TCP, ca, cPort[1]! ^ 1, va, vPort[1]!), -1, 'other cport misses');
  t.equal(ct.lookupIn(4, TCP, ca, cPort[1]!, va, vPort[1]! + 1), -1, 'other vport misses');

  // Refill the freed half: ids come back and every entry is still reachable.
  t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i += 2) {
    ca[0] = cAddr[i]!; va[0] = vAddr[i]!;
    ids[i] = ct.create(4, TCP, ca, cPort[i]!, va, vPort[i]!, da, 8080, 0, 0, 0, dest.id, 0);
  }
  t.equal(ct.count, N, 'refilled');
  wrong = 0;
  for (let i = 0; i < N; i++) {
    ca[0] = cAddr[i]!; va[0] = vAddr[i]!;
    if (ct.lookupIn(4, TCP, ca, cPort[i]!, va, vPort[i]!) !== ids[i]) wrong++;
    const outId = ct.lookupOut(4, TCP, da, 8080, ca, cPort[i]!);
    if (outId < 0 || ct.cport[outId] !== cPort[i] || ct.caddr[outId] !== cAddr[i]) wrong++;
  }
  t.equal(wrong, 0, 'all reachable inbound and by NAT reply after refill');
  t.end();
});

t.test('randomized against a model, small table with heavy collisions', (t) => {
  // Few distinct clients and ports so that clusters, duplicates and wrap-around happen all the time.
  const reg = new Registry();
  const dest = reg.add({ addr: { af: 4, w0: 0xc0a80a05, w1: 0, w2: 0, w3: 0 }, port: 80 });
  const cap = 100;
  const { t: ct } = table(cap, reg, { seed: 99 });
  const rnd = prng(3);
  const model = new Map<string, number[]>(); // key -> ids, newest last
  const live: number[] = [];
  const keyOf = (c: number, p: number, v: number) => `${c}/${p}/${v}`;
  const ca = new Uint32Array(4), va = new Uint32Array(4), da = a4('192.168.10.5');
  let mismatches = 0;
  for (let step = 0; step < 50_000; step++) {
    const c = 0x0b000000 + (rnd() % 6), p = 1000 + (rnd() % 8), v = 0x0a000000 + (rnd() % 3);
    ca[0] = c; va[0] = v;
    const op = rnd() % 3;
    if (op === 0 && live.length < cap) {
      const id = ct.create(4, TCP, ca, p, va, 80, da, 80, 0, 0, 0, dest.id, 0);
      live.push(id);
      const k = keyOf(c, p, v);
      (model.get(k) ?? model.set(k, []).get(k)!).push(id);
    } else if (op === 1 && live.length > 0) {
      const idx = rnd() % live.length;
      const id = live[idx]!;
      live.splice(idx, 1);
      const k = keyOf(ct.caddr[id]!, ct.cport[id]!, ct.vaddr[id]!);
      const list = model.get(k)!;
      list.splice(list.indexOf(id), 1);
      ct.free(id);
    } else {
      const list = model.get(keyOf(c, p, v));
      const want = list && list.length ? list[list.length - 1]! : -1;
      if (ct.lookupIn(4, TCP, ca, p, va, 80) !== want) mismatches++;
    }
  }
  t.equal(mismatches, 0, 'lookupIn always agrees with the model (newest entry of a tuple first)');
  t.equal(ct.count, live.length, 'count agrees');
  t.equal(dest.inactConns, live.length, 'dest counters agree');
  t.end();
});

t.test('IPv6 entries and the IPv6 side store', (t) => {
  const reg = new Registry();
  const d6 = reg.add({ addr: ipOf6('2001:db8::10'), port: 80 });
  const { t: ct } = table(64, reg, { v6Capacity: 4 });
  const c1 = a6('2001:db8:1::1'), v = a6('2001:db8::80'), dAddr = a6('2001:db8::10');
  const id = ct.create(6, TCP, c1, 40000, v, 80, dAddr, 80, 0, 0, 0, d6.id, 0);
  t.ok(id >= 0);
  t.equal(ct.lookupIn(6, TCP, c1, 40000, v, 80), id, 'inbound IPv6 hit');
  t.equal(ct.lookupIn(4, TCP, c1, 40000, v, 80), -1, 'same words as IPv4 miss');
  // Addresses that differ only in one low word must not match.
  const c1b = a6('2001:db8:1::2');
  t.equal(ct.lookupIn(6, TCP, c1b, 40000, v, 80), -1, 'neighbour address misses');
  t.equal(ct.lookupOut(6, TCP, dAddr, 80, c1, 40000), id, 'NAT reply IPv6 hit');
  t.equal(ct.lookupOut(6, TCP, a6('2001:db8::11'), 80, c1, 40000), -1, 'reply from another RS misses');
  const out = new Uint32Array(4);
  t.same([...ct.getAddr(id, ADDR_C, out)], [...c1], 'caddr words');
  t.same([...ct.getAddr(id, ADDR_V, out)], [...v], 'vaddr words');
  t.same([...ct.getAddr(id, ADDR_D, out)], [...dAddr], 'daddr words');

  // v6Capacity 4: three more fit, the fifth IPv6 entry does not; IPv4 entries still do.
  const more = [1, 2, 3].map((i) => ct.create(6, TCP, c1, 40000 + i, v, 80, dAddr, 80, 0, 0, 0, d6.id, 0));
  t.ok(more.every((x) => x >= 0), 'side store holds 4');
  t.equal(ct.create(6, TCP, c1, 50000, v, 80, dAddr, 80, 0, 0, 0, d6.id, 0), -1, 'side store full: -1');
  t.equal(d6.inactConns, 4, 'failed create left the dest untouched');
  t.ok(ct.create(4, TCP, a4('10.1.1.1'), 1234, a4('10.0.0.1'), 80, a4('10.2.2.2'), 80, 0, 0, 0, -1, 0) >= 0, 'IPv4 still fits');
  ct.free(more[0]!);
  const again = ct.create(6, TCP, c1, 50000, v, 80, dAddr, 80, 0, 0, 0, d6.id, 0);
  t.ok(again >= 0, 'side store slot reused after a free');
  t.equal(ct.lookupIn(6, TCP, c1, 50000, v, 80), again);
  t.equal(ct.lookupIn(6, TCP, c1, 40001, v, 80), -1, 'freed IPv6 entry is gone');

  // IPv4 service with an IPv6 tunnel dest: daddr goes to the side store, the rest stays IPv4.
  const tun6 = reg.add({ addr: ipOf6('2001:db8::99'), port: 0, fwd: FWD_TUNNEL });
  ct.free(more[1]!);
  const mixed = ct.create(4, TCP, a4('10.9.9.9'), 5555, a4('10.0.0.1'), 80, a6('2001:db8::99'), 80, 0, 0, 0, tun6.id, 0);
  t.ok(mixed >= 0);
  t.equal(ct.daf[mixed], 6);
  t.same([...ct.getAddr(mixed, ADDR_D, out)], [...a6('2001:db8::99')], 'IPv6 daddr of an IPv4 conn');
  t.same([...ct.getAddr(mixed, ADDR_C, out)], [...a4('10.9.9.9')]);
  t.equal(ct.lookupIn(4, TCP, a4('10.9.9.9'), 5555, a4('10.0.0.1'), 80), mixed);
  t.end();
});

t.test('NAT reply lookups', (t) => {
  const reg = new Registry();
  const nat = reg.add({ port: 8080 });
  const dr = reg.add({ fwd: FWD_DROUTE, port: 80 });
  const { t: ct } = table(16, reg);
  const c = a4('203.0.113.7'), vip = a4('10.0.0.1');
  const n = ct.create(4, TCP, c, 33333, vip, 80, a4('192.168.10.1'), 8080, 0, 0, 0, nat.id, 0);
  const d = ct.create(4, TCP, c, 44444, vip, 80, a4('192.168.10.2'), 80, 0, 0, 0, dr.id, 0);
  t.equal(ct.lookupOut(4, TCP, a4('192.168.10.1'), 8080, c, 33333), n, 'RS:port -> client:port finds the NAT conn');
  t.equal(ct.lookupOut(4, TCP, a4('192.168.10.1'), 80, c, 33333), -1, 'wrong RS port misses');
  t.equal(ct.lookupOut(4, TCP, a4('192.168.10.9'), 8080, c, 33333), -1, 'wrong RS address misses');
  t.equal(ct.lookupOut(4, TCP, a4('192.168.10.1'), 8080, c, 33334), -1, 'wrong client port misses');
  t.equal(ct.lookupOut(4, UDP, a4('192.168.10.1'), 8080, c, 33333), -1, 'wrong protocol misses');
  t.equal(ct.lookupOut(4, TCP, vip, 80, c, 33333), -1, 'a NAT conn is not found by its VIP');
  t.equal(ct.lookupOut(4, TCP, a4('192.168.10.2'), 80, c, 44444), -1, 'a DR conn is not found by its real server');
  // Kernel ip_vs_conn_out_get: non-NAT conns match on their VIP:vport (ip_vs_out then ignores them).
  t.equal(ct.lookupOut(4, TCP, vip, 80, c, 44444), d, 'a DR conn is found by VIP:vport, as in the kernel');
  t.equal(ct.flags[d]! & 7, CONN_F_DROUTE, 'method came from the dest');
  t.end();
});

t.test('NO_CPORT conns match any client port, exact conns first', (t) => {
  const reg = new Registry();
  const dest = reg.add();
  const { t: ct } = table(16, reg);
  const c = a4('198.51.100.1'), v = a4('10.0.0.1'), d = a4('192.168.10.1');
  t.equal(ct.lookupIn(4, TCP, c, 2000, v, 21), -1);
  const wild = ct.create(4, TCP, c, 0, v, 21, d, 21, CONN_F_NO_CPORT, 0, 0, dest.id, 0);
  t.equal(ct.lookupIn(4, TCP, c, 2000, v, 21), wild, 'any cport finds the NO_CPORT conn');
  t.equal(ct.lookupIn(4, TCP, c, 0, v, 21), wild, 'cport 0 finds it too');
  t.equal(ct.lookupIn(4, TCP, c, 2000, v, 22), -1, 'but not another vport');
  const exact = ct.create(4, TCP, c, 2000, v, 21, d, 21, 0, 0, 0, dest.id, 0);
  t.equal(ct.lookupIn(4, TCP, c, 2000, v, 21), exact, 'an exact conn wins');
  t.equal(ct.lookupIn(4, TCP, c, 2001, v, 21), wild, 'others still fall back');
  const plainZero = ct.create(4, TCP, c, 0, v, 80, d, 80, 0, 0, 0, dest.id, 0);
  t.equal(ct.lookupIn(4, TCP, c, 0, v, 80), -1, 'a normal conn with cport 0 never matches (kernel XOR rule)');
  t.ok(plainZero >= 0);
  ct.fillCport(wild, 3000);
  t.equal(ct.flags[wild]! & CONN_F_NO_CPORT, 0, 'fillCport clears NO_CPORT');
  t.equal(ct.lookupIn(4, TCP, c, 3000, v, 21), wild, 'found by its new cport');
  t.equal(ct.lookupIn(4, TCP, c, 2001, v, 21), -1, 'no more wildcard');
  t.end();
});

t.test('templates and connections never match each other', (t) => {
  const reg = new Registry();
  const dest = reg.add({ port: 80 });
  const { t: ct } = table(32, reg);
  const c = a4('198.51.100.0'), v = a4('10.0.0.1'), d = a4('192.168.10.1');
  // A template <TCP, 198.51.100.0, 0, 10.0.0.1, 80> and a NO_CPORT conn with the very same key fields.
  const tpl = ct.create(4, TCP, c, 0, v, 80, d, 80, CONN_F_TEMPLATE, 0, 0, dest.id, 0);
  t.equal(ct.lookupIn(4, TCP, c, 0, v, 80), -1, 'lookupIn does not see a template');
  t.equal(ct.lookupIn(4, TCP, c, 1234, v, 80), -1, 'not with a real cport either');
  t.equal(ct.lookupOut(4, TCP, d, 80, c, 0), -1, 'lookupOut does not see a template');
  t.equal(ct.lookupTemplate(4, TCP, c, 0, v, 80), tpl, 'lookupTemplate does');
  const wild = ct.create(4, TCP, c, 0, v, 80, d, 80, CONN_F_NO_CPORT, 0, 0, dest.id, 0);
  t.equal(ct.lookupIn(4, TCP, c, 0, v, 80), wild, 'the conn is found by lookupIn');
  t.equal(ct.lookupTemplate(4, TCP, c, 0, v, 80), tpl, 'the template still by lookupTemplate');
  ct.free(tpl);
  t.equal(ct.lookupTemplate(4, TCP, c, 0, v, 80), -1, 'a conn never answers lookupTemplate');
  t.equal(dest.persistConns, 0, 'template uncounted');

  // fwmark template: protocol 0 and the mark in vaddr word 0; the other words are ignored.
  const mark = Uint32Array.of(42, 0, 0, 0);
  const fw = ct.create(4, 0, c, 0, mark, 0, d, 0, CONN_F_TEMPLATE, 42, 0, dest.id, 0);
  t.equal(ct.lookupTemplate(4, 0, c, 0, Uint32Array.of(42, 7, 7, 7), 0), fw, 'fwmark template by mark');
  t.equal(ct.lookupTemplate(4, 0, c, 0, Uint32Array.of(43, 0, 0, 0), 0), -1, 'other mark misses');
  t.equal(ct.lookupTemplate(4, TCP, c, 0, mark, 0), -1, 'protocol is part of the key');
  t.equal(ct.stateName(fw), 'NONE');

  // IPv6 fwmark template.
  const snet6 = a6('2001:db8:1::');
  const fw6 = ct.create(6, 0, snet6, 0, Uint32Array.of(7, 1, 2, 3), 0, a6('2001:db8::10'), 0, CONN_F_TEMPLATE, 7, 0, -1, 0);
  t.equal(ct.lookupTemplate(6, 0, snet6, 0, Uint32Array.of(7, 0, 0, 0), 0), fw6, 'IPv6 fwmark template compares word 0 only');
  const out = new Uint32Array(4);
  t.same([...ct.getAddr(fw6, ADDR_V, out)], [7, 0, 0, 0], 'only the mark word is stored, like the kernel');
  t.end();
});

t.test('invalidated templates are unreachable but live', (t) => {
  const reg = new Registry();
  const dest = reg.add({ port: 80 });
  const { t: ct } = table(8, reg);
  const c = a4('198.51.100.0'), v = a4('10.0.0.1'), d = a4('192.168.10.1');
  const tpl = ct.create(4, TCP, c, 0, v, 80, d, 80, CONN_F_TEMPLATE, 0, 0, dest.id, 0);
  ct.setTimeout(tpl, 300, 0);
  ct.invalidateTemplate(tpl);
  t.equal(ct.lookupTemplate(4, TCP, c, 0, v, 80), -1, 'no longer found');
  t.equal(ct.vport[tpl], 0xffff);
  t.equal(ct.dport[tpl], 0xffff);
  t.equal(ct.cport[tpl], 0);
  t.equal(ct.lookupTemplate(4, TCP, c, 0, v, 0xffff), tpl, 'rehashed under ports 0xffff');
  t.equal(ct.expiresOf(tpl), 300, 'timer kept');
  const fresh = ct.create(4, TCP, c, 0, v, 80, d, 80, CONN_F_TEMPLATE, 0, 0, dest.id, 0);
  t.equal(ct.lookupTemplate(4, TCP, c, 0, v, 80), fresh, 'a new template takes the key');
  t.equal(dest.persistConns, 2);
  t.end();
});

t.test('newest entry of a duplicate tuple is found first (kernel hlist_add_head order)', (t) => {
  const reg = new Registry();
  const dest = reg.add({ port: 80 });
  const { t: ct } = table(8, reg);
  const c = a4('198.51.100.9'), v = a4('10.0.0.1'), d = a4('192.168.10.1');
  const old = ct.create(4, TCP, c, 5000, v, 80, d, 80, 0, 0, 0, dest.id, 0);
  const neu = ct.create(4, TCP, c, 5000, v, 80, d, 80, 0, 0, 0, dest.id, 0);
  t.equal(ct.lookupIn(4, TCP, c, 5000, v, 80), neu, 'new conn hides the old');
  t.equal(ct.lookupOut(4, TCP, d, 80, c, 5000), neu, 'also for replies');
  ct.free(neu);
  t.equal(ct.lookupIn(4, TCP, c, 5000, v, 80), old, 'old one again after the new goes');
  t.end();
});

t.test('table full returns -1 without corruption', (t) => {
  const reg = new Registry();
  const dest = reg.add();
  const { t: ct } = table(10, reg);
  const v = a4('10.0.0.1'), d = a4('192.168.10.1'), c = new Uint32Array(4);
  const ids: number[] = [];
  for (let i = 0; i < 10; i++) { c[0] = 0x01020300 + i; ids.push(ct.create(4, UDP, c, 1000 + i, v, 53, d, 53, 0, 0, 0, dest.id, 0)); }
  t.same(ids, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'ids handed out in order');
  c[0] = 0x09090909;
  t.equal(ct.create(4, UDP, c, 1, v, 53, d, 53, 0, 0, 0, dest.id, 0), -1, 'full');
  t.equal(ct.create(4, UDP, c, 1, v, 53, d, 53, CONN_F_TEMPLATE, 0, 0, dest.id, 0), -1, 'full for templates too');
  t.equal(ct.count, 10);
  t.equal(dest.inactConns, 10, 'no counter moved for the failed creates');
  t.equal(dest.refcnt, 10);
  for (let i = 0; i < 10; i++) { c[0] = 0x01020300 + i; t.equal(ct.lookupIn(4, UDP, c, 1000 + i, v, 53), ids[i]); }
  ct.free(ids[4]!);
  c[0] = 0x09090909;
  t.equal(ct.create(4, UDP, c, 1, v, 53, d, 53, 0, 0, 0, dest.id, 0), 4, 'a freed id is reused');
  t.end();
});

t.test('one-packet conns are not hashed', (t) => {
  const reg = new Registry();
  const dest = reg.add({ port: 53 });
  const { t: ct } = table(8, reg);
  const c = a4('198.51.100.1'), v = a4('10.0.0.1'), d = a4('192.168.10.1');
  const id = ct.create(4, UDP, c, 5353, v, 53, d, 53, CONN_F_ONE_PACKET, 0, 0, dest.id, 0);
  t.ok(id >= 0);
  t.equal(ct.flags[id]! & CONN_F_HASHED, 0);
  t.equal(ct.lookupIn(4, UDP, c, 5353, v, 53), -1, 'not found by lookups');
  t.equal(ct.dport[id], 53, 'but usable for the packet');
  t.ok(ct.free(id));
  t.equal(ct.count, 0);
  t.equal(dest.inactConns, 0);
  t.end();
});

t.test('bytes per connection at 1,000,000 IPv4 connections', (t) => {
  const ct = new ConnTable({ capacity: 1_000_000, dests: new Registry() });
  const b = ct.bytesPerConn();
  t.comment(`bytesPerConn at capacity 1,000,000: ${b.toFixed(1)} (hash slots ${ct.hashSlots}, IPv6 side store ${ct.v6Capacity})`);
  t.ok(b <= 160, `${b.toFixed(1)} <= 160`);
  // Filling a quarter million entries must not change it (no hidden growth).
  const c = new Uint32Array(4), v = a4('10.0.0.1');
  for (let i = 0; i < 250_000; i++) { c[0] = i * 2654435761; ct.create(4, TCP, c, 1024 + (i & 0x7fff), v, 80, v, 80, 0, 0, 0, -1, 0); }
  t.equal(ct.bytesPerConn(), b);
  t.equal(ct.lookupIn(4, TCP, ZERO, 1024, v, 80), 0, 'entry 0 (caddr 0) reachable');
  t.end();
});
