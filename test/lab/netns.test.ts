/**
 * The lab toolkit itself: a bridged topology with real servers answering real
 * clients, the helpers (sysctl, offload, routes, timeouts), parallel labs, and
 * teardown in every way a test process can end.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CommandError, Lab, sweepStaleLabs } from '../../src/lab/netns.js';
import { httpGet, nginxAvailable, startNameServer, startNginx, udpRequest } from '../../src/lab/servers.js';
import { LAB_SKIP } from './helpers.js';

const CHILD = fileURLToPath(new URL('./lab-child.js', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !alive(pid);
}

const nsExists = (n: string) => existsSync(`/var/run/netns/${n}`);

t.test('a bridged lab with real servers', LAB_SKIP, async (t) => {
  const lab = Lab.create('netns-test');
  t.teardown(() => lab.teardown());
  const client = await lab.addNs('client');
  await lab.addNs('sw');
  await lab.addNs('rs1');
  await lab.addNs('rs2');
  await lab.bridge('sw', 'br0');
  await lab.veth({ ns: 'client', ifname: 'c0', addrs: ['10.0.1.100/24'] }, { ns: 'sw', ifname: 'p0' });
  await lab.veth({ ns: 'rs1', ifname: 'eth0', addrs: ['10.0.1.1/24'] }, { ns: 'sw', ifname: 'p1' });
  await lab.veth({ ns: 'rs2', ifname: 'eth0', addrs: ['10.0.1.2/24'] }, { ns: 'sw', ifname: 'p2' });
  for (const p of ['p0', 'p1', 'p2']) await lab.attach('sw', p, 'br0');
  t.ok(client.startsWith(lab.prefix) && lab.prefix.startsWith(`ulvs-${process.pid}-`), `namespace names carry the prefix (${client})`);

  const rs1 = await startNameServer(lab, 'rs1', { name: 'rs1', httpPort: 80, udpPort: 5353 });
  const useNginx = nginxAvailable();
  const rs2 = useNginx ? await startNginx(lab, 'rs2', { name: 'rs2' }) : await startNameServer(lab, 'rs2', { name: 'rs2', httpPort: 80 });

  t.test('clients reach the servers across the bridge', async (t) => {
    t.equal(await httpGet(lab, 'client', 'http://10.0.1.1/'), 'hello from rs1\n', 'HTTP from the Node server in rs1');
    t.equal(await httpGet(lab, 'client', 'http://10.0.1.2/any/path'), 'hello from rs2\n', `HTTP from ${useNginx ? 'nginx' : 'the Node server'} in rs2`);
    t.equal(await udpRequest(lab, 'client', '10.0.1.1', 5353, 'ping'), 'rs1 ping', 'UDP echo prefixed with the server name');
    t.equal(await udpRequest(lab, 'client', '10.0.1.1', 5354, 'ping', 300), '', 'no answer from a closed UDP port');
  });

  t.test('sysctl, offload and route helpers change the namespace', async (t) => {
    await lab.sysctl('client', 'net.ipv4.ip_forward', 1);
    t.equal((await lab.exec('client', 'sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim(), '1', 'sysctl set inside the namespace');
    t.equal((await lab.exec('sw', 'sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim(), '0', 'and only there');
    await lab.offload('client', 'c0', { tx: false });
    t.match((await lab.exec('client', 'ethtool', ['-k', 'c0'])).stdout, /tx-checksumming: off/, 'ethtool -K tx off applied');
    await lab.route('client', ['10.0.9.0/24', 'via', '10.0.1.1']);
    t.match((await lab.ip('client', ['route', 'get', '10.0.9.5'])).stdout, /via 10\.0\.1\.1 dev c0/, 'route added');
  });

  t.test('commands: failures and timeouts', async (t) => {
    const t0 = Date.now();
    const err = await lab.exec('client', 'sleep', ['10'], { timeoutMs: 300 }).catch((e: unknown) => e);
    t.ok(err instanceof CommandError && err.result.timedOut, 'a command past its timeout is killed and reported');
    t.ok(Date.now() - t0 < 3000, 'promptly');
    const fail = await lab.exec('client', 'sh', ['-c', 'echo oops >&2; exit 3']).catch((e: unknown) => e);
    t.ok(fail instanceof CommandError && fail.result.code === 3 && /oops/.test(fail.message), 'exit code and stderr in the error');
    const allowed = await lab.exec('client', 'sh', ['-c', 'exit 4'], { allowFail: true });
    t.equal(allowed.code, 4, 'allowFail resolves with the code');
  });

  t.test('a second lab with the same short names does not collide', async (t) => {
    const lab2 = Lab.create('second');
    try {
      await lab2.addNs('client');
      await lab2.addNs('rs1');
      await lab2.veth({ ns: 'client', ifname: 'c0', addrs: ['10.0.1.100/24'] }, { ns: 'rs1', ifname: 'eth0', addrs: ['10.0.1.1/24'] });
      await startNameServer(lab2, 'rs1', { name: 'other-rs1', httpPort: 80 });
      t.not(lab2.ns('client'), lab.ns('client'), 'different full names');
      t.equal(await httpGet(lab2, 'client', 'http://10.0.1.1/'), 'hello from other-rs1\n', 'same addresses, its own server');
      t.equal(await httpGet(lab, 'client', 'http://10.0.1.1/'), 'hello from rs1\n', 'the first lab is unaffected');
    } finally {
      await lab2.teardown();
    }
    t.same(lab2.remaining(), [], 'second lab gone');
    t.equal(await httpGet(lab, 'client', 'http://10.0.1.1/'), 'hello from rs1\n', 'first lab still works after the second is torn down');
  });

  t.test('teardown stops servers and deletes every namespace', async (t) => {
    const pids = [rs1.proc.pid, rs2.proc.pid];
    const names = [...lab.namespaceNames];
    await lab.teardown();
    t.same(names.filter(nsExists), [], 'namespaces deleted');
    for (const pid of pids) t.ok(await waitGone(pid), `server ${pid} stopped`);
    await lab.teardown(); // a second call is harmless
  });
});

interface ChildInfo { namespaces: string[]; serverPid: number }

function startChild(args: string[] = []): Promise<{ child: ReturnType<typeof spawn>; info: ChildInfo; exited: Promise<number | null> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`child not ready: ${out}`)); }, 20_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /^ready (.*)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, info: JSON.parse(m[1]!) as ChildInfo, exited });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then(() => { clearTimeout(timer); if (!/^ready /m.test(out)) reject(new Error(`child exited: ${out}`)); });
  });
}

t.test('a lab is torn down however its process ends', LAB_SKIP, async (t) => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    t.test(`on ${sig}`, async (t) => {
      const { child, info, exited } = await startChild();
      t.ok(info.namespaces.every(nsExists), 'lab namespaces exist while the process runs');
      child.kill(sig);
      await exited;
      t.same(info.namespaces.filter(nsExists), [], 'namespaces deleted');
      t.ok(await waitGone(info.serverPid), 'server inside the lab stopped');
    });
  }

  t.test('on an uncaught exception', async (t) => {
    const { info, exited } = await startChild(['--crash']);
    t.not(await exited, 0, 'the process died of the exception');
    t.same(info.namespaces.filter(nsExists), [], 'namespaces deleted by the exit handler');
    t.ok(await waitGone(info.serverPid), 'server stopped');
  });

  t.test('on SIGKILL: the server dies with it and the next lab sweeps the namespaces', async (t) => {
    const { child, info, exited } = await startChild();
    child.kill('SIGKILL');
    await exited;
    t.ok(await waitGone(info.serverPid), 'server got the parent-death signal');
    t.ok(info.namespaces.every(nsExists), 'nothing could clean up yet');
    sweepStaleLabs(); // (a lab created meanwhile by a parallel test may have swept them already)
    t.same(info.namespaces.filter(nsExists), [], 'the sweep deleted the dead process\'s namespaces');
  });
});
