/**
 * The control protocol end to end inside one process: the socket client against
 * the daemon's server over a real abstract Unix socket. Results and refusals must
 * be what the in-process API gives; bad input of every kind must get an answer
 * (or a closed connection) and never stop the server or touch the table.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { CtlServer } from '../../src/ctl/server.js';
import { SocketIpvsApi } from '../../src/ctl/client.js';
import { AccessPolicy } from '../../src/ctl/access.js';
import { peerCredentials, type PeerCred } from '../../src/ctl/peercred.js';
import { socketAddress, LineReader, MAX_REQUEST_BYTES, type SocketAddress } from '../../src/ctl/protocol.js';
import { Director } from '../../src/core/director.js';
import { StaticNeighbours } from '../../src/neigh/static.js';
import { CtlError, type DestSpec, type ServiceSpec } from '../../src/ctl/types.js';
import { runIpvsadm } from '../../src/cli/ipvsadm/run.js';
import { numericResolver } from '../../src/cli/ipvsadm/resolver.js';
import { uniqueName } from './helpers.js';

const SVC: ServiceSpec = {
  af: 4, protocol: 6, addr: '10.0.0.1', port: 80, fwmark: 0, schedName: 'rr', flags: 0, timeout: 0,
  netmask: '255.255.255.255', pe: '',
};
const DEST: DestSpec = {
  af: 4, addr: '10.0.1.1', port: 8080, fwdMethod: 0, weight: 1, uThreshold: 0, lThreshold: 0, tunType: 0, tunPort: 0, tunFlags: 0,
};

interface Setup {
  director: Director;
  server: CtlServer;
  address: SocketAddress;
  logs: string[];
}

async function setup(
  t: Test, opts: { credentials?: (s: net.Socket) => PeerCred | null; access?: AccessPolicy } = {},
): Promise<Setup> {
  const director = new Director({ mac: new Uint8Array(6), ip4: 0, neigh: new StaticNeighbours(), capacity: 1024 });
  const address = socketAddress(uniqueName('cs'));
  const logs: string[] = [];
  const server = new CtlServer(director.api, { address, log: (l) => logs.push(l), ...opts });
  await server.listen();
  t.teardown(() => server.close());
  return { director, server, address, logs };
}

/** Writes `payload` on a fresh connection, then collects response lines until `n` arrived or the server closed. */
function exchange(address: SocketAddress, payload: string | Buffer, n: number, endAfter = false): Promise<{ lines: string[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(address.path);
    const lines: string[] = [];
    const reader = new LineReader(1 << 24);
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ lines, closed });
    };
    const timer = setTimeout(() => finish(false), 5000);
    s.on('connect', () => {
      s.write(payload);
      if (endAfter) s.end();
    });
    s.on('data', (c: Buffer) => {
      reader.push(c, (l) => lines.push(l));
      if (lines.length >= n) finish(false);
    });
    s.on('close', () => finish(true));
    s.on('error', (e) => (done ? undefined : reject(e)));
  });
}

t.test('every operation over the socket gives what the in-process API gives', async (t) => {
  const { director, address } = await setup(t);
  const c = new SocketIpvsApi(address);
  t.teardown(() => c.close());
  const local = director.api;
  t.same(await c.getInfo(), await local.getInfo());
  await c.addService(SVC);
  await c.addDest(SVC, DEST);
  await c.addDest(SVC, { ...DEST, addr: '10.0.1.2', weight: 3 });
  await c.editDest(SVC, { ...DEST, weight: 7, fwdMethod: 3 });
  t.same(await c.getServices(), await local.getServices());
  t.equal((await c.getServices())[0]!.dests.length, 2);
  t.same(await c.getService(SVC), await local.getService(SVC));
  t.equal((await c.getService(SVC)).dests.find((d) => d.addr === '10.0.1.1')!.weight, 7);
  await c.editService({ ...SVC, schedName: 'wlc' });
  t.equal((await local.getService(SVC)).schedName, 'wlc');
  await c.zero(null);
  await c.zero(SVC);
  await c.setTimeouts({ tcp: 100, tcpFin: 0, udp: 50 });
  t.same(await c.getTimeouts(), { tcp: 100, tcpFin: 120, udp: 50 });
  t.same(await c.getConnections(), []);
  await c.startDaemon({ state: 'master', mcastIfn: 'lo', syncId: 3, syncMaxlen: 0, mcastGroup: '', mcastPort: 0, mcastTtl: 0 });
  t.same(await c.getDaemons(), await local.getDaemons());
  t.equal((await c.getDaemons())[0]!.syncId, 3);
  await c.stopDaemon('master', 3);
  t.same(await c.getDaemons(), []);
  const rule = { af: 4 as const, protocol: 6, addr: '10.0.0.0', prefix: 8, portLo: 0, portHi: 65535, mark: 9 };
  await c.addMarkRule(rule);
  t.same(await c.getMarkRules(), await local.getMarkRules());
  await c.delMarkRule(rule);
  t.same(await c.getMarkRules(), []);
  await c.delDest(SVC, DEST);
  await c.delService(SVC);
  await c.addService(SVC);
  await c.flush();
  t.same(await c.getServices(), []);
});

t.test('refusals arrive as CtlError with the table\'s errno and message', async (t) => {
  const { director, address } = await setup(t);
  const c = new SocketIpvsApi(address);
  t.teardown(() => c.close());
  await c.addService(SVC);
  const cases: Array<[() => Promise<unknown>, () => Promise<unknown>]> = [
    [() => c.addService(SVC), () => director.api.addService(SVC)],
    [() => c.addService({ ...SVC, port: 1, schedName: 'bogus' }), () => director.api.addService({ ...SVC, port: 1, schedName: 'bogus' })],
    [() => c.delService({ ...SVC, port: 2 }), () => director.api.delService({ ...SVC, port: 2 })],
    [() => c.addDest(SVC, { ...DEST, lThreshold: 3 }), () => director.api.addDest(SVC, { ...DEST, lThreshold: 3 })],
    [() => c.getService({ ...SVC, port: 3 }), () => director.api.getService({ ...SVC, port: 3 })],
  ];
  for (const [remote, inproc] of cases) {
    const a = await remote().then(() => null, (e: unknown) => e);
    const b = await inproc().then(() => null, (e: unknown) => e);
    t.ok(a instanceof CtlError && b instanceof CtlError, 'both refuse');
    t.equal((a as CtlError).errno, (b as CtlError).errno);
    t.equal((a as CtlError).message, (b as CtlError).message);
  }
});

t.test('raw protocol: ids echoed, pipelined requests answered in order', async (t) => {
  const { address } = await setup(t);
  const reqs = Array.from({ length: 500 }, (_, i) => JSON.stringify({ id: `r${i}`, op: 'getInfo', args: [] })).join('\n') + '\n';
  const { lines } = await exchange(address, reqs, 500);
  t.equal(lines.length, 500);
  t.same(lines.map((l) => JSON.parse(l).id), Array.from({ length: 500 }, (_, i) => `r${i}`));
  t.ok(lines.every((l) => JSON.parse(l).ok === true && JSON.parse(l).result.version === 0x010201));
  // Omitted args mean none; a void result has no "result" key.
  const r = await exchange(address, '{"id":1,"op":"flush"}\n', 1);
  t.same(JSON.parse(r.lines[0]!), { id: 1, ok: true });
});

t.test('garbage gets an error answer; the server keeps serving and the table is untouched', async (t) => {
  const { director, address, server } = await setup(t);
  await director.api.addService(SVC);
  const before = JSON.stringify(await director.api.getServices());
  const bad: Array<[string, string]> = [
    ['not json at all', 'EINVAL'],
    ['{"id":5,"op":"addService","args":[', 'EINVAL'],
    ['[1,2,3]', 'EINVAL'],
    ['null', 'EINVAL'],
    ['"getInfo"', 'EINVAL'],
    ['{"id":6,"op":"rmrf","args":[]}', 'ENOSYS'],
    ['{"id":7,"op":"toString","args":[]}', 'ENOSYS'],
    ['{"id":8,"op":"addService","args":"x"}', 'EINVAL'],
    ['{"id":9,"op":"addService","args":[{"af":4}]}', 'EINVAL'],
    ['{"id":10,"op":"delService","args":[null]}', 'EINVAL'],
    ['{"id":11,"op":"addDest","args":[{"af":4,"protocol":6,"addr":"10.0.0.1","port":80,"fwmark":0},{"addr":{"toString":1}}]}', 'EINVAL'],
    ['\u0000\u0001\u00ff\ud800', 'EINVAL'],
  ];
  const { lines } = await exchange(address, bad.map(([l]) => l).join('\n') + '\n', bad.length);
  t.equal(lines.length, bad.length, 'one answer per line');
  bad.forEach(([req, errno], i) => {
    const r = JSON.parse(lines[i]!);
    t.equal(r.ok, false, `${req.slice(0, 40)}: refused`);
    t.equal(r.errno, errno, `${req.slice(0, 40)}: ${errno}`);
  });
  t.equal(JSON.parse(lines[5]!).id, 6, 'the id of a well-formed request is echoed');
  t.equal(JSON.stringify(await director.api.getServices()), before);
  t.ok(server.stats.malformed >= 8, 'counted as malformed');

  // Binary junk with newlines in it.
  const junk = Buffer.alloc(4096);
  for (let i = 0; i < junk.length; i++) junk[i] = (i * 131 + 7) & 0xff;
  await exchange(address, junk, 1);
  const c = new SocketIpvsApi(address);
  t.same((await c.getServices()).length, 1, 'still serving');
  c.close();
});

t.test('an over-long request: EMSGSIZE, connection closed, earlier requests answered', async (t) => {
  const { director, address } = await setup(t);
  const huge = Buffer.alloc(MAX_REQUEST_BYTES + 10, 0x41);
  const payload = Buffer.concat([Buffer.from('{"id":1,"op":"getInfo"}\n'), huge]);
  const r = await exchange(address, payload, 3);
  t.equal(r.lines.length, 2);
  t.equal(JSON.parse(r.lines[0]!).id, 1);
  t.same(JSON.parse(r.lines[1]!), { id: null, ok: false, errno: 'EMSGSIZE', message: `request longer than ${MAX_REQUEST_BYTES} bytes` });
  t.ok(r.closed, 'the server closed the connection');
  // A huge well-formed JSON string field, also refused, no table change.
  const big = JSON.stringify({ id: 2, op: 'addService', args: [{ ...SVC, pe: 'x'.repeat(2 * MAX_REQUEST_BYTES) }] }) + '\n';
  const r2 = await exchange(address, big, 1);
  t.equal(JSON.parse(r2.lines[0]!).errno, 'EMSGSIZE');
  t.same(await director.api.getServices(), []);
  const c = new SocketIpvsApi(address);
  t.equal((await c.getInfo()).numServices, 0, 'still serving');
  c.close();
});

t.test('a client that disconnects: complete requests still run, partial ones never do', async (t) => {
  const { director, address } = await setup(t);
  const complete = JSON.stringify({ id: 1, op: 'addService', args: [SVC] }) + '\n';
  const partial = JSON.stringify({ id: 2, op: 'addService', args: [{ ...SVC, port: 81 }] });
  await new Promise<void>((resolve) => {
    const s = net.connect(address.path, () => {
      s.write(complete + partial.slice(0, partial.length - 3));
      s.destroy();
      resolve();
    });
  });
  // Let the server read and run what it got.
  const c = new SocketIpvsApi(address);
  const list = await c.getServices();
  c.close();
  t.same(list.map((s) => s.port), [80], 'the complete request ran, the partial one did not');
  t.same((await director.api.getServices()).length, 1);
  // Many clients vanishing mid-exchange, with responses pending.
  await Promise.all(Array.from({ length: 20 }, (_, i) => new Promise<void>((resolve) => {
    const s = net.connect(address.path, () => {
      s.write(JSON.stringify({ id: i, op: 'getServices' }) + '\n'.repeat(1) + JSON.stringify({ id: i, op: 'getInfo' }));
      setImmediate(() => { s.destroy(); resolve(); });
    });
    s.on('error', () => resolve());
  })));
  const c2 = new SocketIpvsApi(address);
  t.equal((await c2.getInfo()).numServices, 1, 'still serving');
  c2.close();
});

t.test('the server reads the peer\'s kernel credentials (SO_PEERCRED)', async (t) => {
  const seen: Array<PeerCred | null> = [];
  const { address } = await setup(t, { credentials: (s) => { const c = peerCredentials(s); seen.push(c); return c; } });
  const c = new SocketIpvsApi(address);
  await c.getInfo();
  c.close();
  t.equal(seen.length, 1);
  t.same(seen[0] && { pid: seen[0].pid, uid: seen[0].uid, gid: seen[0].gid },
    { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() }, 'our own pid, uid and gid');
  // Node's getgroups() always includes the effective gid; the kernel's list need not.
  const withGid = (g: number[]) => [...new Set([...g, process.getegid!()])].sort((a, b) => a - b);
  t.same(withGid(seen[0]!.groups), withGid(process.getgroups!()), 'our supplementary groups (SO_PEERGROUPS)');
});

async function ipvsadm(address: SocketAddress, args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const api = new SocketIpvsApi(address);
  let stdout = '';
  let stderr = '';
  const io = { stdout: (s: string) => { stdout += s; }, stderr: (s: string) => { stderr += s; }, readStdin: async () => '' };
  try {
    return { status: await runIpvsadm('ipvsadm', args, io, api, numericResolver), stdout, stderr };
  } finally {
    api.close();
  }
}

t.test('access: root, the daemon\'s user and --group members may change the table; others get EPERM', async (t) => {
  let cred: PeerCred | null = { pid: 1, uid: 4242, gid: 4242, groups: [] };
  const access = new AccessPolicy({ groupGid: 777, ownerUid: 999 });
  const { director, address } = await setup(t, { credentials: () => cred, access });
  await director.api.addService(SVC);

  const denied = await ipvsadm(address, ['-A', '-t', '10.9.9.9:80']);
  t.same(denied, { status: 255, stdout: '', stderr: 'Permission denied (you must be root)\n' });
  const delDenied = await ipvsadm(address, ['-D', '-t', '10.0.0.1:80']);
  t.equal(delDenied.stderr, 'Permission denied (you must be root)\n');
  t.equal((await ipvsadm(address, ['-C'])).status, 255);
  t.equal((await ipvsadm(address, ['--set', '1', '1', '1'])).stderr, 'Permission denied (you must be root)\n');
  const conns = await ipvsadm(address, ['-Lnc']);
  t.same(conns, { status: 1, stdout: '', stderr: 'cannot open file /proc/net/ip_vs_conn\n' }, 'connections are not shown');
  const list = await ipvsadm(address, ['-Ln']);
  t.equal(list.status, 0, 'reading the table is allowed');
  t.match(list.stdout, /TCP {2}10\.0\.0\.1:80 rr/);
  t.equal((await director.api.getServices()).length, 1, 'nothing changed');

  for (const c of [
    { pid: 1, uid: 0, gid: 0, groups: [] },
    { pid: 1, uid: 999, gid: 999, groups: [] },
    { pid: 1, uid: 4242, gid: 777, groups: [] },
    { pid: 1, uid: 4242, gid: 4242, groups: [5, 777] },
  ]) {
    cred = c;
    const r = await ipvsadm(address, ['-A', '-t', `10.9.9.${c.uid % 250}:${c.gid % 60000 + 1}`]);
    t.equal(r.status, 0, `uid ${c.uid} gid ${c.gid} groups ${c.groups.join(',')} may add`);
  }
  cred = null;
  t.equal((await ipvsadm(address, ['-C'])).stderr, 'Permission denied (you must be root)\n', 'unknown credentials: unprivileged');
});

t.test('the client: no daemon, daemon going away', async (t) => {
  const none = await ipvsadm(socketAddress(uniqueName('none')), ['-Ln']);
  t.same(none, {
    status: 2, stdout: '',
    stderr: 'Can\'t initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module?\n',
  });
  const { server, address } = await setup(t);
  const c = new SocketIpvsApi(address);
  await c.getInfo();
  await server.close();
  await t.rejects(c.getInfo(), 'calls after the daemon closed the connection fail');
  c.close();
});
