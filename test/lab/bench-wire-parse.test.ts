/**
 * The wire benchmark's pure parts: wrk and iperf3 outputs (recorded from the real
 * tools on this machine, test/fixtures/bench/) become the numbers the report
 * quotes; medians and ratios; the configuration each path installs.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { median, parseIperfTcp, parseIperfUdp, parseWrk, workloadCommand } from '../../src/lab/bench/workloads.js';
import { computePairedRatios, computeRatios, ratioPairs, renderReport, type WireReport, type WireResult } from '../../src/lab/bench/wire-bench.js';
import { ULVS_FORWARDING, benchDnatRuleset, haproxyConfig, ulvsRules } from '../../src/lab/bench/paths.js';
import { restoreSaveText } from '../../src/ctl/restore-file.js';
import { numericResolver } from '../../src/cli/ipvsadm/resolver.js';
import { Director } from '../../src/core/director.js';
import { StaticNeighbours } from '../../src/neigh/static.js';

const DIR = fileURLToPath(new URL('../../../test/fixtures/bench/', import.meta.url));
const fixture = (name: string) => readFileSync(DIR + name, 'utf8');

t.test('wrk: requests/s from the summary; failures have no value', async (t) => {
  t.same(parseWrk(fixture('wrk-keepalive.txt')), { value: 21524.96, note: null });
  t.same(parseWrk(fixture('wrk-close.txt')), { value: 4649.02, note: null });
  const close = parseWrk(fixture('wrk-close.txt'));
  t.ok(close.value! > 0, 'Connection: close run has a rate');
  const refused = parseWrk(fixture('wrk-refused.txt'));
  t.equal(refused.value, null, 'no completed request → no value, not 0');
  t.match(refused.note, /socket errors: connect 0, read 8, write 15485/);
  t.equal(parseWrk('', 'unable to connect to 10.0.0.100:80 Connection refused').value, null);
  t.match(parseWrk('', 'unable to connect').note, /unable to connect/);
  const non2xx = '  100 requests in 1.00s, 1KB read\n  Non-2xx or 3xx responses: 40\nRequests/sec:    100.00\n';
  t.same(parseWrk(non2xx), { value: 100, note: '40 non-2xx responses' });
  t.equal(parseWrk('  10 requests in 1.00s\n  Non-2xx or 3xx responses: 10\nRequests/sec: 10.0\n').value, null, 'all answers errors');
});

t.test('iperf3: TCP Gbit/s received, UDP packets received per second', async (t) => {
  const tcp = JSON.parse(fixture('iperf3-tcp.json')) as { end: { sum_received: { bits_per_second: number } } };
  t.same(parseIperfTcp(fixture('iperf3-tcp.json')), { value: tcp.end.sum_received.bits_per_second / 1e9, note: null });
  const udp = JSON.parse(fixture('iperf3-udp64.json')) as { end: { sum_received: { packets: number; lost_packets: number; seconds: number } } };
  const s = udp.end.sum_received;
  const r = parseIperfUdp(fixture('iperf3-udp64.json'));
  t.equal(r.value, (s.packets - s.lost_packets) / s.seconds);
  t.match(r.note, /% loss/);
  t.same(parseIperfTcp(fixture('iperf3-refused.json')), { value: null, note: 'iperf3: unable to connect to server: Connection refused' });
  t.equal(parseIperfUdp(fixture('iperf3-refused.json')).value, null);
  t.equal(parseIperfTcp('', 'iperf3: error - unable to connect').note, 'iperf3: error - unable to connect');
  const allLost = JSON.stringify({ end: { sum_received: { packets: 50, lost_packets: 50, seconds: 1 } } });
  t.same(parseIperfUdp(allLost), { value: null, note: '0 of 50 datagrams arrived' });
});

t.test('workload command lines', async (t) => {
  const target = { host: '10.0.0.100', httpPort: 80, connections: 32 };
  t.same(workloadCommand('http-close', target, 4).args,
    ['-t1', '-c32', '-d4s', '--timeout', '2s', '-H', 'Connection: close', 'http://10.0.0.100:80/']);
  t.notOk(workloadCommand('http-keepalive', target, 4).args.includes('Connection: close'));
  t.same(workloadCommand('udp-64', target, 4).args.slice(0, 10), ['-c', '10.0.0.100', '-p', '5201', '-u', '-l', '64', '-b', '0', '-t']);
  t.ok(workloadCommand('tcp-bulk', target, 4).timeoutMs > 4000, 'a hung tool is killed, after its duration');
});

t.test('median', async (t) => {
  t.equal(median([]), null);
  t.equal(median([3]), 3);
  t.equal(median([5, 1, 3]), 3);
  t.equal(median([4, 1, 3, 2]), 2.5);
});

t.test('ratios: each ulvs path against each baseline, DR/TUN against NAT', async (t) => {
  t.same(ratioPairs(['direct', 'kernel-dnat', 'ulvs-nat']), [['ulvs-nat', 'kernel-dnat'], ['ulvs-nat', 'direct']]);
  const row = (path: WireResult['path'], workload: WireResult['workload'], value: number | null): WireResult =>
    ({ path, workload, value, unit: 'x', runs: [value], notes: [] });
  const results = [
    row('kernel-dnat', 'http-close', 10_000), row('ulvs-nat', 'http-close', 12_000),
    row('kernel-dnat', 'udp-64', 100_000), row('ulvs-nat', 'udp-64', null),
    row('ulvs-dr', 'http-close', 15_000), row('ulvs-dr', 'udp-64', 50_000),
  ];
  const ratios = computeRatios(results, ['kernel-dnat', 'ulvs-nat', 'ulvs-dr'], ['http-close', 'udp-64']);
  t.same(ratios, {
    'ulvs-nat/kernel-dnat': { 'http-close': 1.2, 'udp-64': null },
    'ulvs-dr/kernel-dnat': { 'http-close': 1.5, 'udp-64': 0.5 },
    'ulvs-dr/ulvs-nat': { 'http-close': 1.25, 'udp-64': null },
  });
  const rep: WireReport = {
    results, ratios, pairedRatios: computePairedRatios(results, ['kernel-dnat', 'ulvs-nat', 'ulvs-dr'], ['http-close', 'udp-64']),
    settings: { runs: 3, seconds: 4, offload: 'off', realServers: 'nginx', wrk: 'wrk', daemonArgs: [], drReplies: 'straight to the client', paths: ['kernel-dnat', 'ulvs-nat', 'ulvs-dr'], workloads: ['http-close', 'udp-64'] },
    machine: { cpus: 2, cpuModel: 'cpu', kernel: 'k', node: 'v20', loadavgStart: [1], loadavgEnd: [1] },
    elapsedSeconds: 1,
  };
  const text = renderReport(rep);
  t.match(text, /^http-close\s+10,000\s+12,000\s+15,000\s+req\/s$/m);
  t.match(text, /^ratio \(of medians\)\s+http-close\s+udp-64$/m);
  t.match(text, /^ulvs-nat\/kernel-dnat\s+1\.20x\s+-$/m);
  t.match(text, /^ratio \(median per round\)\s+http-close\s+udp-64$/m, 'the per-round ratios follow');
  t.match(text, /^DR\/TUN replies: straight to the client$/m, 'the report says how DR/TUN replies travel');
  t.notMatch(renderReport({ ...rep, settings: { ...rep.settings, paths: ['kernel-dnat', 'ulvs-nat'] } }), /DR\/TUN replies/,
    'not when no DR/TUN path ran');
});

t.test('paired ratios: the median of per-round ratios, rounds where either path failed left out', async (t) => {
  const row = (path: WireResult['path'], runs: Array<number | null>): WireResult =>
    ({ path, workload: 'http-close', value: null, unit: 'req/s', runs, notes: [] });
  // The machine drifts: round 2 is slow for both paths. The ratio of medians (9000 / 7641)
  // mixes rounds; the per-round ratios are 0.96, 1.23, 1.04.
  const drift = [row('kernel-dnat', [9758, 7641, 7861]), row('ulvs-nat', [9328, 9364, 8166])];
  t.same(computePairedRatios(drift, ['kernel-dnat', 'ulvs-nat'], ['http-close']),
    { 'ulvs-nat/kernel-dnat': { 'http-close': 1.039 } });
  const failed = [row('kernel-dnat', [100, null, 100, 100]), row('ulvs-nat', [50, 80, null, 90])];
  t.same(computePairedRatios(failed, ['kernel-dnat', 'ulvs-nat'], ['http-close']),
    { 'ulvs-nat/kernel-dnat': { 'http-close': 0.7 } }, 'rounds 2 and 3 are left out: median of 0.5 and 0.9');
  const none = [row('kernel-dnat', [null, 100]), row('ulvs-nat', [50])];
  t.same(computePairedRatios(none, ['kernel-dnat', 'ulvs-nat'], ['http-close']),
    { 'ulvs-nat/kernel-dnat': { 'http-close': null } }, 'no round with both: null');
});

t.test('what the paths install', async (t) => {
  const rs = ['10.0.1.1', '10.0.1.2'];
  const nft = benchDnatRuleset(rs, 80);
  t.match(nft, /tcp dport 80 dnat to numgen inc mod 2 map \{ 0 : 10\.0\.1\.1, 1 : 10\.0\.1\.2 \}/);
  t.match(nft, /meta l4proto \{ tcp, udp \} th dport 5201 dnat to jhash ip saddr mod 2 seed 0x1 map/,
    'iperf3 control and data reach one server: one hash for TCP and UDP');
  const hap = haproxyConfig(rs, 80);
  t.match(hap, /bind 10\.0\.0\.100:80\n  default_backend web\nbackend web\n  balance roundrobin\n  server rs1 10\.0\.1\.1:80\n  server rs2 10\.0\.1\.2:80/);
  t.match(hap, /backend iperf\n  balance source/);
  for (const flag of Object.values(ULVS_FORWARDING)) {
    const text = ulvsRules(rs, 80, flag);
    const director = new Director({ mac: new Uint8Array(6), ip4: 0, neigh: new StaticNeighbours(), capacity: 1024 });
    t.same(await restoreSaveText(director.api, text, numericResolver), { ok: true, lines: 9 }, `${flag}: valid ipvsadm -R input`);
    const services = await director.api.getServices();
    t.equal(services.length, 3, `${flag}: three services`);
  }
  t.match(ulvsRules(rs, 80, '-g'), /^-A -u 10\.0\.0\.100:5201 -s sh$/m);
  const gue = ulvsRules(rs, 80, ULVS_FORWARDING['ulvs-tun-gue']);
  const director = new Director({ mac: new Uint8Array(6), ip4: 0, neigh: new StaticNeighbours(), capacity: 1024 });
  await restoreSaveText(director.api, gue, numericResolver);
  const dests = (await director.api.getServices()).flatMap((s) => s.dests);
  t.same([...new Set(dests.map((d) => `${d.tunType}:${d.tunPort}:${d.tunFlags}`))], ['1:6080:2'],
    'ulvs-tun-gue: every real server is GUE on the lab decapsulators\' port, with remote checksum offload');
});

t.test('bad options are refused before any lab is built', async (t) => {
  const bin = fileURLToPath(new URL('../../../bin/ulvs.js', import.meta.url));
  for (const [args, msg] of [
    [['--dr-replies', 'router'], /--dr-replies must be direct or director/],
    [['--offload', 'maybe'], /--offload must be on or off/],
    [['--paths', 'ulvs-nat,nope'], /--paths: unknown 'nope'/],
  ] as const) {
    const r = spawnSync(process.execPath, [bin, 'bench', 'wire', ...args], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
    t.equal(r.status, 2, `${args.join(' ')}: exit status 2`);
    t.match(r.stderr, msg, `${args.join(' ')}: says why`);
  }
});
