import t from 'tap';
import { CtlError, type ConnEntry, type DestSpec, type ServiceKey, type ServiceSpec, type SyncDaemon } from '../../src/ctl/types.js';
import { LocalIpvsApi, type LocalIpvsApiOptions } from '../../src/svc/local-api.js';
import { FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, SVC_F_HASHED, SVC_F_PERSISTENT } from '../../src/svc/types.js';
import { makeTable } from './helpers.js';

function api(opts: LocalIpvsApiOptions = {}): LocalIpvsApi {
  return new LocalIpvsApi(makeTable().table, { interfaceExists: (n) => n === 'eth0' || n === 'eth1', ...opts });
}

async function errno(p: Promise<unknown>): Promise<string | null> {
  try {
    await p;
    return null;
  } catch (e) {
    return e instanceof CtlError ? e.errno : `not a CtlError: ${String(e)}`;
  }
}

const key = (addr: string, port: number, af: 4 | 6 = 4): ServiceKey => ({ af, protocol: 6, addr, port, fwmark: 0 });
const spec = (k: ServiceKey, more: Partial<ServiceSpec> = {}): ServiceSpec =>
  ({ ...k, schedName: 'wlc', flags: 0, timeout: 0, netmask: '', pe: '', ...more });
const dest = (addr: string, port: number, more: Partial<DestSpec> = {}): DestSpec => ({
  af: addr.includes(':') ? 6 : 4, addr, port, fwdMethod: FWD_DROUTE, weight: 1, uThreshold: 0, lThreshold: 0,
  tunType: 0, tunPort: 0, tunFlags: 0, ...more,
});

t.test('services and dests round-trip through the text records', async (t) => {
  const a = api();
  await a.addService(spec(key('10.0.0.1', 80), { schedName: 'rr', flags: SVC_F_PERSISTENT, timeout: 360, netmask: '255.255.0.0' }));
  await a.addDest(key('10.0.0.1', 80), dest('10.1.0.1', 80, { fwdMethod: FWD_MASQ, weight: 3 }));
  await a.addService(spec(key('2001:0db8:0000::0001', 443, 6), { netmask: '64' }));
  const list = await a.getServices();
  t.equal(list.length, 2);
  const v4 = await a.getService(key('10.0.0.1', 80));
  t.match(v4, { addr: '10.0.0.1', schedName: 'rr', flags: SVC_F_PERSISTENT | SVC_F_HASHED, timeout: 360, netmask: '255.255.0.0', numDests: 1 });
  t.match(v4.dests[0], { addr: '10.1.0.1', port: 80, fwdMethod: FWD_MASQ, weight: 3 });
  const v6 = await a.getService(key('2001:db8::1', 443, 6));
  t.equal(v6.addr, '2001:db8::1', 'addresses come back in inet_ntop form');
  t.equal(v6.netmask, '64');
  t.same(await a.getInfo(), { version: 0x010201, connTabSize: 4096, numServices: 2 });
  await a.editDest(key('10.0.0.1', 80), dest('10.1.0.1', 80, { fwdMethod: FWD_MASQ, weight: 9 }));
  t.equal((await a.getService(key('10.0.0.1', 80))).dests[0]!.weight, 9);
  await a.delDest(key('10.0.0.1', 80), dest('10.1.0.1', 80));
  t.equal((await a.getService(key('10.0.0.1', 80))).numDests, 0);
  await a.editService(spec(key('10.0.0.1', 80), { schedName: 'wrr' }));
  t.equal((await a.getService(key('10.0.0.1', 80))).schedName, 'wrr');
  await a.delService(key('10.0.0.1', 80));
  await a.flush();
  t.same(await a.getServices(), []);
});

t.test('fwmark keys ignore address text', async (t) => {
  const a = api();
  await a.addService(spec({ af: 4, protocol: 6, addr: '', port: 0, fwmark: 1 }));
  const e = await a.getService({ af: 4, protocol: 0, addr: 'whatever', port: 9, fwmark: 1 });
  t.match(e, { fwmark: 1, addr: '0.0.0.0', protocol: 0 });
});

t.test('errors reject with the kernel errno', async (t) => {
  const a = api();
  const k = key('10.0.0.1', 80);
  t.equal(await errno(a.editService(spec(k))), 'ESRCH');
  t.equal(await errno(a.delService(k)), 'ESRCH');
  t.equal(await errno(a.zero(k)), 'ESRCH');
  t.equal(await errno(a.getService(k)), 'ESRCH');
  t.equal(await errno(a.addDest(k, dest('10.1.0.1', 80))), 'ESRCH');
  t.equal(await errno(a.addDest(k, dest('not-an-address', 80))), 'ESRCH', 'the service is looked up before the dest is parsed');
  t.equal(await errno(a.editDest(k, dest('10.1.0.1', 80))), 'ESRCH');
  t.equal(await errno(a.delDest(k, dest('10.1.0.1', 80))), 'ESRCH');
  await a.addService(spec(k));
  t.equal(await errno(a.addService(spec(k))), 'EEXIST');
  t.equal(await errno(a.addService(spec(key('10.0.0.1', 81), { schedName: 'nope' }))), 'ENOENT');
  t.equal(await errno(a.addService(spec(key('10.0.0.1', 81), { pe: 'nope' }))), 'ENOENT');
  t.equal(await errno(a.addService(spec(key('10.0.0.300', 81)))), 'EINVAL');
  t.equal(await errno(a.addService(spec(key('::1', 81)))), 'EINVAL', 'IPv6 text for an IPv4 service');
  t.equal(await errno(a.addService(spec({ ...key('10.0.0.1', 81), af: 10 as 4 }))), 'EAFNOSUPPORT');
  t.equal(await errno(a.addService(spec(key('10.0.0.1', 81), { netmask: '255.0.0.x' }))), 'EINVAL');
  t.equal(await errno(a.addService(spec(key('2001:db8::1', 81, 6), { netmask: '129' }))), 'EINVAL');
  t.equal(await errno(a.addService(spec(key('2001:db8::1', 81, 6), { netmask: 'ffff::' }))), 'EINVAL');
  await a.addDest(k, dest('10.1.0.1', 80));
  t.equal(await errno(a.addDest(k, dest('10.1.0.1', 80))), 'EEXIST');
  t.equal(await errno(a.addDest(k, dest('10.1.0.2', 80, { weight: -1 }))), 'ERANGE');
  t.equal(await errno(a.addDest(k, dest('10.1.0.2', 80, { lThreshold: 3 }))), 'ERANGE');
  t.equal(await errno(a.addDest(k, dest('224.0.0.5', 80))), 'EINVAL');
  t.equal(await errno(a.addDest(k, dest('10.1.0.2', 80, { fwdMethod: FWD_TUNNEL, tunType: 1, tunPort: 0 }))), 'EINVAL');
  t.equal(await errno(a.editDest(k, dest('10.1.0.9', 80))), 'ENOENT');
  t.equal(await errno(a.delDest(k, dest('10.1.0.9', 80))), 'ENOENT');
  t.equal(await errno(a.addDest(k, dest('10.1.0.x', 80))), 'EINVAL');
});

t.test('timeouts', async (t) => {
  const a = api();
  t.same(await a.getTimeouts(), { tcp: 900, tcpFin: 120, udp: 300 });
  await a.setTimeouts({ tcp: 100, tcpFin: 0, udp: 0 });
  t.same(await a.getTimeouts(), { tcp: 100, tcpFin: 120, udp: 300 });
  t.equal(await errno(a.setTimeouts({ tcp: -1, tcpFin: 0, udp: 0 })), 'EINVAL');
});

t.test('zero through the API', async (t) => {
  const a = api();
  const k = key('10.0.0.1', 80);
  await a.addService(spec(k));
  a.table.getService({ af: 4, protocol: 6, addr: { af: 4, w0: 0x0a000001, w1: 0, w2: 0, w3: 0 }, port: 80, fwmark: 0 })!.stats.cnt[0] = 7;
  t.equal((await a.getService(k)).stats.conns, 7);
  await a.zero(k);
  t.equal((await a.getService(k)).stats.conns, 0);
  await a.zero(null);
});

t.test('connections come from the injected lister', async (t) => {
  const conns: ConnEntry[] = [{
    protoName: 'TCP', af: 4, caddr: '1.2.3.4', cport: 1000, vaddr: '10.0.0.1', vport: 80, daddr: '10.1.0.1',
    dport: 80, state: 'ESTABLISHED', expires: 899, peName: '', peData: '',
  }];
  t.same(await api({ listConnections: () => conns }).getConnections(), conns);
  t.same(await api().getConnections(), []);
});

t.test('sync daemons: kernel defaults and errors', async (t) => {
  const started: SyncDaemon[] = [];
  const stopped: string[] = [];
  const a = api({ interfaceMtu: (n) => (n === 'eth1' ? 9000 : 1500), onStart: (d) => started.push(d), onStop: (s) => stopped.push(s) });
  const d = (more: Partial<SyncDaemon>): SyncDaemon =>
    ({ state: 'master', mcastIfn: 'eth0', syncId: 0, syncMaxlen: 0, mcastGroup: '', mcastPort: 0, mcastTtl: 0, ...more });
  await a.startDaemon(d({ syncId: 5 }));
  t.same(await a.getDaemons(), [
    { state: 'master', mcastIfn: 'eth0', syncId: 5, syncMaxlen: 1472, mcastGroup: '224.0.0.81', mcastPort: 8848, mcastTtl: 1 },
  ]);
  t.equal(await errno(a.startDaemon(d({}))), 'EEXIST', 'one master at a time');
  t.equal(await errno(a.startDaemon(d({ state: 'backup', mcastIfn: 'eth9' }))), 'ENODEV');
  t.equal(await errno(a.startDaemon(d({ state: 'backup', mcastIfn: '' }))), 'ENODEV');
  t.equal(await errno(a.startDaemon(d({ state: 'backup', mcastIfn: 'x'.repeat(16) }))), 'EINVAL');
  t.equal(await errno(a.startDaemon(d({ state: 'backup', mcastGroup: '10.0.0.1' }))), 'EINVAL', 'group must be multicast');
  t.equal(await errno(a.startDaemon(d({ state: 'backup', mcastGroup: '2001:db8::1' }))), 'EINVAL');
  await a.startDaemon(d({ state: 'backup', mcastIfn: 'eth1', mcastGroup: 'ff02::1:2', mcastPort: 9000, mcastTtl: 5 }));
  const [, b] = await a.getDaemons();
  // Backup: clamp(MTU 9000, 1500, 65535) - 48 for an IPv6 group.
  t.same(b, { state: 'backup', mcastIfn: 'eth1', syncId: 0, syncMaxlen: 8952, mcastGroup: 'ff02::1:2', mcastPort: 9000, mcastTtl: 5 });
  t.equal(started.length, 2);
  t.equal(a.table.syncState, 3);
  await a.stopDaemon('master', 5);
  t.equal(await errno(a.stopDaemon('master', 0)), 'ESRCH');
  t.same(stopped, ['master']);
  t.equal(a.table.syncState, 2);
  await a.stopDaemon('backup', 0);
  t.same(await a.getDaemons(), []);

  // Explicit sync_maxlen is clamped: master to [1, 65535 - 28], backup to [1024, 65535 - 28].
  await a.startDaemon(d({ syncMaxlen: 65535 }));
  t.equal(await errno(a.startDaemon(d({ state: 'backup', syncMaxlen: 70000 }))), 'EINVAL', 'sync_maxlen is a u16');
  await a.startDaemon(d({ state: 'backup', syncMaxlen: 100 }));
  t.same((await a.getDaemons()).map((x) => x.syncMaxlen), [65507, 1024]);
});

t.test('sync daemons and mixed-family dests exclude each other', async (t) => {
  const a = api();
  const k = key('10.0.0.1', 80);
  await a.addService(spec(k));
  await a.addDest(k, dest('2001:db8::5', 80, { fwdMethod: FWD_TUNNEL }));
  const m: SyncDaemon = { state: 'master', mcastIfn: 'eth0', syncId: 0, syncMaxlen: 0, mcastGroup: '', mcastPort: 0, mcastTtl: 0 };
  t.equal(await errno(a.startDaemon(m)), 'EINVAL');
  await a.delDest(k, dest('2001:db8::5', 80));
  await a.startDaemon(m);
  t.equal(await errno(a.addDest(k, dest('2001:db8::6', 80, { fwdMethod: FWD_TUNNEL }))), 'EINVAL');
  t.equal(await errno(a.addDest(k, dest('10.1.0.6', 80))), null, 'same-family dests are fine');
});

t.test('mark rules through the API', async (t) => {
  const a = api();
  const r = { af: 4 as const, protocol: 6, addr: '10.0.0.0', prefix: 8, portLo: 80, portHi: 80, mark: 5 };
  await a.addMarkRule(r);
  t.equal(await errno(a.addMarkRule(r)), 'EEXIST');
  t.same(await a.getMarkRules(), [r]);
  t.equal(a.marks.classify(4, 6, Uint32Array.of(0x0a010203, 0, 0, 0), 80), 5);
  await a.delMarkRule(r);
  t.equal(await errno(a.delMarkRule(r)), 'ENOENT');
});
