/**
 * The control-plane matrix through the real protocol (one in-process daemon,
 * ipvsadm over the socket client): 3 protocols × the 14 schedulers × IPv4/IPv6 ×
 * the three forwarding methods — add, list, edit, list, save, delete — plus the
 * timeouts (0 keeps the old value).
 */
import t, { type Test } from 'tap';
import { startInProcess, destLine, BANNER, TITLE, type InProcessDaemon } from './helpers.js';

const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh', 'twos'];
const PROTOCOLS = [
  { opt: '-t', name: 'TCP' },
  { opt: '-u', name: 'UDP' },
  { opt: '--sctp-service', name: 'SCTP' },
];
const FAMILIES = [
  { af: 4, vip: '172.20.150.8', rip: '172.20.150.21', text: (a: string, p: number) => `${a}:${p}` },
  { af: 6, vip: '2001:db8::8', rip: '2001:db8::21', text: (a: string, p: number) => `[${a}]:${p}` },
];
const METHODS = [
  { opt: '-m', name: 'Masq', saveTail: '' },
  { opt: '-g', name: 'Route', saveTail: '' },
  // -S spells out the tunnel type of tunnel dests.
  { opt: '-i', name: 'Tunnel', saveTail: ' --tun-type ipip' },
];

let d: InProcessDaemon;
t.before(async () => {
  d = await startInProcess();
});
t.teardown(() => d.stop());

async function ok(t: Test, args: string[]): Promise<string> {
  const r = await d.run(args);
  t.equal(r.status, 0, `ipvsadm ${args.join(' ')} → 0`);
  t.equal(r.stderr, '', `ipvsadm ${args.join(' ')}: no error text`);
  return r.stdout;
}

t.test('protocols × schedulers × families × forwarding methods', async (t) => {
  let combos = 0;
  for (const proto of PROTOCOLS) {
    for (const fam of FAMILIES) {
      for (const method of METHODS) {
        for (const [i, sched] of SCHEDULERS.entries()) {
          const next = SCHEDULERS[(i + 5) % SCHEDULERS.length]!;
          await t.test(`${proto.name} IPv${fam.af} ${method.name} ${sched}`, async (t) => {
            const vip = fam.text(fam.vip, 80);
            // -g and -i force the service port onto the real server (ipvsadm), -m keeps 8080.
            const ripPort = method.opt === '-m' ? 8080 : 80;
            const rip = fam.text(fam.rip, ripPort);
            const svcLine = (s: string) => `${proto.name.padEnd(4)} ${vip} ${s}`;

            await ok(t, ['-A', proto.opt, vip, '-s', sched]);
            await ok(t, ['-a', proto.opt, vip, '-r', fam.text(fam.rip, 8080), method.opt, '-w', '3']);
            t.equal(await ok(t, ['-Ln']), [BANNER, ...TITLE, svcLine(sched), destLine(rip, method.name, 3), ''].join('\n'));

            await ok(t, ['-E', proto.opt, vip, '-s', next]);
            await ok(t, ['-e', proto.opt, vip, '-r', fam.text(fam.rip, 8080), method.opt, '-w', '9', '-x', '100', '-y', '10']);
            t.equal(await ok(t, ['-Ln']), [BANNER, ...TITLE, svcLine(next), destLine(rip, method.name, 9), ''].join('\n'));
            t.equal(await ok(t, ['-L', '-n', proto.opt, vip]), [...TITLE, svcLine(next), destLine(rip, method.name, 9), ''].join('\n'),
              'one service: no banner');
            const thr = await ok(t, ['-Ln', '--thresholds']);
            t.match(thr, `  -> ${rip.padEnd(28)} 100        10         0          0         \n`, 'thresholds kept by -e');
            const saveSvc = `${proto.opt} ${vip}`;
            t.equal(await ok(t, ['-S', '-n']),
              `-A ${saveSvc} -s ${next}\n-a ${saveSvc} -r ${rip} ${method.opt} -w 9${method.saveTail}\n`);

            await ok(t, ['-d', proto.opt, vip, '-r', rip]);
            t.equal(await ok(t, ['-Ln']), [BANNER, ...TITLE, svcLine(next), ''].join('\n'));
            await ok(t, ['-D', proto.opt, vip]);
            t.equal(await ok(t, ['-Ln']), [BANNER, ...TITLE, ''].join('\n'));
          });
          combos++;
        }
      }
    }
  }
  t.equal(combos, 3 * 14 * 2 * 3, 'every combination ran');
});

t.test('timeouts: set and read back; 0 keeps the old value', async (t) => {
  const read = async () => ok(t, ['-L', '--timeout']);
  t.equal(await read(), 'Timeout (tcp tcpfin udp): 900 120 300\n', 'defaults');
  await ok(t, ['--set', '1000', '60', '200']);
  t.equal(await read(), 'Timeout (tcp tcpfin udp): 1000 60 200\n');
  await ok(t, ['--set', '0', '30', '0']);
  t.equal(await read(), 'Timeout (tcp tcpfin udp): 1000 30 200\n', 'only tcpfin changed');
  await ok(t, ['--set', '0', '0', '0']);
  t.equal(await read(), 'Timeout (tcp tcpfin udp): 1000 30 200\n', 'all zero: nothing changes');
  await ok(t, ['--set', '5', '0', '7']);
  t.equal(await read(), 'Timeout (tcp tcpfin udp): 5 30 7\n');
  // ipvsadm itself caps timeouts at 31 days (MAX_TIMEOUT); the director's INT_MAX/HZ check is behind it.
  const bad = await d.run(['--set', '2678401', '1', '1']);
  t.same(bad, { status: 2, stdout: '', stderr: "invalid timeout value `2678401' specified\n" });
  t.equal(await read(), 'Timeout (tcp tcpfin udp): 5 30 7\n', 'a refused --set changes nothing');
  await ok(t, ['--set', '2678400', '1', '1']);
  t.equal(await read(), 'Timeout (tcp tcpfin udp): 2678400 1 1\n', 'the 31-day maximum is accepted');
  await ok(t, ['--set', '900', '120', '300']);
});
