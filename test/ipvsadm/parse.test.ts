/**
 * What the parser hands to the control API (the objects the kernel would get),
 * the C library parsing rules ipvsadm inherits, and the shape of parse exits.
 * Messages and exit codes of the real ipvsadm are covered by golden-oracle.
 */
import t from 'tap';
import { parseIpvsadmArgs, type ParsedCommand } from '../../src/cli/ipvsadm/parse.js';
import { cAtoi, inetAton, inetPton4, inetPton6, ntop6, stringToNumber } from '../../src/cli/ipvsadm/libc.js';
import { numericResolver, staticResolver } from '../../src/cli/ipvsadm/resolver.js';
import { Popt } from '../../src/cli/ipvsadm/popt.js';
import { POPT_TABLE } from '../../src/cli/ipvsadm/options.js';

const ctx = { program: 'ipvsadm', resolver: numericResolver };

async function cmd(line: string | string[]): Promise<ParsedCommand> {
  const argv = typeof line === 'string' ? line.split(' ') : line;
  const r = await parseIpvsadmArgs(argv, ctx);
  if (!r.ok) throw new Error(`unexpected exit: ${r.exit.message}`);
  return r.command;
}

t.test('inet_aton forms (glibc)', async (t) => {
  t.equal(inetAton('10.1'), 0x0a000001, 'a.b fills the last 24 bits');
  t.equal(inetAton('1.2.3'), 0x01020003, 'a.b.c fills the last 16 bits');
  t.equal(inetAton('0x0a000001'), 0x0a000001, 'hex');
  t.equal(inetAton('010.0.0.1'), 0x08000001, 'octal');
  t.equal(inetAton('167772161'), 0x0a000001, 'one 32-bit number');
  t.equal(inetAton('1.2.3.4 junk'), 0x01020304, 'anything after white space is ignored');
  t.equal(inetAton('08.0.0.1'), null, '8 is not octal');
  t.equal(inetAton('1.2.3.256'), null);
  t.equal(inetAton('256.1'), null);
  t.equal(inetAton('4294967296'), null);
  t.equal(inetAton('1.2.3.4.5'), null);
  t.equal(inetAton('a.b.c.d'), null);
  t.equal(inetAton(''), null);
});

t.test('inet_pton / inet_ntop (glibc)', async (t) => {
  t.equal(inetPton4('010.0.0.1'), null, 'no leading zeros');
  t.equal(inetPton4('1.2.3'), null);
  t.equal(inetPton4('0.0.0.0'), 0);
  t.same(inetPton6('::'), [0, 0, 0, 0]);
  t.same(inetPton6('::ffff:1.2.3.4'), [0, 0, 0xffff, 0x01020304]);
  for (const bad of ['1::2::3', ':1', '1:', '12345::', '::1.2.3.04', '1:2:3:4:5:6:7:8::', '1:2:3:4:5:6:7', 'g::1']) {
    t.equal(inetPton6(bad), null, bad);
  }
  t.equal(ntop6([0, 0, 0, 2]), '::2', 'no dotted tail when the seventh group is zero');
  t.equal(ntop6([0, 0, 0, 0x01020304]), '::1.2.3.4');
  t.equal(ntop6([0, 0, 0xffff, 0x01020304]), '::ffff:1.2.3.4');
  t.equal(ntop6([0x00010000, 0x00000002, 0, 3]), '1:0:0:2::3', 'longest zero run');
  t.equal(ntop6([0x20010db8, 0, 0x00010000, 1]), '2001:db8::1:0:0:1', 'first run wins a tie');
  t.equal(ntop6([0x20010db8, 0x00010001, 0x00010001, 0x00010001]), '2001:db8:1:1:1:1:1:1', 'no run to compress');
  t.equal(ntop6([0x20010db8, 0x0001, 0x00010001, 0x00010001]), '2001:db8:0:1:1:1:1:1', 'a single zero group stays');
});

t.test('strtol-based numbers', async (t) => {
  t.equal(stringToNumber(' 5', 0, 10), 5, 'leading white space');
  t.equal(stringToNumber('+5', 0, 10), 5);
  t.equal(stringToNumber('5 ', 0, 10), -1, 'trailing junk');
  t.equal(stringToNumber('', 0, 10), -1);
  t.equal(stringToNumber('0x5', 0, 10), -1, 'base 10 only');
  t.equal(stringToNumber('99999999999999999999', 0, 2147483647), -1, 'ERANGE');
  t.equal(cAtoi('64abc'), 64);
  t.equal(cAtoi('4294967297'), 1, 'atoi keeps the low 32 bits of the long');
});

t.test('popt: bundles, values, optional values, leftovers', async (t) => {
  const p = new Popt(['ipvsadm', '-At', '1.2.3.4:80', 'extra', '-p', '-n', '--weight=5', '--', '-x'], POPT_TABLE);
  t.same(p.getNextOpt(), { kind: 'option', val: 'A', arg: null });
  t.same(p.getNextOpt(), { kind: 'option', val: 't', arg: '1.2.3.4:80' });
  t.same(p.getNextOpt(), { kind: 'option', val: 'p', arg: null }, '-p does not take a word starting with -');
  t.same(p.getNextOpt(), { kind: 'option', val: 'n', arg: null });
  t.same(p.getNextOpt(), { kind: 'option', val: 'w', arg: '5' });
  t.same(p.getNextOpt(), { kind: 'end' });
  t.equal(p.getArg(), 'extra');
  t.equal(p.getArg(), '-x', 'after -- everything is a leftover');
  t.equal(p.getArg(), null);

  const q = new Popt(['ipvsadm', '-x', '-5', '-p60', '-t=a', '-y'], POPT_TABLE);
  t.same(q.getNextOpt(), { kind: 'option', val: 'x', arg: '-5' }, 'a required value may start with -');
  t.same(q.getNextOpt(), { kind: 'option', val: 'p', arg: '60' });
  t.same(q.getNextOpt(), { kind: 'option', val: 't', arg: 'a' }, '= after a short option is skipped');
  t.same(q.getNextOpt(), { kind: 'error', error: 'missing argument' });
  t.equal(q.badOption(), '-y');
});

t.test('-A / -E send a complete service with defaults', async (t) => {
  t.same(await cmd('-A -t 10.0.0.1:80 -p'), {
    cmd: 'add-service',
    svc: {
      af: 4, protocol: 6, addr: '10.0.0.1', port: 80, fwmark: 0, schedName: 'wlc', flags: 1, timeout: 360,
      netmask: '255.255.255.255', pe: '',
    },
  }, '-p without a value is 360 s');
  const e = await cmd('-E -t 10.0.0.1:80 -p 60');
  t.equal(e.cmd === 'edit-service' && e.svc.schedName, 'wlc', '-E without -s reverts to wlc');
  const m = await cmd('-A -u 10.1:53 -p -M 24 -s sh -b sh-port,flag-3');
  t.same(m.cmd === 'add-service' && [m.svc.addr, m.svc.netmask, m.svc.flags, m.svc.protocol], ['10.0.0.1', '0.0.0.24', 0x1 | 0x10 | 0x20, 17],
    '-M 24 is the address 0.0.0.24, not a prefix');
  const f6 = await cmd('-A -f 7 -6 -p -M 64 -o');
  t.same(f6.cmd === 'add-service' && f6.svc, {
    af: 6, protocol: 0, addr: '::', port: 0, fwmark: 7, schedName: 'wlc', flags: 1 | 4, timeout: 360, netmask: '64', pe: '',
  });
  const v6 = await cmd('-A -t [2001:db8::1]:443 -s verylongschedulername --pe sip');
  t.same(v6.cmd === 'add-service' && [v6.svc.af, v6.svc.addr, v6.svc.port, v6.svc.netmask, v6.svc.schedName, v6.svc.pe],
    [6, '2001:db8::1', 443, '128', 'verylongschedul', 'sip'], 'scheduler names keep 15 characters');
});

t.test('-a / -e: port forced for -g and -i, kept for -m; complete dest', async (t) => {
  const g = await cmd('-a -t 10.0.0.1:80 -r 10.0.0.2:8080');
  t.same(g.cmd === 'add-server' && g.dest, {
    af: 4, addr: '10.0.0.2', port: 80, fwdMethod: 3, weight: 1, uThreshold: 0, lThreshold: 0, tunType: 0, tunPort: 0, tunFlags: 0,
  });
  const m = await cmd('-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m -w 0 -x 10 -y 5');
  t.same(m.cmd === 'add-server' && [m.dest.port, m.dest.fwdMethod, m.dest.weight, m.dest.uThreshold, m.dest.lThreshold], [8080, 0, 0, 10, 5]);
  const i = await cmd('-e -t 10.0.0.1:80 -r [2001::9]:99 -i --tun-type gue --tun-port 6080 --tun-remcsum');
  t.same(i.cmd === 'edit-server' && i.dest, {
    af: 6, addr: '2001::9', port: 80, fwdMethod: 2, weight: 1, uThreshold: 0, lThreshold: 0, tunType: 1, tunPort: 6080, tunFlags: 2,
  });
  const f = await cmd('-a -f 5 -r 10.0.0.3 -m');
  t.same(f.cmd === 'add-server' && [f.svc.protocol, f.svc.fwmark, f.dest.port], [0, 5, 0], 'fwmark service: dest port 0');
  const d = await cmd('-d -t 10.0.0.1:80 -r 10.0.0.2:8080');
  t.equal(d.cmd === 'delete-server' && d.dest.port, 8080, '-d keeps the given port');
});

t.test('other commands', async (t) => {
  t.same(await cmd('-Z'), { cmd: 'zero', svc: null });
  t.same(await cmd('-Z -t 0.0.0.0:0'), { cmd: 'zero', svc: null }, 'an all-zero service means everything (libipvs)');
  t.same(await cmd('-Z -f 3'), { cmd: 'zero', svc: { af: 4, protocol: 0, addr: '0.0.0.0', port: 0, fwmark: 3 } });
  t.same(await cmd('--set 1 0 7'), { cmd: 'set', timeouts: { tcp: 1, tcpFin: 0, udp: 7 } });
  t.same(await cmd('--start-daemon master'), {
    cmd: 'start-daemon',
    daemon: { state: 'master', mcastIfn: 'eth0', syncId: 0, syncMaxlen: 0, mcastGroup: '', mcastPort: 0, mcastTtl: 0 },
  }, 'zero/empty = let the kernel choose its default');
  t.same(await cmd('--start-daemon=backup --mcast-interface averyveryverylongifname --mcast-group ff02::1 --syncid 9'), {
    cmd: 'start-daemon',
    daemon: { state: 'backup', mcastIfn: 'averyveryverylo', syncId: 9, syncMaxlen: 0, mcastGroup: 'ff02::1', mcastPort: 0, mcastTtl: 0 },
  });
  t.same(await cmd('--stop-daemon backup --syncid 4'), {
    cmd: 'stop-daemon',
    daemon: { state: 'backup', mcastIfn: '', syncId: 4, syncMaxlen: 0, mcastGroup: '', mcastPort: 0, mcastTtl: 0 },
  });
  const l = await cmd('-Lnu 10.0.0.1:53 --stats -X --sort');
  t.same(l.cmd === 'list' && [l.target, l.svc, l.format.numeric, l.format.stats, l.format.exact, l.format.nosort],
    ['service', { af: 4, protocol: 17, addr: '10.0.0.1', port: 53, fwmark: 0 }, true, true, true, false]);
  t.same(await cmd('-S -n'), { cmd: 'save', format: { numeric: true, stats: false, rate: false, thresholds: false, persistentConn: false, nosort: false, exact: false, tunInfo: false, json: false } });
});

t.test('names: hosts via gethostbyname, ports via the service protocol', async (t) => {
  const resolver = staticResolver({
    hosts: { web: '192.0.2.10' },
    services: 'http 80/tcp www\nsyslog 514/udp\nhttp 80/sctp\n',
  });
  const r = await parseIpvsadmArgs('-a -u web:syslog -r web -m'.split(' '), { program: 'x', resolver });
  t.same(r.ok && r.command.cmd === 'add-server' && [r.command.svc.addr, r.command.svc.port, r.command.dest.addr, r.command.dest.port],
    ['192.0.2.10', 514, '192.0.2.10', 514]);
  const www = await parseIpvsadmArgs(['-A', '-t', 'web:www'], { program: 'x', resolver });
  t.equal(www.ok && www.command.cmd === 'add-service' && www.command.svc.port, 80, 'aliases count');
  const udp = await parseIpvsadmArgs(['-A', '-u', 'web:http'], { program: 'x', resolver });
  t.same(!udp.ok && udp.exit, { message: 'illegal virtual server address[:port] specified\n', stream: 'stderr', exit: 2, fatal: true },
    'no udp entry for http');
  const fw = await parseIpvsadmArgs(['-a', '-f', '1', '-r', 'web:http', '-m'], { program: 'x', resolver });
  t.equal(fw.ok && fw.command.cmd === 'add-server' && fw.command.dest.port, 80, 'fwmark services look up tcp');
});

t.test('parse exits: stream, status and whether -R would stop', async (t) => {
  const exit = async (line: string[]) => {
    const r = await parseIpvsadmArgs(line, { program: '/sbin/ipvsadm', resolver: numericResolver });
    return r.ok ? null : r.exit;
  };
  t.same(await exit(['-n']), {
    message: "Try `/sbin/ipvsadm -h' or '/sbin/ipvsadm --help' for more information.\n", stream: 'stderr', exit: 255, fatal: true,
  });
  t.same(await exit(['-L', '--bogus']), { message: '--bogus: unknown option\n', stream: 'stderr', exit: 255, fatal: false });
  t.same(await exit(['-L', '-n', '-n']), { message: "multiple 'numeric' options specified\n", stream: 'stderr', exit: 2, fatal: true });
  t.same(await exit(['-A', '-6']), { message: '-6 used before -f\n\n', stream: 'stderr', exit: 2, fatal: true });
  const h = await exit(['-h']);
  t.same(h && [h.stream, h.exit, h.message.split('\n')[2]], ['stdout', 0, '  /sbin/ipvsadm -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]']);
  t.same(await exit(['-A', '-t', '1.2.3.4:80', '-b', ',']), { message: "invalid scheduler flag `,'\n", stream: 'stderr', exit: 2, fatal: true },
    'ipvsadm 1.31 crashes here; we report the value');
});
