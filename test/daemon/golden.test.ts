/**
 * Golden transcripts through a real `ulvs daemon` process: every command is a
 * separate `ulvsadm` process (invoked through a symlink of that name, as npm's
 * bin links do), checked for stdout, stderr and exit status.
 */
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { freshWhere, startDaemon, ulvsadm, type Transcript, type Where } from './helpers.js';

/** getservbyport(port, "tcp") from the system's services(5), as ipvsadm -S without -n would print it. */
function tcpServiceName(port: number): string {
  try {
    for (const raw of readFileSync('/etc/services', 'utf8').split('\n')) {
      const f = raw.replace(/#.*/, '').trim().split(/\s+/);
      if (f.length >= 2 && f[1] === `${port}/tcp`) return f[0]!;
    }
  } catch {
    // no services file: numeric
  }
  return String(port);
}

const BANNER = 'IP Virtual Server version 1.2.1 (size=4096)';
const TITLE = 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';

interface Step {
  args: string[];
  stdin?: string;
  name?: string;
  expect: Transcript;
}

async function play(t: Test, where: Where, steps: Step[]): Promise<void> {
  for (const s of steps) {
    const got = await ulvsadm(s.args, where, { input: s.stdin, name: s.name });
    t.same(got, s.expect, `${s.name ?? 'ulvsadm'} ${s.args.join(' ')}`);
  }
}

const ok = (stdout = ''): Transcript => ({ stdout, stderr: '', status: 0 });

t.test('the seed walk-through', async (t) => {
  const where = freshWhere(t);
  const daemon = await startDaemon(where);
  t.teardown(() => daemon.stop());
  const http = tcpServiceName(80);
  const httpAlt = tcpServiceName(8080);
  const saved = `-A -t 172.20.150.8:${http} -s wlc\n-a -t 172.20.150.8:${http} -r 172.20.150.21:${httpAlt} -m -w 10\n`;
  await play(t, where, [
    { args: ['-A', '-t', '172.20.150.8:80', '-s', 'rr'], expect: ok() },
    { args: ['-a', '-t', '172.20.150.8:80', '-r', '172.20.150.21:8080', '-m', '-w', '1'], expect: ok() },
    {
      args: ['-Ln'],
      expect: ok(`${BANNER}\n${TITLE}TCP  172.20.150.8:80 rr\n  -> 172.20.150.21:8080           Masq    1      0          0         \n`),
    },
    {
      args: ['-Ln', '--stats'],
      expect: ok(`${BANNER}
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  172.20.150.8:80                     0        0        0        0        0
  -> 172.20.150.21:8080                  0        0        0        0        0
`),
    },
    {
      args: ['-Ln', '--rate'],
      expect: ok(`${BANNER}
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  172.20.150.8:80                     0        0        0        0        0
  -> 172.20.150.21:8080                  0        0        0        0        0
`),
    },
    { args: ['-E', '-t', '172.20.150.8:80', '-s', 'wlc'], expect: ok() },
    { args: ['-e', '-t', '172.20.150.8:80', '-r', '172.20.150.21:8080', '-m', '-w', '10'], expect: ok() },
    {
      args: ['-Ln'],
      expect: ok(`${BANNER}\n${TITLE}TCP  172.20.150.8:80 wlc\n  -> 172.20.150.21:8080           Masq    10     0          0         \n`),
    },
    { args: ['-S'], expect: ok(saved) },
    { args: ['-C'], expect: ok() },
    { args: ['-Ln'], expect: ok(`${BANNER}\n${TITLE}`) },
    { args: ['-R'], stdin: saved, expect: ok() },
    {
      args: ['-Ln'],
      expect: ok(`${BANNER}\n${TITLE}TCP  172.20.150.8:80 wlc\n  -> 172.20.150.21:8080           Masq    10     0          0         \n`),
    },
    // The same through the other names npm installs.
    { name: 'ipvsadm-save', args: ['-n'], expect: ok('-A -t 172.20.150.8:80 -s wlc\n-a -t 172.20.150.8:80 -r 172.20.150.21:8080 -m -w 10\n') },
    { name: 'ipvsadm', args: ['-C'], expect: ok() },
    { name: 'ipvsadm-restore', args: [], stdin: '-A -u 10.1.1.1:53 -s sh\n', expect: ok() },
    { name: 'ulvs', args: ['ipvsadm', '-Sn'], expect: ok('-A -u 10.1.1.1:53 -s sh\n') },
  ]);
});

t.test('error transcripts', async (t) => {
  const where = freshWhere(t);
  const daemon = await startDaemon(where);
  t.teardown(() => daemon.stop());
  await play(t, where, [
    { args: ['-A', '-t', '172.20.150.8:80', '-s', 'rr'], expect: ok() },
    { args: ['-A', '-t', '172.20.150.8:80', '-s', 'rr'], expect: { stdout: '', stderr: 'Service already exists\n', status: 255 } },
    { args: ['-D', '-t', '172.20.150.9:80'], expect: { stdout: '', stderr: 'No such service\n', status: 255 } },
    { args: ['-E', '-t', '172.20.150.9:80', '-s', 'rr'], expect: { stdout: '', stderr: 'No such service\n', status: 255 } },
    { args: ['-a', '-t', '172.20.150.9:80', '-r', '10.0.0.1'], expect: { stdout: '', stderr: 'Service not defined\n', status: 255 } },
    { args: ['-d', '-t', '172.20.150.8:80', '-r', '10.0.0.1'], expect: { stdout: '', stderr: 'No such destination\n', status: 255 } },
    { args: ['-L', '-n', '-t', '172.20.150.9:80'], expect: { stdout: '', stderr: 'No such service\n', status: 1 } },
    { args: ['-A', '-t', '172.20.150.8:81', '-s', 'nosuch'], expect: { stdout: '', stderr: 'Scheduler or persistence engine not found\n', status: 255 } },
    // ipvsadm's own validation: exit 2.
    {
      args: ['-A', '-t', '172.20.150.8:81', '-w', '5'],
      expect: { stdout: '', stderr: "Illegal 'weight' option with the 'add-service' command\n", status: 2 },
    },
    {
      args: ['-a', '-t', '172.20.150.8:80', '-r', '10.0.0.1', '-w', '70000'],
      expect: { stdout: '', stderr: 'illegal weight specified\n', status: 2 },
    },
    // popt: unknown option exits 255; the hint names the program as invoked.
    { args: ['-A', '-t', '172.20.150.8:81', '--bogus'], expect: { stdout: '', stderr: '--bogus: unknown option\n', status: 255 } },
    {
      name: 'ipvsadm', args: ['--bogus'],
      expect: { stdout: '', stderr: "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n", status: 255 },
    },
    {
      args: ['-n'],
      expect: { stdout: '', stderr: "Try `ulvsadm -h' or 'ulvsadm --help' for more information.\n", status: 255 },
    },
    { args: ['-Sn'], expect: ok('-A -t 172.20.150.8:80 -s rr\n') },
  ]);
});

t.test('no daemon: ipvsadm\'s start-up failure', async (t) => {
  const where = freshWhere(t);
  const r = await ulvsadm(['-Ln'], where);
  t.same(r, {
    stdout: '',
    stderr: 'Can\'t initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module?\n',
    status: 2,
  });
  const h = await ulvsadm(['-h'], where, { name: 'ipvsadm' });
  t.equal(h.status, 2, 'like ipvsadm, even -h needs the control channel');
});
