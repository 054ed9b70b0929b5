import t from 'tap';
import {
  PROTO_SCTP, PROTO_TCP, PROTO_UDP, SVC_F_HASHED, SVC_F_ONEPACKET, SVC_F_PERSISTENT, SVC_F_SCHED1,
} from '../../src/svc/types.js';
import { formatIp } from '../../src/util/ip.js';
import { Timeouts as ConnTimeouts } from '../../src/conn/timeouts.js';
import { timeoutStoreOf } from '../../src/svc/table.js';
import { addr, dst, errno, fwm, makeTable, proto, recorder, svcCfg, tcp } from './helpers.js';

t.test('add service: fields, scheduler binding, HASHED, estimator', async (t) => {
  const rec = recorder();
  const { table } = makeTable([rec.sched]);
  const v0 = table.version;
  const svc = table.addService(svcCfg(tcp('10.0.0.1', 80), { schedName: 'rec', flags: SVC_F_PERSISTENT, timeout: 360 }));
  t.equal(svc.protocol, PROTO_TCP);
  t.equal(formatIp(svc.addr), '10.0.0.1');
  t.equal(svc.port, 80);
  t.equal(svc.flags, SVC_F_PERSISTENT | SVC_F_HASHED, 'hashed while linked, like the kernel reports it');
  t.equal(svc.timeout, 360);
  t.equal(svc.schedName, 'rec');
  t.equal(svc.scheduler, rec.sched);
  t.same(rec.calls, ['init 0']);
  t.same(svc.schedData, { owner: 'rec' });
  t.ok(table.estimator.has(svc.stats), 'service stats are estimated');
  t.ok(table.estimator.isStarted, 'estimation starts with the first service');
  t.ok(table.version > v0, 'version bumped');
  t.equal(table.serviceById(svc.id), svc);
  t.equal(table.info().numServices, 1);
  t.same(table.info(), { version: 0x010201, connTabSize: 4096, numServices: 1 });
});

t.test('estimation does not start before the first service', async (t) => {
  const { table } = makeTable();
  t.equal(table.estimator.isStarted, false);
  t.ok(table.estimator.has(table.totalStats), 'totals are registered from the start');
});

t.test('scheduler "none", real schedulers, persistence engines', async (t) => {
  const { table } = makeTable();
  const a = table.addService(svcCfg(tcp('10.0.0.1', 80), { schedName: 'none' }));
  t.equal(a.scheduler, null);
  t.equal(a.schedName, 'none');
  const b = table.addService(svcCfg(tcp('10.0.0.1', 81), { schedName: 'rr', pe: 'sip' }));
  t.equal(b.scheduler?.name, 'rr');
  t.equal(b.pe, 'sip');
  const c = table.addService(svcCfg(tcp('10.0.0.1', 82), { pe: '' }));
  t.equal(c.pe, null, 'empty persistence engine = none');
  t.equal(c.schedName, 'wlc');
});

t.test('add service errors', async (t) => {
  const { table } = makeTable();
  table.addService(svcCfg(tcp('10.0.0.1', 80)));
  t.equal(errno(() => table.addService(svcCfg(tcp('10.0.0.1', 80)))), 'EEXIST');
  t.equal(errno(() => table.addService(svcCfg(tcp('10.0.0.1', 80), { schedName: 'bogus' }))), 'EEXIST',
    'existence is checked before the scheduler');
  t.equal(errno(() => table.addService(svcCfg(tcp('10.0.0.1', 81), { schedName: 'bogus' }))), 'ENOENT');
  t.equal(errno(() => table.addService(svcCfg(tcp('10.0.0.1', 81), { schedName: '' }))), 'ENOENT');
  t.equal(errno(() => table.addService(svcCfg(tcp('10.0.0.1', 81), { pe: 'nope' }))), 'ENOENT');
  t.equal(errno(() => table.addService(svcCfg(tcp('10.0.0.1', 81), { schedName: 'x'.repeat(16) }))), 'EINVAL',
    'scheduler name longer than 15');
  t.equal(errno(() => table.addService(svcCfg(proto(1, '10.0.0.1', 81)))), 'EINVAL', 'ICMP is not a service protocol');
  t.equal(errno(() => table.addService(svcCfg({ ...tcp('10.0.0.1', 81), port: 65536 }))), 'EINVAL');
  t.equal(errno(() => table.addService(svcCfg({ ...tcp('10.0.0.1', 81), af: 6 }))), 'EINVAL', 'address family mismatch');
  t.equal(errno(() => table.addService(svcCfg({ ...tcp('10.0.0.1', 81), af: 5 as 4 }))), 'EAFNOSUPPORT');
  t.equal(errno(() => table.addService(svcCfg(tcp('10.0.0.1', 81), { flags: -1 }))), 'EINVAL');
  t.equal(table.numServices, 1, 'failed adds leave nothing behind');
  // Same address and port with another protocol or family is another service.
  t.equal(errno(() => table.addService(svcCfg(proto(PROTO_UDP, '10.0.0.1', 80)))), null);
  t.equal(errno(() => table.addService(svcCfg(proto(PROTO_SCTP, '10.0.0.1', 80)))), null);
  t.equal(errno(() => table.addService(svcCfg(tcp('::ffff:10.0.0.1', 80)))), null);
});

t.test('IPv6 services: prefix length must be 1..128, IPv4 masks are not checked', async (t) => {
  const { table } = makeTable();
  t.equal(errno(() => table.addService(svcCfg(tcp('2001:db8::1', 80), { netmask: 0 }))), 'EINVAL');
  t.equal(errno(() => table.addService(svcCfg(tcp('2001:db8::1', 80), { netmask: 129 }))), 'EINVAL');
  t.equal(errno(() => table.addService(svcCfg(tcp('2001:db8::1', 80), { netmask: 1 }))), null);
  t.equal(errno(() => table.addService(svcCfg(tcp('2001:db8::1', 81), { netmask: 128 }))), null);
  t.equal(errno(() => table.addService(svcCfg(tcp('10.0.0.1', 80), { netmask: 0x0000ff0f }))), null,
    'a non-contiguous IPv4 mask is accepted');
  t.equal(errno(() => table.editService(svcCfg(tcp('2001:db8::1', 80), { netmask: 200 }))), 'EINVAL');
  t.equal(table.getService(tcp('2001:db8::1', 80))!.netmask, 1, 'unchanged after a refused edit');
});

t.test('fwmark services are keyed by (af, mark)', async (t) => {
  const { table } = makeTable();
  const a = table.addService(svcCfg(fwm(7, 4)));
  t.equal(a.protocol, 0);
  t.equal(a.port, 0);
  t.equal(formatIp(a.addr), '0.0.0.0');
  t.equal(errno(() => table.addService(svcCfg(fwm(7, 4)))), 'EEXIST');
  t.equal(errno(() => table.addService(svcCfg(fwm(7, 6)))), null, 'same mark, other family');
  t.equal(errno(() => table.addService(svcCfg({ ...fwm(8, 4), protocol: 99, port: 5 }))), null,
    'protocol and port of a fwmark key are ignored');
  t.equal(table.getService({ ...fwm(8, 4), protocol: 17 })?.fwmark, 8);
  t.equal(errno(() => table.addService(svcCfg({ ...fwm(1, 4), fwmark: 2 ** 32 }))), 'EINVAL');
});

t.test('edit service is a full replacement; scheduler rebinding follows the name', async (t) => {
  const a = recorder('a');
  const b = recorder('b');
  const { table } = makeTable([a.sched, b.sched]);
  const key = tcp('10.0.0.1', 80);
  const svc = table.addService(svcCfg(key, { schedName: 'a', flags: SVC_F_PERSISTENT | SVC_F_SCHED1, timeout: 300, netmask: 0xffffff00, pe: 'sip' }));
  table.addDest(key, dst('10.1.0.1', 80));
  a.calls.length = 0;

  const v = table.version;
  table.editService(svcCfg(key, { schedName: 'a', flags: SVC_F_ONEPACKET, timeout: 0 }));
  t.same(a.calls, [], 'same scheduler: no done/init');
  t.equal(svc.flags, SVC_F_ONEPACKET | SVC_F_HASHED, 'flags replaced, HASHED kept');
  t.equal(svc.timeout, 0);
  t.equal(svc.netmask, 0xffffffff, 'netmask replaced by the default');
  t.equal(svc.pe, null, 'persistence engine removed when not given');
  t.ok(table.version > v);

  table.editService(svcCfg(key, { schedName: 'b' }));
  t.same(a.calls, ['done']);
  t.same(b.calls, ['init 1'], 'the new scheduler sees the existing dests');
  t.equal(svc.schedName, 'b');

  table.editService(svcCfg(key, { schedName: 'none' }));
  t.same(b.calls, ['init 1', 'done']);
  t.equal(svc.scheduler, null);
  t.equal(svc.schedName, 'none');

  t.equal(errno(() => table.editService(svcCfg(tcp('10.0.0.1', 81)))), 'ESRCH');
  t.equal(errno(() => table.editService(svcCfg(key, { schedName: 'bogus' }))), 'ENOENT');
  t.equal(errno(() => table.editService(svcCfg(key, { pe: 'bogus' }))), 'ENOENT');
  t.equal(svc.schedName, 'none', 'unchanged after refused edits');
});

t.test('a scheduler whose init fails: add fails cleanly, edit leaves no scheduler', async (t) => {
  const bad = recorder('bad');
  bad.sched.init = () => { throw new Error('no memory'); };
  const { table } = makeTable([bad.sched]);
  t.throws(() => table.addService(svcCfg(tcp('10.0.0.1', 80), { schedName: 'bad' })));
  t.equal(table.numServices, 0);
  const svc = table.addService(svcCfg(tcp('10.0.0.1', 80), { schedName: 'rr' }));
  t.throws(() => table.editService(svcCfg(tcp('10.0.0.1', 80), { schedName: 'bad' })));
  t.equal(svc.scheduler, null);
  t.equal(svc.schedName, 'none');
});

t.test('delete service: unbinds, trashes dests without delDest, reports removals', async (t) => {
  const rec = recorder();
  const { table } = makeTable([rec.sched]);
  const key = tcp('10.0.0.1', 80);
  const svc = table.addService(svcCfg(key, { schedName: 'rec' }));
  const d1 = table.addDest(key, dst('10.1.0.1', 80));
  const d2 = table.addDest(key, dst('10.1.0.2', 80));
  rec.calls.length = 0;
  const removed: string[] = [];
  table.onDestRemoved = (d) => removed.push(`dest ${formatIp(d.addr)}`);
  table.onServiceRemoved = (s) => removed.push(`svc ${s.port}`);
  table.delService(key);
  t.same(rec.calls, ['done'], 'no del_dest calls while deleting a service');
  t.same(removed, ['dest 10.1.0.2', 'dest 10.1.0.1', 'svc 80']);
  t.equal(table.getService(key), null);
  t.equal(svc.flags & SVC_F_HASHED, 0);
  t.equal(svc.dests.length, 0);
  t.equal(d1.flags & 1, 0, 'dests no longer AVAILABLE');
  t.same(table.trashedDests(), [d1, d2], 'trash: newest first');
  t.equal(table.serviceById(svc.id), svc, 'still reachable by id while referenced');
  t.notOk(table.estimator.has(svc.stats));
  t.equal(errno(() => table.delService(key)), 'ESRCH');
  t.equal(table.findService(4, PROTO_TCP, Uint32Array.of(addr('10.0.0.1').w0, 0, 0, 0), 80, 0), null);
});

t.test('flush removes every service', async (t) => {
  const { table } = makeTable();
  table.addService(svcCfg(tcp('10.0.0.1', 80)));
  table.addService(svcCfg(tcp('2001:db8::1', 80)));
  table.addService(svcCfg(fwm(3)));
  table.addDest(tcp('10.0.0.1', 80), dst('10.1.0.1', 80));
  let n = 0;
  table.onServiceRemoved = () => n++;
  table.flush();
  t.equal(table.numServices, 0);
  t.equal(n, 3);
  t.same(table.services(), []);
  t.equal(table.trashedDests().length, 1);
});

t.test('listing order: service hash buckets, newest first within a bucket, fwmark table last', async (t) => {
  const { table } = makeTable();
  // ip_vs_svc_hashkey low byte = proto ^ addr ^ (port >> 8) ^ port:
  //   TCP 10.0.0.1:80 → 6^1^80 = 87; TCP 10.0.0.2:83 → 6^2^83 = 87; TCP 10.0.0.1:81 → 6^1^81 = 86.
  // Fwmark bucket = mark & 255: mark 1 → 1, mark 257 → 1, mark 0x7f → 127.
  table.addService(svcCfg(fwm(0x7f)));
  table.addService(svcCfg(tcp('10.0.0.1', 80)));
  table.addService(svcCfg(fwm(1)));
  table.addService(svcCfg(tcp('10.0.0.2', 83)));
  table.addService(svcCfg(fwm(257)));
  table.addService(svcCfg(tcp('10.0.0.1', 81)));
  const names = table.services().map((s) => (s.fwmark ? `fwm ${s.fwmark}` : `${formatIp(s.addr)}:${s.port}`));
  t.same(names, ['10.0.0.1:81', '10.0.0.2:83', '10.0.0.1:80', 'fwm 257', 'fwm 1', 'fwm 127']);
  t.same(table.getServiceEntries().map((e) => e.port || e.fwmark), [81, 83, 80, 257, 1, 127]);
});

t.test('listing order after many adds and deletes equals the sort by (table, bucket, newest first)', async (t) => {
  // services() reads per-bucket lists kept in order; this is the definition they must match.
  const { table } = makeTable();
  const bucket = (s: { fwmark: number; protocol: number; port: number; addr: { af: number; w0: number; w1: number; w2: number; w3: number } }) => {
    if (s.fwmark !== 0) return s.fwmark & 0xff;
    const fold = s.addr.af === 4 ? s.addr.w0 : (s.addr.w0 ^ s.addr.w1 ^ s.addr.w2 ^ s.addr.w3) >>> 0;
    return (s.protocol ^ fold ^ (s.port >>> 8) ^ s.port) & 0xff;
  };
  const born = new Map<object, number>();
  let seq = 0;
  let x = 99;
  const r = (n: number): number => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x % n; };
  const keys = [
    ...Array.from({ length: 40 }, (_, i) => tcp(`10.0.${i % 3}.${1 + (i % 7)}`, 80 + i)),
    ...Array.from({ length: 10 }, (_, i) => proto(PROTO_UDP, `2001:db8::${i + 1}`, 53)),
    ...Array.from({ length: 12 }, (_, i) => fwm(1 + 256 * (i % 3) + (i % 4), i % 5 === 0 ? 6 : 4)),
  ];
  let bad = 0;
  for (let step = 0; step < 3000; step++) {
    const k = keys[r(keys.length)]!;
    const s = table.getService(k);
    if (s === null) born.set(table.addService(svcCfg(k)), seq++);
    else if (r(12) === 0) table.flush();
    else table.delService(k);
    const want = [...born.keys()].filter((sv) => table.getService(sv as never) === sv) as ReturnType<typeof table.services>;
    want.sort((a, b) => (a.fwmark !== 0 ? 1 : 0) - (b.fwmark !== 0 ? 1 : 0) || bucket(a) - bucket(b) || born.get(b)! - born.get(a)!);
    const got = table.services();
    if (got.length !== want.length || got.some((sv, i) => sv !== want[i])) bad++;
  }
  t.equal(bad, 0, '3,000 random adds, deletes and flushes: the order is always the sorted one');
});

t.test('timeouts: 0 keeps a value, out-of-range values reject the whole request', async (t) => {
  const { table } = makeTable();
  t.same(table.getTimeouts(), { tcp: 900, tcpFin: 120, udp: 300 });
  table.setTimeouts({ tcp: 3600, tcpFin: 0, udp: 0 });
  t.same(table.getTimeouts(), { tcp: 3600, tcpFin: 120, udp: 300 });
  table.setTimeouts({ tcp: 0, tcpFin: 30, udp: 60 });
  t.same(table.getTimeouts(), { tcp: 3600, tcpFin: 30, udp: 60 });
  // INT_MAX / HZ with HZ = 250: 8589934 s.
  t.equal(errno(() => table.setTimeouts({ tcp: 8589934, tcpFin: 0, udp: 0 })), null);
  t.equal(errno(() => table.setTimeouts({ tcp: 1, tcpFin: 8589935, udp: 0 })), 'EINVAL');
  t.equal(errno(() => table.setTimeouts({ tcp: 1, tcpFin: 0, udp: -1 })), 'EINVAL');
  t.equal(errno(() => table.setTimeouts({ tcp: 1.5, tcpFin: 0, udp: 0 })), 'EINVAL');
  t.same(table.getTimeouts(), { tcp: 8589934, tcpFin: 30, udp: 60 }, 'refused requests change nothing');
});

t.test('timeouts go to the injected store', async (t) => {
  let stored = { tcp: 1, tcpFin: 2, udp: 3 };
  const { table } = makeTable([], { timeouts: { get: () => ({ ...stored }), set: (x) => { stored = x; } } });
  table.setTimeouts({ tcp: 0, tcpFin: 0, udp: 9 });
  t.same(stored, { tcp: 1, tcpFin: 2, udp: 9 });
});

t.test('timeouts reach the connection layer tables', async (t) => {
  const conn = new ConnTimeouts();
  const { table } = makeTable([], { timeouts: timeoutStoreOf(conn) });
  table.setTimeouts({ tcp: 60, tcpFin: 0, udp: 5 });
  t.same(conn.getUser(), { tcp: 60, tcpFin: 120, udp: 5 });
  t.same(table.getTimeouts(), { tcp: 60, tcpFin: 120, udp: 5 });
});

t.test('sysctls through the table: validation and estimator suspension', async (t) => {
  const { table } = makeTable();
  t.equal(errno(() => table.setSysctl('drop_entry', 7)), 'EINVAL');
  table.setSysctl('run_estimation', 0);
  t.equal(table.estimator.suspended, true);
  table.setSysctl('run_estimation', 1);
  t.equal(table.estimator.suspended, false);
  table.setSysctl('lblc_expiration', 60);
  t.equal(table.schedEnv.lblcExpiration, 60, 'SchedEnv reads the live sysctl');
  table.sysctls.lblcr_expiration = 30;
  t.equal(table.schedEnv.lblcrExpiration, 30);
});

t.test('SchedEnv: engine clock and a seeded random source', async (t) => {
  const a = makeTable([], { seed: 42 });
  const b = makeTable([], { seed: 42 });
  const c = makeTable([], { seed: 43 });
  const seq = (x: typeof a) => [x.table.schedEnv.random32(), x.table.schedEnv.random32(), x.table.schedEnv.random32()];
  const sa = seq(a);
  t.same(sa, seq(b), 'same seed, same sequence');
  t.not(sa.join(), seq(c).join());
  for (const v of sa) t.ok(Number.isInteger(v) && v >= 0 && v <= 0xffffffff);
  a.clock.t = 1234.5;
  t.equal(a.table.schedEnv.now(), 1234.5);
});
