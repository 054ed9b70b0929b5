/**
 * The daemon process: options, --restore (good and bad files), signals, and
 * surviving anything a client can send.
 */
import t from 'tap';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  freshWhere, startDaemon, ulvsadm, runDaemonToExit, connectIn, type Where,
} from './helpers.js';
import { LineReader, MAX_REQUEST_BYTES } from '../../src/ctl/protocol.js';

const dir = mkdtempSync(join(tmpdir(), 'ulvs-daemon-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** Daemon stderr without the notice a daemon without packet I/O prints (not root, or no namespace of its own). */
function alarming(stderr: string): string {
  return stderr.split('\n').filter((l) => l !== '' && !l.startsWith('ulvs: warning: no packet I/O')).join('\n');
}

const NO_DIRECTOR = 'Can\'t initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module?\n';

t.test('--restore loads a save file before serving', async (t) => {
  const rules = file('good.rules', [
    '-A -t 172.20.150.8:80 -s rr',
    '-a -t 172.20.150.8:80 -r 172.20.150.21:8080 -m -w 1',
    '-A -u [2001:db8::8]:53 -s sh',
    '-a -u [2001:db8::8]:53 -r [2001:db8::21]:53 -g -w 3',
    '',
  ].join('\n'));
  const where = freshWhere(t);
  const d = await startDaemon(where, ['--restore', rules]);
  t.teardown(() => d.stop());
  t.match(d.ready, `2 services from ${rules}`);
  t.equal((await ulvsadm(['-Sn'], where)).stdout, [
    '-A -t 172.20.150.8:80 -s rr',
    '-a -t 172.20.150.8:80 -r 172.20.150.21:8080 -m -w 1',
    '-A -u [2001:db8::8]:53 -s sh',
    '-a -u [2001:db8::8]:53 -r [2001:db8::21]:53 -g -w 3',
    '',
  ].join('\n'));
});

t.test('--restore with a bad file: the line is reported and the daemon does not start', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['dup.rules', '-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1 -m\n\n-A -t 10.0.0.1:80 -s rr\n', '4: Service already exists'],
    ['syntax.rules', '-A -t 10.0.0.1:80\n-A -t 10.0.0.2:80 -s rr -w 3\n', "2: Illegal 'weight' option with the 'add-service' command"],
    ['comment.rules', '# my rules\n-A -t 10.0.0.1:80\n', "1: Try `ipvsadm -h' or 'ipvsadm --help' for more information."],
    ['range.rules', '-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1 -x 1 -y 2\n', '2: Numerical result out of range'],
  ];
  for (const [name, text, msg] of cases) {
    const where = freshWhere(t);
    const p = file(name, text);
    const r = await runDaemonToExit(where, ['--restore', p]);
    t.same(r, { status: 1, stdout: '', stderr: `ulvs: ${p}:${msg}\n` }, name);
    t.same(await ulvsadm(['-Ln'], where), { status: 2, stdout: '', stderr: NO_DIRECTOR }, `${name}: nothing is serving`);
  }
  const where = freshWhere(t);
  const missing = join(dir, 'does-not-exist');
  const r = await runDaemonToExit(where, ['--restore', missing]);
  t.equal(r.status, 1);
  t.match(r.stderr, `ulvs: cannot read ${missing}: ENOENT`);
});

t.test('command line', async (t) => {
  const where: Where = freshWhere(t);
  for (const [args, msg] of [
    [['--bogus'], "ulvs daemon: Unknown option '--bogus'"],
    [['--capacity', 'lots'], 'ulvs daemon: --capacity must be an integer from 1 to 134217727'],
    [['--capacity', '0'], 'ulvs daemon: --capacity must be an integer from 1 to 134217727'],
    [['--group', 'no-such-group-here'], "ulvs daemon: unknown group 'no-such-group-here'"],
    [['--backend', 'dpdk'], 'ulvs daemon: --backend must be afpacket, afpacket-ring or pcap'],
    [['extra'], 'ulvs daemon: Unexpected argument'],
    [['--batch', '0'], 'ulvs daemon: --batch must be an integer from 1 to 1024'],
    [['--batch', '1025'], 'ulvs daemon: --batch must be an integer from 1 to 1024'],
    [['--busy-poll', 'soon'], 'ulvs daemon: --busy-poll must be an integer from 0 to 1000000'],
    [['--rcvbuf', '12Q'], 'ulvs daemon: --rcvbuf must be an integer from 4096 to 1073741824 (bytes; suffix K, M or G allowed)'],
    [['--sndbuf', '2G'], 'ulvs daemon: --sndbuf must be an integer from 4096 to 1073741824'],
    [['--fanout-group', '65536'], 'ulvs daemon: --fanout-group must be an integer from 0 to 65535'],
    [['--backend', 'pcap', '--busy-poll', '10'], 'ulvs daemon: --busy-poll needs the afpacket or afpacket-ring backend'],
    [['--backend', 'afpacket-ring', '--rcvbuf', '4M'], 'ulvs daemon: --rcvbuf needs the afpacket backend'],
  ] as Array<[string[], string]>) {
    const r = await runDaemonToExit(where, args);
    t.equal(r.status, 2, `${args.join(' ')}: exit 2`);
    t.match(r.stderr, msg);
    t.match(r.stderr, 'Usage: ulvs daemon [options]');
  }
  const h = await runDaemonToExit(where, ['-h']);
  t.equal(h.status, 0);
  t.match(h.stdout, '--socket NAME');
  for (const o of ['--batch N', '--busy-poll USEC', '--rcvbuf BYTES', '--sndbuf BYTES', '--fanout-group N']) t.match(h.stdout, o);
});

t.test('an interface that does not exist: the daemon does not start', async (t) => {
  const where = freshWhere(t);
  const r = await runDaemonToExit(where, ['--interface', 'nosuch0']);
  t.equal(r.status, 1);
  t.equal(r.stdout, '', 'no ready line');
  t.match(r.stderr, /^ulvs: interface nosuch0: /);
  t.same(await ulvsadm(['-Ln'], where), { status: 2, stdout: '', stderr: NO_DIRECTOR }, 'nothing is serving');
});

t.test('SIGTERM and SIGINT stop the daemon cleanly', async (t) => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    const where = freshWhere(t);
    const d = await startDaemon(where);
    t.match(d.ready, /^ulvs: director ready \(socket @\S+, 4096 connections, no packet I\/O\)$/);
    const r = await d.stop(sig);
    t.same(r, { code: 0, signal: null }, `${sig}: exit 0`);
    t.equal(d.output().stdout, `${d.ready}\nulvs: director stopped (${sig})\n`);
    t.equal(alarming(d.output().stderr), '');
    t.same(await ulvsadm(['-Ln'], where), { status: 2, stdout: '', stderr: NO_DIRECTOR }, 'the socket is gone');
  }
});

/**
 * Sends `payload` on a raw connection and collects answer lines until `n` arrived
 * or the daemon closed the connection (n = Infinity: we half-close after sending,
 * and the daemon closes once it answered everything).
 */
function raw(where: Where, payload: Buffer | string, n: number): Promise<{ lines: string[]; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connectIn(where);
    const lines: string[] = [];
    const reader = new LineReader(1 << 26);
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ lines, closed });
    };
    const timer = setTimeout(() => finish(false), 10_000);
    s.on('connect', () => (n === Infinity ? s.end(payload) : s.write(payload)));
    s.on('data', (c: Buffer) => {
      reader.push(c, (l) => lines.push(l));
      if (lines.length >= n) finish(false);
    });
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
  });
}

t.test('the daemon survives garbage on its socket, and refused requests change nothing', async (t) => {
  const where = freshWhere(t);
  const d = await startDaemon(where);
  t.teardown(() => d.stop());
  t.equal((await ulvsadm(['-A', '-t', '10.0.0.1:80', '-s', 'rr'], where)).status, 0);
  t.equal((await ulvsadm(['-a', '-t', '10.0.0.1:80', '-r', '10.0.1.1', '-m'], where)).status, 0);
  const before = (await ulvsadm(['-Sn'], where)).stdout;

  const r1 = await raw(where, 'hello\n{"op":\n{"id":1,"op":"format_disk"}\n{"id":2,"op":"addDest","args":[{},{}]}\n', 4);
  t.same(r1.lines.map((l) => JSON.parse(l).errno), ['EINVAL', 'EINVAL', 'ENOSYS', 'EINVAL']);
  const r2 = await raw(where, Buffer.alloc(MAX_REQUEST_BYTES + 1000, 0x7b), 2);
  t.equal(r2.lines.length, 1);
  t.equal(JSON.parse(r2.lines[0]!).errno, 'EMSGSIZE', 'an over-long request');
  t.ok(r2.closed, 'closes that connection');
  const junk = Buffer.alloc(1 << 16);
  for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919) & 0xff;
  const r4 = await raw(where, junk, Infinity);
  t.ok(r4.closed && r4.lines.length > 0 && r4.lines.every((l) => JSON.parse(l).ok === false), 'binary junk: refusals, then closed');
  // Clients that vanish mid-request, with half a line or with answers pending.
  await Promise.all(Array.from({ length: 50 }, (_, i) => new Promise<void>((resolve) => {
    const s = connectIn(where);
    s.on('connect', () => {
      s.write(i % 2 === 0 ? '{"id":1,"op":"flu' : '{"id":1,"op":"getServices"}\n'.repeat(100));
      s.destroy();
      resolve();
    });
    s.on('error', () => resolve());
  })));
  // A refused change, by a well-formed request.
  const r3 = await raw(where, JSON.stringify({ id: 9, op: 'addDest', args: [
    { af: 4, protocol: 6, addr: '10.0.0.1', port: 80, fwmark: 0 },
    { af: 4, addr: '10.0.1.1', port: 80, fwdMethod: 0, weight: 1, uThreshold: 0, lThreshold: 0, tunType: 0, tunPort: 0, tunFlags: 0 },
  ] }) + '\n', 1);
  t.same(JSON.parse(r3.lines[0]!), { id: 9, ok: false, errno: 'EEXIST', message: 'destination already exists' });

  t.ok(d.alive(), 'still running');
  t.equal((await ulvsadm(['-Sn'], where)).stdout, before, 'the table is exactly as it was');
  t.equal((await ulvsadm(['-A', '-t', '10.0.0.2:80'], where)).status, 0, 'and still takes changes');
  t.equal(alarming(d.output().stderr), '', 'nothing alarming logged');
});
