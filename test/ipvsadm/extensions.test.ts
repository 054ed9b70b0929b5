/**
 * ulvs extensions: --json listings and the fwmark classifier rules
 * (--add-mark-rule/--del-mark-rule, -L --mark-rules, -S/-R). None of them may
 * change a classic invocation's behaviour.
 */
import t from 'tap';
import { run, apply, exampleTable } from './helpers.js';
import { FakeApi } from './fake-api.js';

const zs = { conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 };
const zr = { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 };

t.test('-L --json: the whole table', async (t) => {
  const api = await exampleTable();
  const r = await run(api, ['-L', '--json']);
  t.equal(r.status, 0);
  t.equal(r.stderr, '');
  const dest = (address: string, port: number, forward: string, extra: object) => ({
    af: 4, address, port, forward, weight: 1, uThreshold: 0, lThreshold: 0, activeConns: 0, inactConns: 0,
    persistConns: 0, tunnel: null, stats: zs, rates: zr, ...extra,
  });
  t.same(JSON.parse(r.stdout), {
    version: '1.2.1',
    connTabSize: 4096,
    services: [
      {
        af: 4, fwmark: null, protocol: 'tcp', address: '172.20.0.10', port: 443, scheduler: 'sh', schedFlags: ['sh-port'],
        persistent: { timeout: 900, netmask: '255.255.0.0' }, pe: null, ops: false, stats: zs, rates: zr,
        dests: [
          dest('172.20.1.1', 443, 'route', { weight: 10, activeConns: 12, inactConns: 3 }),
          dest('172.20.1.2', 443, 'route', { weight: 20, uThreshold: 500, lThreshold: 300, activeConns: 7, inactConns: 1 }),
        ],
      },
      {
        af: 4, fwmark: null, protocol: 'udp', address: '172.20.0.10', port: 514, scheduler: 'wlc', schedFlags: [],
        persistent: null, pe: null, ops: true, stats: zs, rates: zr,
        dests: [dest('172.20.1.3', 514, 'masq', {})],
      },
      {
        af: 4, fwmark: 100, protocol: null, address: null, port: null, scheduler: 'rr', schedFlags: [],
        persistent: null, pe: null, ops: false, stats: zs, rates: zr,
        dests: [dest('172.20.1.4', 0, 'tunnel', { tunnel: { type: 'gre', port: null, csum: 'csum' } })],
      },
    ],
  });
  t.ok(r.stdout.endsWith('}\n'), 'one JSON document and a newline');
});

t.test('--json on the other listings', async (t) => {
  const api = await exampleTable();
  api.conns = [{
    protoName: 'TCP', af: 4, caddr: '192.0.2.5', cport: 40000, vaddr: '172.20.0.10', vport: 443,
    daddr: '172.20.1.1', dport: 443, state: 'ESTABLISHED', expires: 899, peName: '', peData: '',
  }];
  const one = JSON.parse((await run(api, ['-L', '-f', '100', '--json'])).stdout);
  t.same(one.services.map((s: { fwmark: number }) => s.fwmark), [100]);
  t.notOk('version' in one, 'a single service has no banner data, like the text form');
  t.same(JSON.parse((await run(api, ['-L', '-c', '--json'])).stdout), {
    connections: [{
      protocol: 'TCP', af: 4, client: { address: '192.0.2.5', port: 40000 }, virtual: { address: '172.20.0.10', port: 443 },
      destination: { address: '172.20.1.1', port: 443 }, state: 'ESTABLISHED', expires: 899, pe: null,
    }],
  });
  t.same(JSON.parse((await run(api, ['-L', '--timeout', '--json'])).stdout), { tcp: 900, tcpFin: 120, udp: 300 });
  await apply(api, ['--start-daemon master --syncid 3']);
  t.same(JSON.parse((await run(api, ['-l', '--daemon', '--json'])).stdout), {
    daemons: [{ state: 'master', mcastInterface: 'eth0', syncId: 3, syncMaxlen: null, mcastGroup: null, mcastPort: null, mcastTtl: null }],
  });
});

t.test('--json is only for listings; classic errors keep their order', async (t) => {
  const api = new FakeApi();
  t.same(await run(api, ['-A', '-t', '10.0.0.1:80', '--json']), { status: 2, stdout: '', stderr: "Illegal 'json' option with the 'add-service' command\n" });
  t.same(await run(api, ['-S', '--json']), { status: 2, stdout: '', stderr: "Illegal 'json' option with the 'save' command\n" });
  t.same(await run(api, ['-L', '--json', '--json']), { status: 2, stdout: '', stderr: "multiple 'json' options specified\n" });
  t.same(await run(api, ['-L', '--json', '-c', '--stats']), { status: 2, stdout: '', stderr: 'options conflicts in the list command\n' });
});

t.test('mark rules: add, list, delete', async (t) => {
  const api = new FakeApi();
  t.same(await run(api, ['--add-mark-rule', 'tcp', '10.0.0.0/8', '80', '5']), { status: 0, stdout: '', stderr: '' });
  await apply(api, ['--add-mark-rule any 2001:db8::/32 * 7', '--add-mark-rule udp 192.0.2.1 1000-2000 4294967295']);
  t.same(api.markRules, [
    { af: 4, protocol: 6, addr: '10.0.0.0', prefix: 8, portLo: 80, portHi: 80, mark: 5 },
    { af: 6, protocol: 0, addr: '2001:db8::', prefix: 32, portLo: 0, portHi: 65535, mark: 7 },
    { af: 4, protocol: 17, addr: '192.0.2.1', prefix: 32, portLo: 1000, portHi: 2000, mark: 4294967295 },
  ]);
  const list = await run(api, ['-L', '--mark-rules']);
  t.equal(list.stdout, [
    'Prot  Destination                                 Ports       Mark',
    'tcp   10.0.0.0/8                                  80          5',
    'any   2001:db8::/32                               *           7',
    'udp   192.0.2.1/32                                1000-2000   4294967295',
    '',
  ].join('\n'));
  t.same(JSON.parse((await run(api, ['-L', '--mark-rules', '--json'])).stdout).markRules[1],
    { protocol: 'any', af: 6, address: '2001:db8::', prefix: 32, ports: { low: 0, high: 65535 }, mark: 7 });
  t.same(await run(api, ['--del-mark-rule', 'tcp', '10.0.0.0/8', '80', '5']), { status: 0, stdout: '', stderr: '' });
  t.equal(api.markRules.length, 2);
  t.same(await run(api, ['--del-mark-rule', 'tcp', '10.0.0.0/8', '80', '5']), { status: 255, stdout: '', stderr: 'No such file or directory\n' });
});

t.test('mark rules: argument errors', async (t) => {
  const api = new FakeApi();
  const err = async (...args: string[]) => (await run(api, args));
  t.same(await err('--add-mark-rule', 'tcp', '10.0.0.0/8', '80'),
    { status: 2, stdout: '', stderr: '--add-mark-rule option requires 4 values: PROTO ADDR[/PREFIX] PORT[-PORT] MARK\n' });
  t.same(await err('--add-mark-rule', 'icmp', '10.0.0.0/8', '80', '1'), { status: 2, stdout: '', stderr: "invalid mark-rule protocol `icmp'\n" });
  t.same(await err('--add-mark-rule', 'tcp', '10.0.0.0/33', '80', '1'), { status: 2, stdout: '', stderr: "invalid mark-rule address `10.0.0.0/33'\n" });
  t.same(await err('--add-mark-rule', 'tcp', 'web', '80', '1'), { status: 2, stdout: '', stderr: "invalid mark-rule address `web'\n" });
  t.same(await err('--add-mark-rule', 'tcp', '10.0.0.0/8', '90-80', '1'), { status: 2, stdout: '', stderr: "invalid mark-rule port `90-80'\n" });
  t.same(await err('--add-mark-rule', 'tcp', '10.0.0.0/8', '80', '0'), { status: 2, stdout: '', stderr: "invalid fwmark value `0' specified\n" });
  t.same(await err('--add-mark-rule', 'tcp', '10.0.0.0/8', '80', '1', 'x'), { status: 2, stdout: '', stderr: 'unexpected argument x\n' });
  t.same(await err('--del-mark-rule', 'tcp', '10.0.0.0/8', '80', '1', '-n'),
    { status: 2, stdout: '', stderr: "Illegal 'numeric' option with the 'del-mark-rule' command\n" });
  t.same(await err('-L', '--mark-rules', '-c'),
    { status: 2, stdout: '', stderr: "The option 'mark-rules' conflicts with the 'connection' option in the 'list' command\n" });
  t.same(await err('-L', '--add-mark-rule'), { status: 2, stdout: '', stderr: "invalid option `--add-mark-rule'\n" });
  t.equal(api.calls.length, 0, 'nothing reached the table');
});

t.test('-S: mark rules first, only when there are any; -R reads them back', async (t) => {
  const api = await exampleTable();
  const classic = (await run(api, ['-S', '-n'])).stdout;
  t.notMatch(classic, /mark-rule/, 'a classic table saves exactly as ipvsadm');
  await apply(api, ['--add-mark-rule tcp 10.0.0.0/8 443 100', '--add-mark-rule any 0.0.0.0/0 * 100']);
  const saved = (await run(api, ['-S', '-n'])).stdout;
  t.equal(saved, '--add-mark-rule tcp 10.0.0.0/8 443 100\n--add-mark-rule any 0.0.0.0/0 * 100\n' + classic);
  const fresh = new FakeApi();
  t.same(await run(fresh, ['-R'], { stdin: saved }), { status: 0, stdout: '', stderr: '' });
  t.same(fresh.markRules, api.markRules);
  t.equal((await run(fresh, ['-S', '-n'])).stdout, saved);
});

t.test('-h and -v', async (t) => {
  const api = new FakeApi();
  t.same(await run(api, ['-v']), { status: 0, stdout: 'ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n', stderr: '' });
  const h = await run(api, ['--help'], { argv0: 'ulvsadm' });
  t.equal(h.status, 0);
  t.equal(h.stderr, '');
  const lines = h.stdout.split('\n');
  t.equal(lines[0], 'ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)');
  t.equal(lines[1], 'Usage:');
  t.equal(lines[3], '  ulvsadm -D virtual-service', 'the program name is argv[0] as invoked');
  t.equal(lines.filter((l) => l.includes('ulvsadm')).length, 13);
  t.ok(lines.includes('  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,'));
  t.equal(lines.at(-2), '  --mcast-ttl ttl                     Multicast TTL (default=1)');
});
