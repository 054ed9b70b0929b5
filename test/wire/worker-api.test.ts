/**
 * The IpvsApi the daemon serves when the director lives in the worker must behave
 * exactly like LocalIpvsApi: one script of operations (including every kind of
 * failure) runs against both, and each step's result or error (errno and message)
 * must be the same. No packet I/O is needed, so this runs without root.
 */
import t from 'tap';
import type { IpvsApi } from '../../src/ctl/api.js';
import { CtlError, type DestSpec, type ServiceKey, type ServiceSpec } from '../../src/ctl/types.js';
import { Director } from '../../src/core/director.js';
import { StaticNeighbours } from '../../src/neigh/static.js';
import { DataPlane } from '../../src/io/dataplane.js';
import { HideSet } from '../../src/io/hide-state.js';
import { FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, SVC_F_PERSISTENT } from '../../src/svc/types.js';

const key = (addr: string, port: number, protocol = 6, af: 4 | 6 = 4): ServiceKey => ({ af, protocol, addr, port, fwmark: 0 });
const fw = (mark: number, af: 4 | 6 = 4): ServiceKey => ({ af, protocol: 0, addr: '', port: 0, fwmark: mark });
const spec = (k: ServiceKey, more: Partial<ServiceSpec> = {}): ServiceSpec =>
  ({ ...k, schedName: 'wlc', flags: 0, timeout: 0, netmask: k.af === 4 ? '255.255.255.255' : '128', pe: '', ...more });
const dest = (addr: string, port: number, more: Partial<DestSpec> = {}): DestSpec => ({
  af: addr.includes(':') ? 6 : 4, addr, port, fwdMethod: FWD_DROUTE, weight: 1, uThreshold: 0, lThreshold: 0,
  tunType: 0, tunPort: 0, tunFlags: 0, ...more,
});

type Step = [string, (a: IpvsApi) => Promise<unknown>];

const S1 = key('10.0.0.1', 80);
const S6 = key('2001:db8::1', 443, 6, 6);
const steps: Step[] = [
  ['info', (a) => a.getInfo()],
  ['add rr', (a) => a.addService(spec(S1, { schedName: 'rr' }))],
  ['add again', (a) => a.addService(spec(S1))],
  ['unknown scheduler', (a) => a.addService(spec(key('10.0.0.2', 80), { schedName: 'nosuch' }))],
  ['persistent netmask', (a) => a.addService(spec(key('10.0.0.3', 0, 17), { flags: SVC_F_PERSISTENT, timeout: 300, netmask: '255.255.255.0' }))],
  ['v6 service', (a) => a.addService(spec(S6, { schedName: 'sh' }))],
  ['fwmark service', (a) => a.addService(spec(fw(7), { schedName: 'wrr' }))],
  ['dest masq', (a) => a.addDest(S1, dest('192.168.1.1', 8080, { fwdMethod: FWD_MASQ, weight: 3 }))],
  ['dest tun', (a) => a.addDest(S1, dest('192.168.1.2', 80, { fwdMethod: FWD_TUNNEL }))],
  ['dest again', (a) => a.addDest(S1, dest('192.168.1.1', 8080, { fwdMethod: FWD_MASQ }))],
  ['dest on missing service', (a) => a.addDest(key('10.9.9.9', 1), dest('192.168.1.1', 80))],
  ['dest v4 in v6 service', (a) => a.addDest(S6, dest('192.168.1.1', 443))],
  ['dest bad weight', (a) => a.addDest(S1, dest('192.168.1.9', 80, { weight: -1 }))],
  ['dest thresholds', (a) => a.addDest(S1, dest('192.168.1.3', 80, { uThreshold: 10, lThreshold: 20 }))],
  ['edit dest', (a) => a.editDest(S1, dest('192.168.1.2', 80, { fwdMethod: FWD_TUNNEL, weight: 0 }))],
  ['edit missing dest', (a) => a.editDest(S1, dest('192.168.1.77', 80))],
  ['del missing dest', (a) => a.delDest(S1, dest('192.168.1.77', 80))],
  ['edit service', (a) => a.editService(spec(S1, { schedName: 'lc' }))],
  ['edit missing service', (a) => a.editService(spec(key('10.9.9.9', 1)))],
  ['get service', (a) => a.getService(S1)],
  ['get missing service', (a) => a.getService(key('10.9.9.9', 1))],
  ['get fwmark', (a) => a.getService(fw(7))],
  ['list', (a) => a.getServices()],
  ['zero one', (a) => a.zero(S1)],
  ['zero missing', (a) => a.zero(key('10.9.9.9', 1))],
  ['zero all', (a) => a.zero(null)],
  ['timeouts bad', (a) => a.setTimeouts({ tcp: -1, tcpFin: 0, udp: 0 })],
  ['timeouts', (a) => a.setTimeouts({ tcp: 900, tcpFin: 120, udp: 300 })],
  ['get timeouts', (a) => a.getTimeouts()],
  ['sync bad interface', (a) => a.startDaemon({ state: 'master', mcastIfn: 'nosuchif0', syncId: 1, syncMaxlen: 0, mcastGroup: '', mcastPort: 0, mcastTtl: 0 })],
  ['sync master', (a) => a.startDaemon({ state: 'master', mcastIfn: 'lo', syncId: 1, syncMaxlen: 0, mcastGroup: '', mcastPort: 0, mcastTtl: 0 })],
  ['sync master again', (a) => a.startDaemon({ state: 'master', mcastIfn: 'lo', syncId: 1, syncMaxlen: 0, mcastGroup: '', mcastPort: 0, mcastTtl: 0 })],
  ['daemons', (a) => a.getDaemons()],
  ['stop backup (none)', (a) => a.stopDaemon('backup', 0)],
  ['stop master', (a) => a.stopDaemon('master', 1)],
  ['mark rule', (a) => a.addMarkRule({ af: 4, protocol: 6, addr: '10.1.0.0', prefix: 16, portLo: 80, portHi: 90, mark: 7 })],
  ['mark rule again', (a) => a.addMarkRule({ af: 4, protocol: 6, addr: '10.1.0.0', prefix: 16, portLo: 80, portHi: 90, mark: 7 })],
  ['mark rule bad prefix', (a) => a.addMarkRule({ af: 4, protocol: 6, addr: '10.1.0.0', prefix: 40, portLo: 80, portHi: 90, mark: 7 })],
  ['mark rules', (a) => a.getMarkRules()],
  ['del missing mark rule', (a) => a.delMarkRule({ af: 4, protocol: 17, addr: '10.1.0.0', prefix: 16, portLo: 80, portHi: 90, mark: 7 })],
  ['connections', (a) => a.getConnections()],
  ['del dest', (a) => a.delDest(S1, dest('192.168.1.1', 8080))],
  ['del service', (a) => a.delService(S6)],
  ['del missing service', (a) => a.delService(S6)],
  ['list again', (a) => a.getServices()],
  ['flush', (a) => a.flush()],
  ['info after flush', (a) => a.getInfo()],
];

type Outcome = { ok: unknown } | { errno: string | null; message: string; ctl: boolean };

async function outcome(p: Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: await p };
  } catch (e) {
    return { errno: e instanceof CtlError ? e.errno : null, message: (e as Error).message, ctl: e instanceof CtlError };
  }
}

t.test('the worker API answers exactly like LocalIpvsApi', async (t) => {
  const local = new Director({ mac: new Uint8Array(6), ip4: 0, neigh: new StaticNeighbours(), capacity: 4096 }).api;
  const dp = await DataPlane.create({ backend: 'none', capacity: 4096 });
  t.teardown(() => dp.stop());
  t.equal(dp.description, 'no packet I/O');
  let failures = 0;
  for (const [name, run] of steps) {
    const want = await outcome(run(local));
    const got = await outcome(run(dp.api));
    if ('errno' in want) failures++;
    t.same(got, want, name);
  }
  t.ok(failures >= 15, `the script exercises failures too (${failures} steps fail)`);
});

t.test('operations keep their order and listings are snapshots', async (t) => {
  const dp = await DataPlane.create({ backend: 'none', capacity: 4096 });
  t.teardown(() => dp.stop());
  // Fire 200 operations without waiting: the worker applies them in order, one per turn.
  const ops: Promise<unknown>[] = [];
  for (let i = 0; i < 100; i++) {
    ops.push(dp.api.addService(spec(key('10.0.0.1', 1000 + i))));
    ops.push(dp.api.getInfo());
  }
  const res = await Promise.all(ops);
  const counts = res.filter((_, i) => i % 2 === 1).map((r) => (r as { numServices: number }).numServices);
  t.same(counts, Array.from({ length: 100 }, (_, i) => i + 1), 'each listing sees exactly the operations sent before it');
});

t.test('a stopped data plane rejects calls instead of hanging', async (t) => {
  const dp = await DataPlane.create({ backend: 'none', capacity: 1024 });
  await dp.stop();
  await t.rejects(dp.api.getInfo());
});

t.test('the hide changes the worker reports add up to what its table hides', async (t) => {
  const dp = await DataPlane.create({ backend: 'none', capacity: 4096 });
  t.teardown(() => dp.stop());
  const seen = new HideSet();
  let changes = 0;
  // Without packet I/O nothing consumes them (no nftables guard); a test may.
  dp.api.onHide = async (c) => { seen.apply(c); changes++; };
  const expected = async (): Promise<unknown> => {
    const services = await dp.api.getServices();
    const marks = new Set(services.filter((s) => s.fwmark !== 0).map((s) => s.fwmark));
    const key = (e: { af: number; proto: number; addr: string; port: number }) => `${e.af} ${e.proto} ${e.addr} ${e.port}`;
    return {
      vips: services.filter((s) => s.fwmark === 0).map((s) => key({ af: s.af, proto: s.protocol, addr: s.addr, port: s.port })).sort(),
      reals: [...new Set(services.flatMap((s) => s.dests.filter((d) => d.fwdMethod === FWD_MASQ)
        .map((d) => key({ af: d.af, proto: s.protocol, addr: d.addr, port: d.port }))))].sort(),
      marks: (await dp.api.getMarkRules()).filter((r) => marks.has(r.mark))
        .map((r) => ({ af: r.af, proto: r.protocol, addr: r.addr, prefix: r.prefix, portLo: r.portLo, portHi: r.portHi })),
    };
  };
  const got = (): unknown => {
    const s = seen.spec();
    const key = (e: { af: number; proto: number; addr: string; port: number }) => `${e.af} ${e.proto} ${e.addr} ${e.port}`;
    return { vips: s.vips.map(key).sort(), reals: s.reals.map(key).sort(), marks: s.marks };
  };
  for (const [name, run] of steps) {
    await outcome(run(dp.api));
    t.same(got(), await expected(), `after ${name}`);
  }
  t.ok(changes >= 5 && changes < steps.length, `only changes are reported (${changes} of ${steps.length} steps)`);
  t.same(seen.spec(), { vips: [], marks: [], reals: [] }, 'nothing hidden after flush');
});
