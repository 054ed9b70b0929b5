/**
 * What the kernel must not handle is now kept per operation (io/hide-state.ts)
 * and written to nftables per change (io/kernel-guard.ts HideRuleset) instead of
 * being recomputed from the whole table every time. These tests run long random
 * scripts of control operations (failures included) and check after every step
 * that the incrementally kept state equals a derivation from scratch — the
 * algorithm the worker used before — and that the nft scripts have the expected
 * shape (the classic one-chain table while small, part chains rewritten one at a
 * time when big). No root needed: nft itself is not run here.
 */
import t from 'tap';
import { Director } from '../../src/core/director.js';
import { StaticNeighbours } from '../../src/neigh/static.js';
import type { DestSpec, ServiceKey, ServiceSpec } from '../../src/ctl/types.js';
import type { MarkRule } from '../../src/ctl/api.js';
import { HideSet, HideTracker } from '../../src/io/hide-state.js';
import { HideRuleset, hideRules } from '../../src/io/kernel-guard.js';
import type { HideChange, HideSpec } from '../../src/io/worker-protocol.js';
import { FWD_DROUTE, FWD_MASQ, FWD_TUNNEL } from '../../src/svc/types.js';
import { formatIp4, formatIp6 } from '../../src/util/ip.js';

/** The spec as the worker computed it before (every service, every dest), for comparison. */
function fromScratch(d: Director): HideSpec {
  const spec: HideSpec = { vips: [], marks: [], reals: [] };
  const fmt = (a: { af: 4 | 6; w0: number; w1: number; w2: number; w3: number }): string =>
    a.af === 4 ? formatIp4(a.w0) : formatIp6(a.w0, a.w1, a.w2, a.w3);
  const marks = new Set<number>();
  for (const s of d.table.services()) {
    if (s.fwmark !== 0) marks.add(s.fwmark);
    else spec.vips.push({ af: s.af, proto: s.protocol, addr: fmt(s.addr), port: s.port });
    for (const x of s.dests) {
      if (x.fwdMethod !== FWD_MASQ) continue;
      spec.reals.push({ af: x.addr.af, proto: s.protocol, addr: fmt(x.addr), port: x.port });
    }
  }
  for (const r of d.marks.list()) {
    if (!marks.has(r.mark)) continue;
    spec.marks.push({ af: r.af, proto: r.protocol, addr: r.addr, prefix: r.prefix, portLo: r.portLo, portHi: r.portHi });
  }
  return spec;
}

/** Order-free form: what nft ends up hiding (duplicates merged, marks in rule order). */
function normal(s: HideSpec): { vips: string[]; reals: string[]; marks: string[] } {
  const key = (e: { af: number; proto: number; addr: string; port: number }) => `${e.af} ${e.proto} ${e.addr} ${e.port}`;
  return {
    vips: [...new Set(s.vips.map(key))].sort(),
    reals: [...new Set(s.reals.map(key))].sort(),
    marks: s.marks.map((m) => JSON.stringify(m)),
  };
}

function vip4Set(d: Director): Set<number> {
  const v = new Set<number>();
  for (const s of d.table.services()) if (s.af === 4 && s.fwmark === 0) v.add(s.addr.w0 >>> 0);
  return v;
}

function vip6Set(d: Director): Set<string> {
  const v = new Set<string>();
  for (const s of d.table.services()) if (s.af === 6 && s.fwmark === 0) v.add(formatIp6(s.addr.w0, s.addr.w1, s.addr.w2, s.addr.w3));
  return v;
}

function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x % n;
  };
}

type Op = [string, unknown[]];

/** A random operation over small pools, so that they collide (EEXIST, ESRCH, shared reals) often. */
function randomOp(r: (n: number) => number): Op {
  const svcKeys: ServiceKey[] = [
    ...[1, 2, 3].flatMap((h) => [80, 443, 0].flatMap((port) => [6, 17].map((protocol) =>
      ({ af: 4 as const, protocol, addr: `10.0.0.${h}`, port, fwmark: 0 })))),
    { af: 6, protocol: 6, addr: '2001:db8::1', port: 80, fwmark: 0 },
    { af: 6, protocol: 132, addr: '2001:db8::2', port: 9, fwmark: 0 },
    ...[1, 2, 3].map((m) => ({ af: 4 as const, protocol: 0, addr: '', port: 0, fwmark: m })),
    { af: 6, protocol: 0, addr: '', port: 0, fwmark: 2 },
    { af: 5 as unknown as 4, protocol: 6, addr: '10.0.0.1', port: 80, fwmark: 0 }, // malformed: every op fails
  ];
  const key = svcKeys[r(svcKeys.length)]!;
  const spec = (): ServiceSpec => ({
    ...key, schedName: ['rr', 'wlc', 'sh', 'lc', 'nosuch'][r(5)]!, flags: 0, timeout: 0,
    netmask: key.af === 6 ? '128' : '255.255.255.255', pe: '',
  });
  const dest = (): DestSpec => {
    const v6 = key.af === 6 && r(3) !== 0;
    return {
      af: v6 ? 6 : 4, addr: v6 ? `2001:db8:1::${1 + r(3)}` : `192.168.0.${1 + r(4)}`, port: [80, 8080][r(2)]!,
      fwdMethod: [FWD_MASQ, FWD_MASQ, FWD_DROUTE, FWD_TUNNEL][r(4)]!, weight: r(3), uThreshold: 0, lThreshold: 0,
      tunType: 0, tunPort: 0, tunFlags: 0,
    };
  };
  const rule = (): MarkRule => ({
    af: 4, protocol: [0, 6, 17][r(3)]!, addr: `10.${1 + r(2)}.0.0`, prefix: 16, portLo: 1000 * r(3), portHi: 5000, mark: 1 + r(3),
  });
  const k = r(100);
  if (k < 24) return ['addService', [spec()]];
  if (k < 28) return ['editService', [spec()]];
  if (k < 32) return ['delService', [key]];
  if (k < 60) return ['addDest', [key, dest()]];
  if (k < 72) return ['editDest', [key, dest()]];
  if (k < 82) return ['delDest', [key, dest()]];
  if (k < 88) return ['addMarkRule', [rule()]];
  if (k < 93) return ['delMarkRule', [rule()]];
  if (k < 95) return ['zero', [r(2) ? null : key]];
  if (k < 97) return ['setTimeouts', [{ tcp: 0, tcpFin: 0, udp: r(2) ? 0 : 10 }]];
  return ['flush', []];
}

t.test('per-operation hide changes add up to the spec computed from scratch', async (t) => {
  for (const seed of [1, 2, 3]) {
    const d = new Director({ mac: new Uint8Array(6), ip4: 0, neigh: new StaticNeighbours(), capacity: 1024 });
    const api = d.api as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    const tracker = new HideTracker(d.table, d.marks);
    const set = new HideSet();
    const rules = new HideRuleset('t');
    const r = rng(seed);
    let mismatches = 0;
    let fails = 0;
    let changes = 0;
    let vip4Before = vip4Set(d);
    let vip6Before = vip6Set(d);
    for (let step = 0; step < 1500; step++) {
      const [op, args] = randomOp(r);
      const scope = tracker.scope(op, args);
      try {
        await api[op]!.apply(d.api, args);
      } catch {
        fails++;
      }
      const c = tracker.change(scope);
      if (c !== undefined) {
        changes++;
        set.apply(c);
        rules.apply(c);
        rules.nextScript();
      }
      const want = normal(fromScratch(d));
      if (JSON.stringify(normal(set.spec())) !== JSON.stringify(want) ||
          JSON.stringify(normal(tracker.spec())) !== JSON.stringify(want)) {
        if (mismatches++ === 0) t.same(normal(set.spec()), want, `seed ${seed} step ${step}: ${op} ${JSON.stringify(args)}`);
      }
      const ruleWant = hideRules(fromScratch(d)).sort();
      if (JSON.stringify(rules.rules().sort()) !== JSON.stringify(ruleWant)) {
        if (mismatches++ === 0) t.same(rules.rules().sort(), ruleWant, `rules, seed ${seed} step ${step}`);
      }
      const vip4Now = vip4Set(d);
      const added = [...vip4Now].filter((v) => !vip4Before.has(v));
      const got = tracker.takeNewVip4();
      if (JSON.stringify(got) !== JSON.stringify(added)) {
        if (mismatches++ === 0) t.same(got, added, `new VIPs, seed ${seed} step ${step}`);
      }
      vip4Before = vip4Now;
      const vip6Now = vip6Set(d);
      const added6 = [...vip6Now].filter((v) => !vip6Before.has(v));
      const got6 = tracker.takeNewVip6().map((w) => formatIp6(w[0]!, w[1]!, w[2]!, w[3]!));
      if (JSON.stringify(got6) !== JSON.stringify(added6)) {
        if (mismatches++ === 0) t.same(got6, added6, `new IPv6 VIPs, seed ${seed} step ${step}`);
      }
      vip6Before = vip6Now;
    }
    t.equal(mismatches, 0, `seed ${seed}: 1500 operations (${fails} failed, ${changes} changes), state always equal`);
    t.ok(fails > 200 && changes > 200, 'the script exercises both failures and changes');
  }
});

t.test('operations that cannot change what is hidden report nothing', async (t) => {
  const d = new Director({ mac: new Uint8Array(6), ip4: 0, neigh: new StaticNeighbours(), capacity: 1024 });
  const tracker = new HideTracker(d.table, d.marks);
  const key: ServiceKey = { af: 4, protocol: 6, addr: '10.0.0.1', port: 80, fwmark: 0 };
  const run = async (op: string, args: unknown[]): Promise<HideChange | undefined> => {
    const scope = tracker.scope(op, args);
    try {
      await (d.api as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[op]!.apply(d.api, args);
    } catch { /* failures are part of the check */ }
    return tracker.change(scope);
  };
  const add = await run('addService', [{ ...key, schedName: 'rr', flags: 0, timeout: 0, netmask: '255.255.255.255', pe: '' }]);
  t.same(add, { add: { vips: [{ af: 4, proto: 6, addr: '10.0.0.1', port: 80 }], reals: [] }, del: { vips: [], reals: [] } });
  const dr: DestSpec = { af: 4, addr: '192.168.0.1', port: 80, fwdMethod: FWD_DROUTE, weight: 1, uThreshold: 0, lThreshold: 0, tunType: 0, tunPort: 0, tunFlags: 0 };
  t.equal(await run('addDest', [key, dr]), undefined, 'a DR dest hides nothing');
  t.same(await run('editDest', [key, { ...dr, fwdMethod: FWD_MASQ }]),
    { add: { vips: [], reals: [{ af: 4, proto: 6, addr: '192.168.0.1', port: 80 }] }, del: { vips: [], reals: [] } },
    'turning it into NAT hides its replies');
  t.equal(await run('addService', [{ ...key, schedName: 'rr', flags: 0, timeout: 0, netmask: '255.255.255.255', pe: '' }]), undefined, 'EEXIST');
  t.equal(await run('zero', [null]), undefined);
  t.equal(await run('setTimeouts', [{ tcp: 10, tcpFin: 0, udp: 0 }]), undefined);
  t.same(await run('flush', []), {
    add: { vips: [], reals: [] },
    del: { vips: [{ af: 4, proto: 6, addr: '10.0.0.1', port: 80 }], reals: [{ af: 4, proto: 6, addr: '192.168.0.1', port: 80 }] },
  });
});

t.test('nft scripts: the classic one-chain table while small, part chains one at a time when big', async (t) => {
  const g = new HideRuleset('ulvs_1');
  t.equal(g.nextScript(), 'add table inet ulvs_1\ndelete table inet ulvs_1\ntable inet ulvs_1 {\n  chain prerouting {\n' +
    '    type filter hook prerouting priority raw; policy accept;\n  }\n}\n', 'the empty table install writes');
  t.equal(g.nextScript(), null, 'nothing changed, nothing to run');
  const vip = (i: number) => ({ af: 4 as const, proto: 6, addr: formatIp4(0x0a000000 + i), port: 80 });
  const real = (i: number) => ({ af: 4 as const, proto: 0, addr: formatIp4(0xac100000 + i), port: 8080 });
  g.apply({ add: { vips: [vip(1)], reals: [real(1)] }, del: { vips: [], reals: [] } });
  t.equal(g.nextScript(), 'add table inet ulvs_1\ndelete table inet ulvs_1\ntable inet ulvs_1 {\n  chain prerouting {\n' +
    '    type filter hook prerouting priority raw; policy accept;\n' +
    '    ip daddr 10.0.0.1 meta l4proto tcp th dport 80 drop\n' +
    '    ip saddr 172.16.0.1 meta l4proto tcp th sport 8080 fib daddr type != local drop\n' +
    '    ip saddr 172.16.0.1 meta l4proto udp th sport 8080 fib daddr type != local drop\n' +
    '    ip saddr 172.16.0.1 meta l4proto sctp th sport 8080 fib daddr type != local drop\n  }\n}\n');
  // The same real from a second dest: still one rule, and it stays until both are gone.
  g.apply({ add: { vips: [], reals: [real(1)] }, del: { vips: [], reals: [] } });
  t.equal(g.nextScript(), null, 'a second owner of the same rules changes nothing');
  g.apply({ add: { vips: [], reals: [] }, del: { vips: [], reals: [real(1)] } });
  t.equal(g.nextScript(), null);
  t.equal(g.size, 4);

  for (let i = 2; i <= 2000; i++) g.apply({ add: { vips: [vip(i)], reals: [] }, del: { vips: [], reals: [] } });
  const big = g.nextScript()!;
  t.ok(g.layout > 1, `2,003 rules are spread over ${g.layout} part chains`);
  t.match(big, /^add table inet ulvs_1\ndelete table inet ulvs_1\n/, 'changing the layout replaces the table');
  t.equal(big.split('\n').filter((l) => / jump h\d+$/.test(l)).length, g.layout, 'the base chain jumps to every part');
  t.equal(big.split('\n').filter((l) => l.endsWith(' drop')).length, g.size, 'every rule once');

  g.apply({ add: { vips: [vip(5000)], reals: [] }, del: { vips: [vip(7)], reals: [] } });
  const step = g.nextScript()!;
  t.notMatch(step, /delete table/, 'a change does not replace the table');
  const flushed = step.split('\n').filter((l) => l.startsWith('flush chain inet ulvs_1 h'));
  t.ok(flushed.length >= 1 && flushed.length <= 2, 'only the parts that changed are rewritten');
  t.ok(step.split('\n').filter((l) => l.endsWith(' drop')).length < g.size / 8, 'a small fraction of the rules is sent');
  t.match(step, /ip daddr 10\.0\.19\.136 meta l4proto tcp th dport 80 drop/);
  t.notMatch(step, /ip daddr 10\.0\.0\.7 /);

  g.apply({ add: { vips: [vip(5001)], reals: [real(5001)] }, del: { vips: [], reals: [] } });
  const add = g.nextScript()!;
  t.notMatch(add, /flush chain/, 'an addition only appends');
  t.equal(add.split('\n').filter((l) => l.endsWith(' drop')).length, 4, 'the four new rules, nothing else');

  g.failed();
  t.match(g.nextScript()!, /^add table inet ulvs_1\ndelete table inet ulvs_1\n/, 'after a failure the table is written whole');

  for (let i = 2; i <= 2000; i++) g.apply({ add: { vips: [], reals: [] }, del: { vips: [vip(i)], reals: [] } });
  const small = g.nextScript()!;
  t.equal(g.layout, 1, 'back to one chain when small again');
  t.notMatch(small, /jump/);
  t.equal(small.split('\n').filter((l) => l.endsWith(' drop')).length, g.size);
});
