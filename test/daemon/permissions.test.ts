/**
 * Who may change the table, decided from the kernel's record of the client
 * (SO_PEERCRED / SO_PEERGROUPS): ulvsadm run as root and as user nobody, with and
 * without `--group`, against a real daemon in its own network namespace.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createNetns, deleteNetns, startDaemon, ulvsadm, connectIn, runProgram, NOBODY_SKIP, type RunAs, type Where } from './helpers.js';
import { LineReader } from '../../src/ctl/protocol.js';
import { destLine } from '../ctl/helpers.js';

const NOBODY: RunAs = { uid: 65534, gid: 65534 };
const DENIED = { stdout: '', stderr: 'Permission denied (you must be root)\n', status: 255 };

/** A group that exists here and is not nobody's primary group, for --group tests. */
function someGroup(): { name: string; gid: number } | null {
  for (const name of ['adm', 'staff', 'users', 'daemon', 'sys']) {
    const r = spawnSync('getent', ['group', name], { encoding: 'utf8' });
    const f = r.stdout.trim().split(':');
    if (r.status === 0 && f.length >= 3 && Number(f[2]) !== 65534) return { name, gid: Number(f[2]) };
  }
  return null;
}

t.test('root may do everything; nobody may read but not change, nor list connections', NOBODY_SKIP, async (t) => {
  const ns = createNetns();
  t.teardown(() => deleteNetns(ns));
  const where: Where = { netns: ns };
  const daemon = await startDaemon(where);
  t.teardown(() => daemon.stop());

  t.equal((await ulvsadm(['-A', '-t', '10.0.0.1:80', '-s', 'rr'], where)).status, 0, 'root adds');
  t.equal((await ulvsadm(['-a', '-t', '10.0.0.1:80', '-r', '10.0.1.1', '-m'], where)).status, 0);

  for (const args of [
    ['-A', '-t', '10.0.0.2:80'], ['-E', '-t', '10.0.0.1:80', '-s', 'wlc'], ['-D', '-t', '10.0.0.1:80'], ['-C'],
    ['-a', '-t', '10.0.0.1:80', '-r', '10.0.1.2'], ['-e', '-t', '10.0.0.1:80', '-r', '10.0.1.1', '-w', '5'],
    ['-d', '-t', '10.0.0.1:80', '-r', '10.0.1.1'], ['-Z'], ['--set', '1', '2', '3'],
    ['--start-daemon', 'master', '--mcast-interface', 'lo'],
  ]) {
    t.same(await ulvsadm(args, where, { as: NOBODY }), DENIED, `nobody: ${args.join(' ')}`);
  }
  const restore = await ulvsadm(['-R'], where, { as: NOBODY, input: '-C\n-A -t 10.9.9.9:80\n' });
  t.same(restore, { stdout: '', stderr: DENIED.stderr.repeat(2), status: 255 }, 'nobody: -R line by line');
  t.same(await ulvsadm(['-Lnc'], where, { as: NOBODY }),
    { stdout: '', stderr: 'cannot open file /proc/net/ip_vs_conn\n', status: 1 }, 'nobody cannot list connections');

  const expected = 'IP Virtual Server version 1.2.1 (size=4096)\n' +
    'Prot LocalAddress:Port Scheduler Flags\n' +
    '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n' +
    'TCP  10.0.0.1:80 rr\n' +
    `${destLine('10.0.1.1:80', 'Masq', 1)}\n`;
  t.same(await ulvsadm(['-Ln'], where, { as: NOBODY }), { stdout: expected, stderr: '', status: 0 }, 'nobody reads the unchanged table');
  t.same(await ulvsadm(['-L', '--timeout'], where, { as: NOBODY }),
    { stdout: 'Timeout (tcp tcpfin udp): 900 120 300\n', stderr: '', status: 0 });
  t.equal((await ulvsadm(['-Lnc'], where)).status, 0, 'root lists connections');
});

t.test('a client cannot claim to be root: credentials come from the kernel', NOBODY_SKIP, async (t) => {
  const ns = createNetns();
  t.teardown(() => deleteNetns(ns));
  const where: Where = { netns: ns };
  const daemon = await startDaemon(where);
  t.teardown(() => daemon.stop());
  // A hand-written request with every "I am root" field a naive daemon might believe.
  const forged = JSON.stringify({ id: 1, op: 'flush', args: [], uid: 0, gid: 0, cred: { uid: 0 }, user: 'root', privileged: true });
  const script = `
    const s = require('net').connect('\\0ulvs', () => s.write(${JSON.stringify(forged + '\n')}));
    s.on('data', (d) => { process.stdout.write(d); s.destroy(); });`;
  t.equal((await ulvsadm(['-A', '-t', '10.0.0.1:80'], where)).status, 0);
  const r = await runProgram(['env', '-u', 'NODE_OPTIONS', 'ip', 'netns', 'exec', ns, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
    process.execPath, '-e', script]);
  t.same(JSON.parse(r.stdout), { id: 1, ok: false, errno: 'EPERM', message: 'permission denied' });
  t.match((await ulvsadm(['-Sn'], where)).stdout, /^-A -t 10\.0\.0\.1:80 -s wlc\n$/, 'the table is untouched');
  // The same request from root works, over the same protocol.
  const s = connectIn(where);
  const reply = await new Promise<string>((resolve) => {
    const reader = new LineReader(1 << 20);
    s.on('connect', () => s.write(forged + '\n'));
    s.on('data', (c: Buffer) => reader.push(c, (l) => { resolve(l); s.destroy(); }));
  });
  t.same(JSON.parse(reply), { id: 1, ok: true });
});

const GROUP = someGroup();
const GROUP_SKIP = NOBODY_SKIP.skip !== undefined ? NOBODY_SKIP : GROUP === null ? { skip: 'no suitable group on this system' } : {};

t.test('--group: members (primary or supplementary) may change the table', GROUP_SKIP, async (t) => {
  const g = GROUP!;
  const ns = createNetns();
  t.teardown(() => deleteNetns(ns));
  const where: Where = { netns: ns };
  const daemon = await startDaemon(where, ['--group', g.name]);
  t.teardown(() => daemon.stop());
  t.match(daemon.ready, `group ${g.name}`);
  t.same(await ulvsadm(['-A', '-t', '10.0.0.1:80'], where, { as: NOBODY }), DENIED, 'not a member');
  t.same(await ulvsadm(['-A', '-t', '10.0.0.1:80'], where, { as: { uid: 65534, gid: g.gid } }),
    { stdout: '', stderr: '', status: 0 }, 'primary group');
  t.same(await ulvsadm(['-A', '-t', '10.0.0.2:80'], where, { as: { uid: 65534, gid: 65534, groups: [g.gid] } }),
    { stdout: '', stderr: '', status: 0 }, 'supplementary group');
  t.equal((await ulvsadm(['-Lnc'], where, { as: { uid: 65534, gid: 65534, groups: [g.gid] } })).status, 0, 'members list connections');
  t.equal((await ulvsadm(['-Sn'], where)).stdout, '-A -t 10.0.0.1:80 -s wlc\n-A -t 10.0.0.2:80 -s wlc\n');
});
