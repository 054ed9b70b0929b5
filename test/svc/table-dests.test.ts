import t from 'tap';
import { SYNC_STATE_MASTER, DEST_TRASH_PERIOD } from '../../src/svc/table.js';
import {
  DEST_F_AVAILABLE, DEST_F_OVERLOAD, FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, ST_CONNS, ST_INPKTS, TUN_GUE, TUN_IPIP,
} from '../../src/svc/types.js';
import type { DestConfig } from '../../src/svc/table.js';
import type { Dest, Service } from '../../src/svc/types.js';
import { formatIp } from '../../src/util/ip.js';
import { dst, destNames, errno, fwm, makeTable, proto, recorder, svcCfg, tcp } from './helpers.js';

t.test('dests are listed newest first; the scheduler sees the dest already at index 0', async (t) => {
  const rec = recorder();
  const { table } = makeTable([rec.sched]);
  const key = tcp('10.0.0.1', 80);
  table.addService(svcCfg(key, { schedName: 'rec' }));
  rec.calls.length = 0;
  const d1 = table.addDest(key, dst('10.1.0.1', 80, { weight: 3 }));
  table.addDest(key, dst('10.1.0.2', 80));
  table.addDest(key, dst('10.1.0.3', 8080));
  t.same(destNames(table, key), ['10.1.0.3:8080', '10.1.0.2:80', '10.1.0.1:80']);
  t.same(rec.calls, ['add 10.1.0.1:80@0 n=1', 'add 10.1.0.2:80@0 n=2', 'add 10.1.0.3:8080@0 n=3']);
  t.equal(d1.weight, 3);
  t.equal(d1.lastWeight, 3);
  t.equal(d1.fwdMethod, FWD_DROUTE);
  t.equal(d1.flags, DEST_F_AVAILABLE);
  t.equal(table.destById(d1.id), d1);
  t.ok(table.estimator.has(d1.stats));
  t.equal(table.getService(key)!.dests[2], d1);
});

t.test('add dest errors in the kernel order', async (t) => {
  const { table } = makeTable();
  const key = tcp('10.0.0.1', 80);
  t.equal(errno(() => table.addDest(key, dst('10.1.0.1', 80))), 'ESRCH');
  table.addService(svcCfg(key));
  table.addDest(key, dst('10.1.0.1', 80));
  t.equal(errno(() => table.addDest(key, dst('10.1.0.1', 80))), 'EEXIST');
  t.equal(errno(() => table.addDest(key, dst('10.1.0.1', 80, { weight: 5 }))), 'EEXIST', 'any config');
  t.equal(errno(() => table.addDest(key, dst('10.1.0.1', 81))), null, 'other port, other dest');
  t.equal(errno(() => table.addDest(key, dst('10.1.0.2', 80, { weight: -1 }))), 'ERANGE');
  t.equal(errno(() => table.addDest(key, dst('10.1.0.2', 80, { weight: 2 ** 31 }))), 'ERANGE', 'above INT_MAX');
  t.equal(errno(() => table.addDest(key, dst('10.1.0.2', 80, { weight: 2 ** 31 - 1 }))), null);
  t.equal(errno(() => table.addDest(key, dst('10.1.0.3', 80, { lThreshold: 5 }))), 'ERANGE',
    '-y without -x: upper threshold 0 is below the lower one');
  t.equal(errno(() => table.addDest(key, dst('10.1.0.3', 80, { lThreshold: 5, uThreshold: 4 }))), 'ERANGE');
  t.equal(errno(() => table.addDest(key, dst('10.1.0.1', 80, { lThreshold: 5 }))), 'ERANGE',
    'ERANGE is decided before EEXIST');
  t.equal(errno(() => table.addDest(key, dst('10.1.0.3', 80, { fwdMethod: FWD_TUNNEL, tunType: TUN_GUE, tunPort: 0 }))), 'EINVAL');
  t.equal(errno(() => table.addDest(key, dst('10.1.0.3', 80, { fwdMethod: FWD_TUNNEL, tunType: TUN_GUE, tunPort: 6080 }))), null);
  t.equal(errno(() => table.addDest(key, dst('10.1.0.4', 80, { fwdMethod: 7 }))), 'EINVAL');
  t.equal(errno(() => table.addDest(key, dst('10.1.0.4', 80, { tunType: 9 }))), 'EINVAL');
  t.equal(errno(() => table.addDest(key, dst('10.1.0.4', 65536))), 'EINVAL');
  t.equal(errno(() => table.addDest(key, { ...dst('10.1.0.4', 80), af: 6 })), 'EINVAL', 'family/address mismatch');
  t.equal(errno(() => table.addDest(key, { ...dst('10.1.0.4', 80), af: 3 as 4 })), 'EAFNOSUPPORT');
});

t.test('dest address classes (ip_vs_new_dest)', async (t) => {
  const { table } = makeTable();
  const k4 = tcp('10.0.0.1', 80);
  const k6 = tcp('2001:db8::1', 80);
  table.addService(svcCfg(k4));
  table.addService(svcCfg(k6));
  for (const [a, want] of [
    ['0.0.0.0', 'EINVAL'], ['0.1.2.3', 'EINVAL'], ['255.255.255.255', 'EINVAL'], ['224.0.0.1', 'EINVAL'],
    ['239.255.0.1', 'EINVAL'], ['127.0.0.1', null], ['10.1.0.1', null], ['192.168.255.255', null],
  ] as const) {
    t.equal(errno(() => table.addDest(k4, dst(a, 80))), want, a);
  }
  for (const [a, want] of [
    ['::', 'EINVAL'], ['ff02::1', 'EINVAL'], ['::ffff:10.0.0.1', 'EINVAL'], ['fe80::1', 'EINVAL'],
    ['::1', null], ['2001:db8::2', null], ['fc00::1', null], ['fec0::1', null], ['::10.0.0.1', null],
  ] as const) {
    t.equal(errno(() => table.addDest(k6, dst(a, 80))), want, a);
  }
  const local = makeTable([], { addrHooks: { isLocalAddr: (x) => x.w0 === 0xfe800000 && x.w3 === 1 } });
  local.table.addService(svcCfg(k6));
  t.equal(errno(() => local.table.addDest(k6, dst('fe80::1', 80))), null, 'a local link-local address is accepted');
  t.equal(errno(() => local.table.addDest(k6, dst('fe80::2', 80))), 'EINVAL');
  const bc = makeTable([], { addrHooks: { isLocalBroadcast4: (a) => a === 0x0a0000ff } });
  bc.table.addService(svcCfg(k4));
  t.equal(errno(() => bc.table.addDest(k4, dst('10.0.0.255', 80))), 'EINVAL', 'a subnet broadcast is refused');
});

t.test('mixed-family dests: tunnel only, and not while a sync daemon runs', async (t) => {
  const { table } = makeTable();
  const key = tcp('10.0.0.1', 80);
  table.addService(svcCfg(key));
  t.equal(errno(() => table.addDest(key, dst('2001:db8::5', 80))), 'EINVAL', 'DR cannot change family');
  t.equal(errno(() => table.addDest(key, dst('2001:db8::5', 80, { fwdMethod: FWD_MASQ }))), 'EINVAL');
  t.equal(errno(() => table.addDest(key, dst('2001:db8::5', 80, { fwdMethod: FWD_TUNNEL }))), null);
  t.equal(table.mixedFamilyDests, 1);
  t.equal(errno(() => table.editDest(key, dst('2001:db8::5', 80, { fwdMethod: FWD_DROUTE }))), 'EINVAL');
  table.syncState = SYNC_STATE_MASTER;
  t.equal(errno(() => table.addDest(key, dst('2001:db8::6', 80, { fwdMethod: FWD_TUNNEL }))), 'EINVAL');
  t.equal(errno(() => table.delDest(key, dst('2001:db8::5', 80))), null, 'deleting one is always allowed');
  t.equal(table.mixedFamilyDests, 0);
});

t.test('edit dest: update callback, weights and last_weight', async (t) => {
  const rec = recorder();
  const { table } = makeTable([rec.sched]);
  const key = tcp('10.0.0.1', 80);
  table.addService(svcCfg(key, { schedName: 'rec' }));
  const d = table.addDest(key, dst('10.1.0.1', 80, { weight: 3 }));
  table.addDest(key, dst('10.1.0.2', 80));
  rec.calls.length = 0;
  table.editDest(key, dst('10.1.0.1', 80, { weight: 0 }));
  t.equal(d.weight, 0);
  t.equal(d.lastWeight, 3, 'weight 0 keeps the last non-zero weight');
  table.editDest(key, dst('10.1.0.1', 80, { weight: 7, fwdMethod: FWD_MASQ }));
  t.equal(d.lastWeight, 7);
  t.equal(d.fwdMethod, FWD_MASQ);
  t.same(rec.calls, ['upd 10.1.0.1:80 w=0', 'upd 10.1.0.1:80 w=7']);
  t.same(destNames(table, key), ['10.1.0.2:80', '10.1.0.1:80'], 'editing does not move a dest');
  t.equal(errno(() => table.editDest(key, dst('10.1.0.9', 80))), 'ENOENT');
  t.equal(errno(() => table.editDest(tcp('10.0.0.9', 80), dst('10.1.0.1', 80))), 'ESRCH');
  t.equal(errno(() => table.editDest(key, dst('10.1.0.1', 80, { weight: -2 }))), 'ERANGE');
  t.equal(errno(() => table.editDest(key, dst('10.1.0.1', 80, { uThreshold: 1, lThreshold: 2 }))), 'ERANGE');
  t.equal(d.weight, 7, 'unchanged after refused edits');
});

t.test('overload flag on edit: cleared when u_threshold is removed or raised', async (t) => {
  const { table } = makeTable();
  const key = tcp('10.0.0.1', 80);
  table.addService(svcCfg(key));
  const d = table.addDest(key, dst('10.1.0.1', 80, { uThreshold: 10 }));
  const overload = () => { d.flags |= DEST_F_OVERLOAD; };
  const isOver = () => (d.flags & DEST_F_OVERLOAD) !== 0;

  overload();
  table.editDest(key, dst('10.1.0.1', 80, { uThreshold: 10 }));
  t.ok(isOver(), 'same threshold: stays overloaded');
  table.editDest(key, dst('10.1.0.1', 80, { uThreshold: 5 }));
  t.ok(isOver(), 'lower threshold: stays overloaded');
  table.editDest(key, dst('10.1.0.1', 80, { uThreshold: 6 }));
  t.notOk(isOver(), 'raised threshold clears it');
  overload();
  table.editDest(key, dst('10.1.0.1', 80, { uThreshold: 0 }));
  t.notOk(isOver(), 'no threshold clears it');
  t.equal(d.flags & DEST_F_AVAILABLE, DEST_F_AVAILABLE);
  table.editDest(key, dst('10.1.0.1', 80, { uThreshold: 20, lThreshold: 10 }));
  t.equal(d.uThreshold, 20);
  t.equal(d.lThreshold, 10);
});

t.test('delete dest: unlink, delDest with the old index, trash, hook', async (t) => {
  const rec = recorder();
  const { table, clock } = makeTable([rec.sched]);
  const key = tcp('10.0.0.1', 80);
  table.addService(svcCfg(key, { schedName: 'rec' }));
  table.addDest(key, dst('10.1.0.1', 80));
  const d2 = table.addDest(key, dst('10.1.0.2', 80));
  table.addDest(key, dst('10.1.0.3', 80));
  rec.calls.length = 0;
  const seen: number[] = [];
  table.onDestRemoved = (d) => seen.push(d.id);
  clock.t = 1500;
  table.delDest(key, dst('10.1.0.2', 80));
  t.same(rec.calls, ['del 10.1.0.2:80@1 n=2'], 'called after removal with the old position');
  t.same(destNames(table, key), ['10.1.0.3:80', '10.1.0.1:80']);
  t.equal(d2.flags & DEST_F_AVAILABLE, 0);
  t.equal(d2.trashedAt, 1500);
  t.same(seen, [d2.id]);
  t.same(table.trashedDests(), [d2]);
  t.equal(table.destById(d2.id), d2, 'still reachable by id');
  t.notOk(table.estimator.has(d2.stats));
  t.equal(errno(() => table.delDest(key, dst('10.1.0.2', 80))), 'ENOENT');
  t.equal(errno(() => table.delDest(tcp('10.0.0.2', 80), dst('10.1.0.1', 80))), 'ESRCH');
});

t.test('trash revival keeps the dest, its counters and connections', async (t) => {
  const rec = recorder();
  const { table } = makeTable([rec.sched]);
  const key = tcp('10.0.0.1', 80);
  table.addService(svcCfg(key, { schedName: 'rec' }));
  const d = table.addDest(key, dst('10.1.0.1', 80, { weight: 2, uThreshold: 50 }));
  table.addDest(key, dst('10.1.0.2', 80));
  d.stats.cnt[ST_CONNS] = 42;
  d.stats.cnt[ST_INPKTS] = 1000;
  d.activeConns = 3;
  d.refcnt = 3;
  d.flags |= DEST_F_OVERLOAD;
  table.delDest(key, dst('10.1.0.1', 80));
  rec.calls.length = 0;
  const back = table.addDest(key, dst('10.1.0.1', 80, { weight: 5, uThreshold: 40, fwdMethod: FWD_MASQ }));
  t.equal(back, d, 'same object');
  t.equal(back.id, d.id, 'same id');
  t.equal(back.stats.cnt[ST_CONNS], 42);
  t.equal(back.stats.zero[ST_CONNS], 0, 'counters not zeroed');
  t.equal(back.activeConns, 3);
  t.equal(back.weight, 5);
  t.equal(back.lastWeight, 5);
  t.equal(back.fwdMethod, FWD_MASQ);
  t.ok(back.flags & DEST_F_OVERLOAD, 'a lower threshold does not clear the overload flag');
  t.ok(back.flags & DEST_F_AVAILABLE);
  t.equal(back.trashedAt, 0);
  t.same(table.trashedDests(), []);
  t.same(destNames(table, key), ['10.1.0.1:80', '10.1.0.2:80'], 'revived at the head like a new dest');
  t.same(rec.calls, ['add 10.1.0.1:80@0 n=2']);
  t.ok(table.estimator.has(d.stats));
});

t.test('revival into a re-created service zeroes the dest stats', async (t) => {
  const { table } = makeTable();
  const key = tcp('10.0.0.1', 80);
  const old = table.addService(svcCfg(key));
  const d = table.addDest(key, dst('10.1.0.1', 80));
  d.stats.cnt[ST_CONNS] = 9;
  d.refcnt = 1;
  table.delService(key);
  const fresh = table.addService(svcCfg(key, { schedName: 'rr' }));
  t.not(fresh, old);
  const back = table.addDest(key, dst('10.1.0.1', 80));
  t.equal(back, d);
  t.equal(back.svc, fresh);
  t.equal(back.stats.cnt[ST_CONNS], 9);
  t.equal(back.stats.zero[ST_CONNS], 9, 'zero point moved: reported conns restart at 0');
  // A dest trashed from another service identity is never revived.
  const other = tcp('10.0.0.1', 81);
  table.addService(svcCfg(other));
  table.delDest(key, dst('10.1.0.1', 80));
  const nd = table.addDest(other, dst('10.1.0.1', 80));
  t.not(nd, d);
  t.equal(table.trashedDests()[0], d);
});

t.test('fwmark dests revive into a re-created fwmark service', async (t) => {
  const { table } = makeTable();
  table.addService(svcCfg(fwm(5)));
  const d = table.addDest(fwm(5), dst('10.1.0.1', 0));
  d.refcnt = 1;
  table.delService(fwm(5));
  table.addService(svcCfg(fwm(5)));
  t.equal(table.addDest(fwm(5), dst('10.1.0.1', 0)), d);
});

t.test('trash is swept: unreferenced dests freed after 120 idle seconds, ids reused after', async (t) => {
  const { table, clock } = makeTable();
  const key = tcp('10.0.0.1', 80);
  table.addService(svcCfg(key));
  const a = table.addDest(key, dst('10.1.0.1', 80));
  const b = table.addDest(key, dst('10.1.0.2', 80));
  b.refcnt = 2;
  table.delDest(key, dst('10.1.0.1', 80));
  table.delDest(key, dst('10.1.0.2', 80));
  clock.t = 1000;
  table.tick(1000);
  table.tick(1000 + DEST_TRASH_PERIOD - 1);
  t.equal(table.destById(a.id), a, 'kept before the period is over');
  const v = table.version;
  table.tick(1000 + DEST_TRASH_PERIOD);
  t.equal(table.destById(a.id), undefined, 'freed');
  t.ok(table.version > v, 'freeing bumps the version');
  t.same(table.trashedDests(), [b], 'a referenced dest stays');
  b.refcnt = 0;
  table.tick(2000);
  table.tick(2000 + DEST_TRASH_PERIOD);
  t.equal(table.destById(b.id), undefined);
  const c = table.addDest(key, dst('10.1.0.1', 80));
  t.not(c, a, 'once freed, re-adding creates a new dest');
  t.equal(c.stats.cnt[ST_CONNS], 0);
  t.ok(c.id === a.id || c.id === b.id, 'freed ids are reused');
});

t.test('a deleted service is freed once nothing references it', async (t) => {
  const { table } = makeTable();
  const key = tcp('10.0.0.1', 80);
  const svc = table.addService(svcCfg(key));
  const d = table.addDest(key, dst('10.1.0.1', 80));
  svc.refcnt = 1;
  table.delService(key);
  table.tick(0);
  table.tick(DEST_TRASH_PERIOD);
  t.equal(table.destById(d.id), undefined, 'its idle dest is freed');
  t.equal(table.serviceById(svc.id), svc, 'kept while a connection references it');
  svc.refcnt = 0;
  table.tick(DEST_TRASH_PERIOD + 1);
  t.equal(table.serviceById(svc.id), undefined);
  const again = table.addService(svcCfg(key));
  t.equal(again.id, svc.id, 'id reused only after it was freed');
});

t.test('tick drives scheduler upkeep for linked services', async (t) => {
  const rec = recorder();
  let ticks = 0;
  rec.sched.tick = () => { ticks++; };
  const { table } = makeTable([rec.sched]);
  table.addService(svcCfg(tcp('10.0.0.1', 80), { schedName: 'rec' }));
  table.addService(svcCfg(tcp('10.0.0.1', 81), { schedName: 'rec' }));
  table.tick(1);
  t.equal(ticks, 2);
  table.delService(tcp('10.0.0.1', 81));
  table.tick(2);
  t.equal(ticks, 3);
});

t.test('real schedulers from the registry follow the kernel list order', async (t) => {
  const { table } = makeTable();
  const key = tcp('10.0.0.1', 80);
  const svc = table.addService(svcCfg(key, { schedName: 'rr' }));
  table.addDest(key, dst('10.1.0.1', 80));
  table.addDest(key, dst('10.1.0.2', 80));
  table.addDest(key, dst('10.1.0.3', 80));
  const pkt = { af: 4 as const, protocol: 6, saddr: new Uint32Array(4), daddr: new Uint32Array(4), sport: 1, dport: 80 };
  const pick = () => svc.scheduler!.schedule(svc, pkt, table.schedEnv)!.addr.w0 & 0xff;
  t.same([pick(), pick(), pick(), pick()], [3, 2, 1, 3], 'rr walks newest first');
  table.delDest(key, dst('10.1.0.2', 80));
  t.same([pick(), pick()], [1, 3]);
  table.editDest(key, dst('10.1.0.1', 80, { weight: 0 }));
  t.same([pick(), pick()], [3, 3], 'weight 0 is skipped');
});

t.test('tunnel dests keep their tunnel settings', async (t) => {
  const { table } = makeTable();
  const key = tcp('10.0.0.1', 80);
  table.addService(svcCfg(key));
  const d = table.addDest(key, dst('10.1.0.1', 80, { fwdMethod: FWD_TUNNEL, tunType: TUN_GUE, tunPort: 6080, tunFlags: 1 }));
  t.equal(d.tunType, TUN_GUE);
  t.equal(d.tunPort, 6080);
  t.equal(d.tunFlags, 1);
  table.editDest(key, dst('10.1.0.1', 80, { fwdMethod: FWD_TUNNEL, tunType: TUN_IPIP }));
  t.equal(d.tunType, TUN_IPIP);
  t.equal(d.tunPort, 0);
});

t.test('trash lookups behave like the kernel list walk (random operations against a model)', async (t) => {
  // The trash is indexed (a -C followed by -R re-adds every dest of the old table, each
  // looked up in it); this replays the kernel's list semantics next to it: newest first,
  // revival of the first match by dest address/port and service identity, sweeps oldest first.
  const { table, clock } = makeTable();
  const keys = [tcp('10.0.0.1', 80), tcp('10.0.0.1', 81), tcp('10.0.0.2', 80), proto(17, '10.0.0.1', 80),
    fwm(1), fwm(2), fwm(1, 6), tcp('2001:db8::1', 80)];
  const dests = [dst('10.1.0.1', 80), dst('10.1.0.1', 81), dst('10.1.0.2', 80), dst('2001:db8:1::1', 80, { fwdMethod: FWD_TUNNEL })];
  interface Entry { dest: Dest; idleSince: number }
  let model: Entry[] = []; // newest first
  const matches = (d: Dest, svc: Service, dk: DestConfig): boolean => {
    const old = d.svc;
    if (d.port !== dk.port || formatIp(d.addr) !== formatIp(dk.addr) || d.addr.af !== dk.addr.af) return false;
    if (old.fwmark !== svc.fwmark || old.protocol !== svc.protocol) return false;
    return svc.fwmark !== 0 || (formatIp(old.addr) === formatIp(svc.addr) && old.addr.af === svc.addr.af && old.port === svc.port);
  };
  let x = 7;
  const r = (n: number): number => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x % n; };
  let revived = 0;
  let bad = 0;
  for (let step = 0; step < 4000; step++) {
    const key = keys[r(keys.length)]!;
    const dk = dests[r(dests.length)]!;
    const k = r(100);
    const svc = table.getService(key);
    if (k < 15) {
      if (svc === null) table.addService(svcCfg(key));
    } else if (k < 20) {
      if (svc !== null) {
        const gone = [...svc.dests];
        table.delService(key);
        for (const d of gone) model.unshift({ dest: d, idleSince: -1 });
      }
    } else if (k < 55) {
      if (svc === null || svc.dests.some((d) => matches(d, svc, dk) || (d.port === dk.port && formatIp(d.addr) === formatIp(dk.addr)))) continue;
      if (dk.af !== svc.af && dk.fwdMethod !== FWD_TUNNEL) continue;
      const i = model.findIndex((e) => matches(e.dest, svc, dk));
      const got = table.addDest(key, dk);
      if (i >= 0) {
        if (got !== model[i]!.dest) bad++;
        model.splice(i, 1);
        revived++;
      } else if (model.some((e) => e.dest === got)) {
        bad++;
      }
      got.refcnt = r(4) === 0 ? 1 : 0;
    } else if (k < 85) {
      if (svc === null || svc.dests.length === 0) continue;
      const d = svc.dests[r(svc.dests.length)]!;
      table.delDest(key, { af: d.addr.af, addr: d.addr, port: d.port });
      model.unshift({ dest: d, idleSince: -1 });
    } else if (k < 87) {
      for (const s of table.services()) for (const d of s.dests) model.unshift({ dest: d, idleSince: -1 });
      table.flush();
    } else {
      clock.t += r(3) === 0 ? DEST_TRASH_PERIOD : 7;
      const now = clock.t;
      const freed: Dest[] = [];
      for (let i = model.length - 1; i >= 0; i--) {
        const e = model[i]!;
        if (e.dest.refcnt > 0) continue;
        if (e.idleSince < 0) { e.idleSince = now; continue; }
        if (now < e.idleSince + DEST_TRASH_PERIOD) continue;
        freed.push(e.dest);
        model.splice(i, 1);
      }
      table.tick(now);
      if (freed.some((d) => table.destById(d.id) === d)) bad++;
    }
    const have = table.trashedDests();
    if (have.length !== model.length || have.some((d, i) => d !== model[i]!.dest)) {
      if (bad++ === 0) t.fail(`step ${step}: trash order differs from the model`);
      model = have.map((d) => ({ dest: d, idleSince: model.find((e) => e.dest === d)?.idleSince ?? -1 }));
    }
  }
  t.equal(bad, 0, `4000 random operations, ${revived} revivals, same dests revived and freed as the list walk`);
  t.ok(revived > 100, 'revivals are exercised');
});
