/**
 * `ulvs replay` options: next hops (--neigh, --gw, neither → dropped as no-neighbour), --set
 * (the timeouts new connections get, as `ipvsadm --set`), --seed (twos picks are a function of
 * the seed), and pcapng input (same result as the classic pcap of the same frames).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { buildArp, buildTcp, buildUdp } from '../../src/packet/build.js';
import { parseCapture, type CapturedFrame } from '../../src/io/pcap-file.js';
import { formatMac } from '../../src/util/mac.js';
import { Scratch, pcapBytes, pcapngBytes, readTrace, replayAll, type Run, type TimedFrame, type TraceLine } from './helpers.js';

const T0 = 1_700_000_000;
const C_MAC = '02:00:00:00:00:c1';
const DIR_MAC = '02:00:00:00:00:01';
const GW = '02:00:00:00:00:99';
const c = { srcMac: C_MAC, dstMac: DIR_MAC, saddr: '10.0.0.1' };

const NAT_RULES = `-A -t 10.0.0.100:80 -s rr
-a -t 10.0.0.100:80 -r 10.0.1.1:8080 -m -w 1
-A -u 10.0.0.100:5000 -s rr
-a -u 10.0.0.100:5000 -r 10.0.1.1:5000 -m -w 1
`;

function frames(): TimedFrame[] {
  return [
    { ts: T0, frame: buildTcp({ ...c, daddr: '10.0.0.100', sport: 40000, dport: 80, flags: 0x02 }) },
    { ts: T0 + 1, frame: buildTcp({ srcMac: '02:00:00:00:01:01', dstMac: DIR_MAC, saddr: '10.0.1.1', daddr: '10.0.0.1', sport: 8080, dport: 40000, flags: 0x12 }) },
    { ts: T0 + 2, frame: buildArp({ srcMac: C_MAC, senderIp: '10.0.0.1', targetIp: '10.0.0.100' }) },
  ];
}

interface Job {
  name: string;
  rules: string;
  input: Uint8Array;
  extra: string[];
}

interface JobResult {
  r: Run;
  trace: TraceLine[];
  out: CapturedFrame[];
}

/** Runs the jobs (a few at a time); for each: the run, its trace and its output frames. */
async function runAll(s: Scratch, jobs: Job[]): Promise<JobResult[]> {
  for (const j of jobs) {
    s.write(`${j.name}.rules`, j.rules);
    s.write(`${j.name}.in`, j.input);
  }
  const runs = await replayAll(jobs.map((j) => ['--rules', s.path(`${j.name}.rules`), '--in', s.path(`${j.name}.in`),
    '--out', s.path(`${j.name}.out`), '--trace', s.path(`${j.name}.trace`), ...j.extra]));
  return jobs.map((j, k) => {
    const r = runs[k]!;
    const out = r.status === 0 ? parseCapture(new Uint8Array(readFileSync(s.path(`${j.name}.out`)))).frames : [];
    return { r, trace: r.status === 0 ? readTrace(s.path(`${j.name}.trace`)) : [], out };
  });
}

t.test('next hops: --neigh per address, --gw for the rest, neither → no-neighbour', async (t) => {
  const s = new Scratch();
  t.teardown(() => s.done());
  const input = pcapBytes(frames());

  const v6rules = '-A -t [2001:db8::100]:80 -s rr\n-a -t [2001:db8::100]:80 -r [2001:db8:1::1]:80 -m\n';
  const v6in = pcapBytes([{ ts: T0, frame: buildTcp({ ...c, saddr: '2001:db8::1', daddr: '2001:db8::100', sport: 1, dport: 80 }) }]);
  const [both, gwOnly, none, v6] = await runAll(s, [
    { name: 'both', rules: NAT_RULES, input, extra: ['--neigh', '10.0.1.1=02:00:00:00:01:01', '--gw', GW] },
    { name: 'gw', rules: NAT_RULES, input, extra: ['--gw', GW] },
    { name: 'none', rules: NAT_RULES, input, extra: [] },
    { name: 'v6', rules: v6rules, input: v6in, extra: ['--neigh', '2001:db8:1::1=02:00:00:00:06:01'] },
  ]);
  t.equal(both.r.status, 0, both.r.stderr);
  t.same(both.trace.map((l) => l.reason), ['nat-in', 'nat-out', 'arp-reply']);
  t.same(both.out.map((f) => formatMac(f.data, 0)), ['02:00:00:00:01:01', GW, C_MAC], 'RS from --neigh, client via --gw, ARP back to the asker');

  t.same(gwOnly.out.map((f) => formatMac(f.data, 0)), [GW, GW, C_MAC], '--gw alone: every next hop is the gateway');

  t.equal(none.r.status, 0, 'no next hop is not an error of the run');
  t.same(none.trace.map((l) => [l.verdict, l.reason]), [['drop', 'no-neighbour'], ['drop', 'no-neighbour'], ['reply', 'arp-reply']],
    'frames without a next hop are dropped and say why');
  t.equal(none.out.length, 1, 'only the ARP reply is sent');
  t.equal(none.trace[0]!.dest, '10.0.1.1:8080', 'the connection was still scheduled');

  t.same(v6.out.map((f) => formatMac(f.data, 0)), ['02:00:00:00:06:01'], 'IPv6 --neigh entries');
});

t.test('--set TCP TCPFIN UDP: the timeouts new connections get', async (t) => {
  const s = new Scratch();
  t.teardown(() => s.done());
  const input = pcapBytes([
    { ts: T0, frame: buildTcp({ ...c, daddr: '10.0.0.100', sport: 40000, dport: 80, flags: 0x02 }) },
    { ts: T0 + 1, frame: buildTcp({ ...c, daddr: '10.0.0.100', sport: 40000, dport: 80, flags: 0x10 }) }, // ESTABLISHED
    { ts: T0 + 1, frame: buildTcp({ ...c, daddr: '10.0.0.100', sport: 40001, dport: 80, flags: 0x02 }) },
    { ts: T0 + 1, frame: buildTcp({ ...c, daddr: '10.0.0.100', sport: 40001, dport: 80, flags: 0x10 }) },
    { ts: T0 + 1, frame: buildTcp({ srcMac: '02:00:00:00:01:01', dstMac: DIR_MAC, saddr: '10.0.1.1', daddr: '10.0.0.1', sport: 8080, dport: 40001, flags: 0x11 }) }, // server FIN: FIN_WAIT
    { ts: T0 + 1, frame: buildUdp({ ...c, daddr: '10.0.0.100', sport: 41000, dport: 5000, payload: 'x' }) },
  ]);
  const [r, dflt] = await runAll(s, [
    { name: 'set', rules: NAT_RULES, input, extra: ['--gw', GW, '--set', '100', '20', '30', '--conns'] },
    { name: 'dflt', rules: NAT_RULES, input, extra: ['--gw', GW, '--conns'] },
  ]);
  t.equal(r.r.status, 0, r.r.stderr);
  const lines = r.r.stdout.split('\n');
  t.ok(lines.some((l) => l.startsWith('TCP 01:40  ESTABLISHED 10.0.0.1:40000')), 'ESTABLISHED: 100 s');
  t.ok(lines.some((l) => l.startsWith('TCP 00:20  FIN_WAIT    10.0.0.1:40001')), 'FIN_WAIT: 20 s');
  t.ok(lines.some((l) => l.startsWith('UDP 00:30  UDP         10.0.0.1:41000')), 'UDP: 30 s');
  t.ok(dflt.r.stdout.includes('TCP 15:00  ESTABLISHED 10.0.0.1:40000'), 'without --set: 900 s');
});

t.test('--seed: the twos scheduler\'s picks depend on the seed and only on it', async (t) => {
  const s = new Scratch();
  t.teardown(() => s.done());
  const rules = '-A -t 10.0.0.100:80 -s twos\n' + [1, 2, 3, 4, 5, 6].map((k) => `-a -t 10.0.0.100:80 -r 10.0.1.${k}:80 -g -w 1\n`).join('');
  const input = pcapBytes(Array.from({ length: 40 }, (_, i) => ({
    ts: T0 + i, frame: buildTcp({ ...c, daddr: '10.0.0.100', sport: 30000 + i, dport: 80, flags: 0x02 }),
  })));
  const [a1, a2, b] = (await runAll(s, [
    { name: 'a1', rules, input, extra: ['--gw', GW, '--seed', '7'] },
    { name: 'a2', rules, input, extra: ['--gw', GW, '--seed', '7'] },
    { name: 'b', rules, input, extra: ['--gw', GW, '--seed', '8'] },
  ])).map((x) => x.trace.map((l) => l.dest));
  t.equal(a1.length, 40);
  t.ok(a1.every((d) => d !== null), 'every SYN scheduled');
  t.same(a2, a1, 'same seed, same picks');
  t.not(JSON.stringify(b), JSON.stringify(a1), 'another seed, other picks');
  t.ok(new Set(a1).size >= 3, `picks spread over the servers (${new Set(a1).size} of 6)`);
});

t.test('pcapng input gives the same output as pcap', async (t) => {
  const s = new Scratch();
  t.teardown(() => s.done());
  const fs = frames().map((f, i) => ({ ...f, ts: f.ts + i * 0.000123 }));
  const [a, b] = await runAll(s, [
    { name: 'pcap', rules: NAT_RULES, input: pcapBytes(fs), extra: ['--gw', GW, '--conns'] },
    { name: 'pcapng', rules: NAT_RULES, input: pcapngBytes(fs), extra: ['--gw', GW, '--conns'] },
  ]);
  t.equal(b.r.status, 0, b.r.stderr);
  t.same(b.trace, a.trace, 'same trace');
  t.same(b.out.map((f) => [f.tsUs, Buffer.from(f.data).toString('hex')]), a.out.map((f) => [f.tsUs, Buffer.from(f.data).toString('hex')]),
    'same frames with the same (microsecond) timestamps');
  t.equal(b.r.stdout, a.r.stdout, 'same connection listing');
  t.equal(a.out[0]!.tsUs, Math.round(fs[0]!.ts * 1e6));
});
