/**
 * The Daemon life cycle in-process: the clock, the packet-I/O plug-in point, and
 * filesystem sockets.
 */
import t from 'tap';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, DaemonStartError, type PacketIo } from '../../src/ctl/daemon.js';
import { SocketIpvsApi } from '../../src/ctl/client.js';
import { socketAddress } from '../../src/ctl/protocol.js';
import type { Director } from '../../src/core/director.js';
import { uniqueName } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ulvs-ctl-daemon-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('the director clock runs from a monotonic source while the daemon runs', async (t) => {
  const d = await Daemon.start({ socket: uniqueName(), capacity: 256, tickMs: 20, log: () => {} });
  t.equal(d.director!.now, 0, 'starts at 0');
  await new Promise((r) => setTimeout(r, 150));
  const at = d.director!.now;
  t.ok(at >= 0.05 && at <= 1, `advanced with wall time (${at.toFixed(3)} s)`);
  await d.stop();
  await new Promise((r) => setTimeout(r, 80));
  t.equal(d.director!.now, at, 'stops with the daemon');
});

t.test('packet I/O starts after the control socket, stops before it', async (t) => {
  const name = uniqueName();
  const events: string[] = [];
  const io: PacketIo = {
    description: 'test backend on veth0',
    async start(director: Director) {
      // The table can already be read and changed over the socket.
      const c = new SocketIpvsApi(socketAddress(name));
      events.push(`start: socket answers (${(await c.getInfo()).numServices} services), director ${director.conns.capacity}`);
      c.close();
    },
    async stop() {
      const c = new SocketIpvsApi(socketAddress(name));
      events.push(`stop: socket still answers (${(await c.getInfo()).version})`);
      c.close();
    },
  };
  const d = await Daemon.start({ socket: name, capacity: 256, io, log: () => {} });
  t.equal(d.readyLine(), `ulvs: director ready (socket @${name}, 256 connections, test backend on veth0)`);
  await d.stop();
  t.same(events, ['start: socket answers (0 services), director 256', `stop: socket still answers (${0x010201})`]);
});

t.test('a packet I/O that fails to start takes the control socket down with it', async (t) => {
  const name = uniqueName();
  const io: PacketIo = { description: 'broken', start: async () => { throw new Error('no such device eth9'); }, stop: async () => {} };
  await t.rejects(Daemon.start({ socket: name, capacity: 256, io, log: () => {} }),
    new DaemonStartError('packet I/O (broken): no such device eth9'));
  const c = new SocketIpvsApi(socketAddress(name));
  await t.rejects(c.getInfo(), { code: 'ECONNREFUSED' }, 'nothing listens');
  c.close();
});

t.test('a bad restore file: nothing listens', async (t) => {
  const name = uniqueName();
  const p = join(dir, 'bad.rules');
  writeFileSync(p, '-A -t 1.2.3.4:80\n-A -t 1.2.3.4:80\n');
  await t.rejects(Daemon.start({ socket: name, capacity: 256, restoreFile: p, log: () => {} }),
    new DaemonStartError(`${p}:2: Service already exists`));
  const c = new SocketIpvsApi(socketAddress(name));
  await t.rejects(c.getInfo(), { code: 'ECONNREFUSED' });
  c.close();
});

t.test('a filesystem socket: anyone may connect; a stale one is replaced, a live one is not', async (t) => {
  const path = join(dir, 'ulvs.sock');
  // A socket file left by a daemon that was killed.
  const dead = spawnSync(process.execPath, ['-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`], { env: {} });
  t.equal(dead.signal, 'SIGKILL');
  t.ok(statSync(path).isSocket(), 'a stale socket file is there');
  const d = await Daemon.start({ socket: path, capacity: 256, log: () => {} });
  t.teardown(() => d.stop());
  t.equal(statSync(path).mode & 0o777, 0o666, 'mode 0666: permissions are checked per request');
  const c = new SocketIpvsApi(socketAddress(path));
  t.equal((await c.getInfo()).numServices, 0);
  c.close();
  await t.rejects(Daemon.start({ socket: path, capacity: 256, log: () => {} }),
    new DaemonStartError(`socket ${path} is in use by another director`), 'a live one is kept');
});
