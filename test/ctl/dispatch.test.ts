/**
 * The daemon's dispatch table: one handler per IpvsApi operation, who may call
 * what, argument checking, and the rule that a refused request leaves the
 * director exactly as it was.
 */
import t, { type Test } from 'tap';
import { HANDLERS, dispatch } from '../../src/ctl/dispatch.js';
import { OP_NAMES } from '../../src/ctl/protocol.js';
import { LocalIpvsApi } from '../../src/svc/local-api.js';
import { SocketIpvsApi } from '../../src/ctl/client.js';
import { Director } from '../../src/core/director.js';
import { StaticNeighbours } from '../../src/neigh/static.js';
import { CtlError, type DestSpec, type ServiceSpec } from '../../src/ctl/types.js';
import type { IpvsApi, MarkRule } from '../../src/ctl/api.js';

/** Asserts that `p` rejects with CtlError(errno). */
async function rejectsWith(t: Test, p: Promise<unknown>, errno: string, msg?: string): Promise<void> {
  try {
    await p;
    t.fail(`${msg ?? 'request'}: expected ${errno}, it succeeded`);
  } catch (e) {
    t.equal(e instanceof CtlError ? e.errno : String(e), errno, msg ?? `rejects with ${errno}`);
  }
}

/** Methods of a prototype and of the prototypes it inherits from (up to Object). */
function methodsOf(proto: object, exclude: string[] = []): string[] {
  const names = new Set<string>();
  for (let p: object | null = proto; p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null) {
    for (const n of Object.getOwnPropertyNames(p)) {
      if (n !== 'constructor' && !exclude.includes(n) && typeof (p as Record<string, unknown>)[n] === 'function') names.add(n);
    }
  }
  return [...names].sort();
}

function newDirector(): Director {
  return new Director({ mac: new Uint8Array(6), ip4: 0, neigh: new StaticNeighbours(), capacity: 1024 });
}

const SVC: ServiceSpec = {
  af: 4, protocol: 6, addr: '10.0.0.1', port: 80, fwmark: 0, schedName: 'rr', flags: 0, timeout: 0,
  netmask: '255.255.255.255', pe: '',
};
const KEY = { af: 4 as const, protocol: 6, addr: '10.0.0.1', port: 80, fwmark: 0 };
const DEST: DestSpec = {
  af: 4, addr: '10.0.1.1', port: 8080, fwdMethod: 0, weight: 1, uThreshold: 0, lThreshold: 0, tunType: 0, tunPort: 0, tunFlags: 0,
};
const RULE: MarkRule = { af: 4, protocol: 6, addr: '10.0.0.0', prefix: 24, portLo: 80, portHi: 80, mark: 7 };
const DAEMON = { state: 'master' as const, mcastIfn: 'lo', syncId: 1, syncMaxlen: 0, mcastGroup: '', mcastPort: 0, mcastTtl: 0 };

/** Valid arguments for every operation. */
const VALID_ARGS: Record<string, unknown[]> = {
  getInfo: [], addService: [SVC], editService: [SVC], delService: [KEY], flush: [],
  addDest: [KEY, DEST], editDest: [KEY, DEST], delDest: [KEY, DEST], zero: [null],
  getServices: [], getService: [KEY], getConnections: [], setTimeouts: [{ tcp: 10, tcpFin: 0, udp: 0 }],
  getTimeouts: [], startDaemon: [DAEMON], stopDaemon: ['master', 1], getDaemons: [],
  addMarkRule: [RULE], delMarkRule: [RULE], getMarkRules: [],
};

const READ_OPS = ['getInfo', 'getServices', 'getService', 'getTimeouts', 'getDaemons', 'getMarkRules'];

t.test('every IpvsApi operation has exactly one handler, and both ends implement it', async (t) => {
  const apiMethods = methodsOf(LocalIpvsApi.prototype);
  t.same([...OP_NAMES].sort(), apiMethods, 'the protocol lists exactly the methods of the in-process IpvsApi');
  t.same(Object.keys(HANDLERS).sort(), apiMethods, 'the dispatch table covers every operation');
  const clientMethods = methodsOf(SocketIpvsApi.prototype);
  for (const op of apiMethods) t.ok(clientMethods.includes(op), `the socket client implements ${op}`);
  t.same(Object.keys(VALID_ARGS).sort(), apiMethods, 'this test has arguments for every operation');
});

t.test('each handler passes its checked arguments to the right method', async (t) => {
  for (const op of OP_NAMES) {
    const calls: Array<{ name: string; args: unknown[] }> = [];
    const recorder = new Proxy({} as IpvsApi, {
      get: (_t, name) => async (...args: unknown[]) => { calls.push({ name: String(name), args }); return `result of ${String(name)}`; },
    });
    const r = await dispatch(recorder, op, VALID_ARGS[op], true);
    t.equal(r, `result of ${op}`, `${op}: result passed back`);
    t.same(calls, [{ name: op, args: VALID_ARGS[op] }], `${op}: called once with its arguments`);
  }
});

t.test('unprivileged callers may read the table but not change it or list connections', async (t) => {
  for (const op of OP_NAMES) {
    let called = false;
    const recorder = new Proxy({} as IpvsApi, { get: () => async () => { called = true; } });
    if (READ_OPS.includes(op)) {
      await dispatch(recorder, op, VALID_ARGS[op], false);
      t.ok(called, `${op} allowed`);
    } else {
      await rejectsWith(t, dispatch(recorder, op, VALID_ARGS[op], false), 'EPERM', `${op} refused with EPERM`);
      t.notOk(called, `${op} never reached the table`);
    }
  }
});

t.test('malformed requests are refused before the table sees them', async (t) => {
  const d = newDirector();
  const api = d.api;
  await rejectsWith(t, dispatch(api, 'dropTables', [], true), 'ENOSYS');
  await rejectsWith(t, dispatch(api, 42, [], true), 'ENOSYS');
  await rejectsWith(t, dispatch(api, 'constructor', [], true), 'ENOSYS', 'not a way to reach other properties');
  await rejectsWith(t, dispatch(api, '__proto__', [], true), 'ENOSYS');
  await rejectsWith(t, dispatch(api, 'addService', { 0: SVC }, true), 'EINVAL', 'args must be an array');
  await rejectsWith(t, dispatch(api, 'addService', [], true), 'EINVAL', 'too few');
  await rejectsWith(t, dispatch(api, 'addService', [SVC, SVC], true), 'EINVAL', 'too many');
  await rejectsWith(t, dispatch(api, 'addService', [{ ...SVC, port: '80' }], true), 'EINVAL', 'string port');
  await rejectsWith(t, dispatch(api, 'addService', [{ ...SVC, schedName: 5 }], true), 'EINVAL');
  await rejectsWith(t, dispatch(api, 'addService', [{ ...SVC, pe: undefined }], true), 'EINVAL', 'missing field');
  await rejectsWith(t, dispatch(api, 'addDest', [KEY, { ...DEST, weight: null }], true), 'EINVAL');
  await rejectsWith(t, dispatch(api, 'addDest', [KEY, [DEST]], true), 'EINVAL');
  await rejectsWith(t, dispatch(api, 'setTimeouts', [{ tcp: 1, udp: 2 }], true), 'EINVAL');
  await rejectsWith(t, dispatch(api, 'stopDaemon', ['primary', 0], true), 'EINVAL');
  await rejectsWith(t, dispatch(api, 'stopDaemon', ['master', 1.5], true), 'EINVAL');
  await rejectsWith(t, dispatch(api, 'zero', [7], true), 'EINVAL');
  t.equal((await api.getServices()).length, 0, 'nothing was added');
  // Value ranges stay the table's business, with the kernel's errno.
  await rejectsWith(t, dispatch(api, 'addService', [{ ...SVC, af: 5 }], true), 'EAFNOSUPPORT');
  // Extra properties are dropped, including a JSON "__proto__" key.
  await dispatch(api, 'addService', [JSON.parse(JSON.stringify({ ...SVC, extra: 1 }).replace('"extra"', '"__proto__"'))], true);
  const [se] = await api.getServices();
  t.equal(se!.addr, '10.0.0.1');
  t.notOk('extra' in se!, 'unknown fields are not stored');
});

/** Everything a client can read back. */
async function observable(api: IpvsApi): Promise<string> {
  return JSON.stringify([await api.getServices(), await api.getTimeouts(), await api.getDaemons(), await api.getMarkRules(), await api.getInfo()]);
}

t.test('a refused request leaves the director exactly as it was', async (t) => {
  const d = newDirector();
  const api = d.api;
  await api.addService(SVC);
  await api.addDest(KEY, DEST);
  await api.addDest(KEY, { ...DEST, addr: '10.0.1.2', weight: 5, uThreshold: 100, lThreshold: 10 });
  await api.addService({ ...SVC, af: 6, addr: '2001:db8::1', protocol: 17, schedName: 'mh', netmask: '128' });
  await api.addMarkRule(RULE);
  await api.setTimeouts({ tcp: 1000, tcpFin: 100, udp: 200 });
  const key6 = { af: 6 as const, protocol: 17, addr: '2001:db8::1', port: 80, fwmark: 0 };
  const failing: Array<[string, string, unknown[]]> = [
    ['EEXIST', 'addService', [SVC]],
    ['EEXIST', 'addService', [{ ...SVC, schedName: 'wlc' }]],
    ['ENOENT', 'addService', [{ ...SVC, port: 81, schedName: 'nosuch' }]],
    ['ENOENT', 'addService', [{ ...SVC, port: 81, pe: 'nosuch' }]],
    ['EINVAL', 'addService', [{ ...SVC, af: 6, addr: '2001:db8::2', netmask: '200' }]],
    ['EINVAL', 'addService', [{ ...SVC, protocol: 47 }]],
    ['EINVAL', 'addService', [{ ...SVC, addr: 'not-an-address' }]],
    ['ESRCH', 'editService', [{ ...SVC, port: 81 }]],
    ['ENOENT', 'editService', [{ ...SVC, schedName: 'nosuch' }]],
    ['EINVAL', 'editService', [{ ...SVC, af: 6, addr: '2001:db8::1', protocol: 17, netmask: '0' }]],
    ['ESRCH', 'delService', [{ ...KEY, port: 81 }]],
    ['ESRCH', 'zero', [{ ...KEY, port: 81 }]],
    ['ESRCH', 'addDest', [{ ...KEY, port: 81 }, DEST]],
    ['EEXIST', 'addDest', [KEY, DEST]],
    ['ERANGE', 'addDest', [KEY, { ...DEST, addr: '10.0.1.3', lThreshold: 5 }]],
    ['ERANGE', 'addDest', [KEY, { ...DEST, addr: '10.0.1.3', weight: -1 }]],
    ['EINVAL', 'addDest', [KEY, { ...DEST, addr: '224.0.0.1' }]],
    ['EINVAL', 'addDest', [KEY, { ...DEST, addr: '10.0.1.3', fwdMethod: 2, tunType: 1, tunPort: 0 }]],
    ['EINVAL', 'addDest', [KEY, { ...DEST, af: 6, addr: '2001:db8::5', fwdMethod: 0 }]],
    ['ERANGE', 'editDest', [KEY, { ...DEST, lThreshold: 50 }]],
    ['ENOENT', 'editDest', [KEY, { ...DEST, addr: '10.0.1.9' }]],
    ['ESRCH', 'editDest', [{ ...KEY, port: 81 }, DEST]],
    ['ENOENT', 'delDest', [KEY, { ...DEST, port: 9999 }]],
    ['ENOENT', 'delDest', [key6, DEST]],
    ['EINVAL', 'setTimeouts', [{ tcp: 5, tcpFin: 5, udp: 9000000 }]],
    ['EINVAL', 'setTimeouts', [{ tcp: -1, tcpFin: 0, udp: 0 }]],
    ['EEXIST', 'addMarkRule', [RULE]],
    ['ENOENT', 'delMarkRule', [{ ...RULE, mark: 8 }]],
    ['EINVAL', 'startDaemon', [{ ...DAEMON, mcastGroup: '10.0.0.1' }]],
    ['ENODEV', 'startDaemon', [{ ...DAEMON, mcastIfn: 'nosuchif0' }]],
    ['ESRCH', 'stopDaemon', ['backup', 0]],
    ['ESRCH', 'getService', [{ ...KEY, port: 81 }]],
  ];
  for (const [errno, op, args] of failing) {
    const before = await observable(api);
    try {
      await dispatch(api, op, args, true);
      t.fail(`${op} ${JSON.stringify(args)} should fail with ${errno}`);
    } catch (e) {
      t.ok(e instanceof CtlError, `${op}: a CtlError`);
      t.equal((e as CtlError).errno, errno, `${op} ${JSON.stringify(args).slice(0, 90)} → ${errno}`);
    }
    t.equal(await observable(api), before, `${op} (${errno}) left the table as it was`);
  }
});
