/**
 * `ulvs replay` end to end on one capture (ARP, NAT both ways, DR, a GRE tunnel, frames that are
 * not for a service): OUT.pcap judged by tshark with checksum validation on and carrying the
 * input timestamps, and the pinned outputs — --list (`ipvsadm -Ln`), --stats (`-Ln --stats
 * --exact`), --conns (`-Lnc`, expiry relative to the last frame) — compared byte for byte with
 * text built from ipvsadm's print formats, and --trace (one JSON object per input frame).
 */
import t from 'tap';
import { buildArp, buildTcp, buildUdp } from '../../src/packet/build.js';
import { Scratch, pcapBytes, readTrace, replay, type TimedFrame } from './helpers.js';
import { badChecksums, dissectFile, tsharkMissing, tsharkTestOptions } from '../util/tshark.js';

const T0 = 1_700_000_000;
const CLIENT = '10.0.0.1';
const C_MAC = '02:00:00:00:00:c1';
const DIR_MAC = '02:00:00:00:00:01';
const RS1 = '10.0.1.1', RS2 = '10.0.1.2', RS3 = '10.0.1.3';
const M1 = '02:00:00:00:01:01', M2 = '02:00:00:00:01:02', M3 = '02:00:00:00:01:03';

const RULES = `-A -t 10.0.0.100:80 -s rr
-a -t 10.0.0.100:80 -r ${RS1}:8080 -m -w 1
-a -t 10.0.0.100:80 -r ${RS2}:8080 -m -w 1
-A -u 10.0.0.100:5000 -s wlc
-a -u 10.0.0.100:5000 -r ${RS3}:5000 -g -w 2
-A -t 10.0.0.101:443 -s rr
-a -t 10.0.0.101:443 -r ${RS3}:443 -i --tun-type gre --tun-csum -w 1
`;

const NEIGH = ['--neigh', `${RS1}=${M1}`, '--neigh', `${RS2}=${M2}`, '--neigh', `${RS3}=${M3}`, '--neigh', `${CLIENT}=${C_MAC}`];

const c = { srcMac: C_MAC, dstMac: DIR_MAC, saddr: CLIENT };
const SYN = 0x02, ACK = 0x10;
const INPUT: TimedFrame[] = [
  { ts: T0, frame: buildArp({ srcMac: C_MAC, senderIp: CLIENT, targetIp: '10.0.0.100', padTo: 60 }) },
  { ts: T0 + 0.5, frame: buildTcp({ ...c, daddr: '10.0.0.100', sport: 40000, dport: 80, flags: SYN }) },
  { ts: T0 + 0.6, frame: buildTcp({ srcMac: M2, dstMac: DIR_MAC, saddr: RS2, daddr: CLIENT, sport: 8080, dport: 40000, flags: SYN | ACK }) },
  { ts: T0 + 0.7, frame: buildTcp({ ...c, daddr: '10.0.0.100', sport: 40000, dport: 80, flags: ACK }) },
  { ts: T0 + 1, frame: buildTcp({ ...c, daddr: '10.0.0.100', sport: 40001, dport: 80, flags: SYN }) },
  { ts: T0 + 2, frame: buildUdp({ ...c, daddr: '10.0.0.100', sport: 41000, dport: 5000, payload: 'hello' }) },
  { ts: T0 + 3, frame: buildTcp({ ...c, daddr: '10.0.0.101', sport: 42000, dport: 443, flags: SYN }) },
  { ts: T0 + 4, frame: buildTcp({ ...c, daddr: '10.0.0.100', sport: 43000, dport: 80, flags: ACK }) },
  { ts: T0 + 5, frame: buildTcp({ ...c, daddr: '10.0.0.50', sport: 44000, dport: 22, flags: SYN }) },
  { ts: T0 + 10, frame: buildUdp({ ...c, daddr: '10.0.0.100', sport: 41000, dport: 5000, payload: 'again' }) },
];

// ipvsadm print formats (f.1-f.4, f.7), written out here independently of the formatter.
const BANNER = 'IP Virtual Server version 1.2.1 (size=4096)\n';
function dest(addr: string, fwd: string, w: number, act: number, inact: number): string {
  return `  -> ${addr.padEnd(28)} ${fwd.padEnd(7)} ${String(w).padEnd(6)} ${String(act).padEnd(10)} ${String(inact).padEnd(10)}\n`;
}
function statLine(head: string, n: number[]): string {
  return head.padEnd(33) + n.map((x) => ' ' + String(x).padStart(8)).join('') + '\n';
}
function conn(proto: string, exp: string, state: string, src: string, vip: string, dst: string): string {
  return `${proto.padEnd(3)} ${exp.padEnd(6)} ${state.padEnd(11)} ${src.padEnd(18)} ${vip.padEnd(18)} ${dst}`;
}

const EXPECT_LIST = BANNER +
  'Prot LocalAddress:Port Scheduler Flags\n' +
  '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n' +
  'TCP  10.0.0.100:80 rr\n' +
  dest(`${RS1}:8080`, 'Masq', 1, 1, 0) +
  dest(`${RS2}:8080`, 'Masq', 1, 1, 0) +
  'TCP  10.0.0.101:443 rr\n' +
  dest(`${RS3}:443`, 'Tunnel', 1, 1, 0) +
  'UDP  10.0.0.100:5000 wlc\n' +
  dest(`${RS3}:5000`, 'Route', 2, 0, 1);

// IP lengths: TCP SYN/ACK without payload 40 bytes, UDP 'hello'/'again' 33 bytes.
const EXPECT_STATS = BANNER +
  'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n' +
  '  -> RemoteAddress:Port\n' +
  statLine('TCP  10.0.0.100:80', [2, 3, 1, 120, 40]) +
  statLine(`  -> ${RS1}:8080`, [1, 1, 0, 40, 0]) +
  statLine(`  -> ${RS2}:8080`, [1, 2, 1, 80, 40]) +
  statLine('TCP  10.0.0.101:443', [1, 1, 0, 40, 0]) +
  statLine(`  -> ${RS3}:443`, [1, 1, 0, 40, 0]) +
  statLine('UDP  10.0.0.100:5000', [1, 2, 0, 66, 0]) +
  statLine(`  -> ${RS3}:5000`, [1, 2, 0, 66, 0]);

// Expiry counted from the last frame (T0 + 10).
const EXPECT_CONNS = [
  conn('TCP', '14:50', 'ESTABLISHED', `${CLIENT}:40000`, '10.0.0.100:80', `${RS2}:8080`), // ACK at +0.7: 900 - 9.3
  conn('TCP', '00:51', 'SYN_RECV', `${CLIENT}:40001`, '10.0.0.100:80', `${RS1}:8080`), // SYN at +1: 60 - 9
  conn('UDP', '05:00', 'UDP', `${CLIENT}:41000`, '10.0.0.100:5000', `${RS3}:5000`), // last datagram at +10
  conn('TCP', '00:53', 'SYN_RECV', `${CLIENT}:42000`, '10.0.0.101:443', `${RS3}:443`), // SYN at +3
];

const EXPECT_TRACE = [
  { frame: 1, verdict: 'reply', reason: 'arp-reply', dest: null, sched: null, new: false },
  { frame: 2, verdict: 'forward', reason: 'nat-in', dest: `${RS2}:8080`, sched: 'rr', new: true },
  { frame: 3, verdict: 'forward', reason: 'nat-out', dest: `${RS2}:8080`, sched: 'rr', new: false },
  { frame: 4, verdict: 'forward', reason: 'nat-in', dest: `${RS2}:8080`, sched: 'rr', new: false },
  { frame: 5, verdict: 'forward', reason: 'nat-in', dest: `${RS1}:8080`, sched: 'rr', new: true },
  { frame: 6, verdict: 'forward', reason: 'dr', dest: `${RS3}:5000`, sched: 'wlc', new: true },
  { frame: 7, verdict: 'forward', reason: 'tunnel', dest: `${RS3}:443`, sched: 'rr', new: true },
  { frame: 8, verdict: 'pass', reason: 'tcp-not-syn', dest: null, sched: 'rr', new: false },
  { frame: 9, verdict: 'pass', reason: 'not-ours', dest: null, sched: null, new: false },
  { frame: 10, verdict: 'forward', reason: 'dr', dest: `${RS3}:5000`, sched: 'wlc', new: false },
];

const s = new Scratch();
t.teardown(() => s.done());
s.write('rules', RULES);
s.write('in.pcap', pcapBytes(INPUT));
const run = replay(['--rules', s.path('rules'), '--in', s.path('in.pcap'), '--out', s.path('out.pcap'), ...NEIGH,
  '--list', '--stats', '--conns', '--trace', s.path('trace.jsonl')]);

t.test('exit status and the three listings, byte for byte', async (t) => {
  t.equal(run.stderr, '', 'nothing on stderr');
  t.equal(run.status, 0);
  const listEnd = run.stdout.indexOf(BANNER, 1);
  const list = run.stdout.slice(0, listEnd);
  const rest = run.stdout.slice(listEnd);
  const connsAt = rest.indexOf('IPVS connection entries\n');
  t.equal(list, EXPECT_LIST, '--list = ipvsadm -Ln');
  t.equal(rest.slice(0, connsAt), EXPECT_STATS, '--stats = ipvsadm -Ln --stats --exact');
  const connText = rest.slice(connsAt);
  const lines = connText.split('\n');
  t.same(lines.slice(0, 2), ['IPVS connection entries', 'pro expire state       source             virtual            destination'], '--conns header');
  t.equal(lines[lines.length - 1], '', 'ends with a newline');
  t.same(lines.slice(2, -1).sort(), [...EXPECT_CONNS].sort(), '--conns entries, expiry relative to the last frame');
});

t.test('--trace: one JSON object per input frame', async (t) => {
  t.same(readTrace(s.path('trace.jsonl')), EXPECT_TRACE);
  const raw = s.read('trace.jsonl');
  t.equal(raw.split('\n').length, INPUT.length + 1, 'one line per frame, newline-terminated');
  t.match(raw.split('\n')[0], /^\{"frame":1,"verdict":"reply","reason":"arp-reply","dest":null,"sched":null,"new":false\}$/, 'field order as documented');
});

t.test('OUT.pcap: what the director sent, with the input timestamps; tshark finds it clean', tsharkTestOptions(), async (t) => {
  if (tsharkMissing(t)) return;
  const rows = dissectFile(s.path('out.pcap'), ['frame.time_epoch', 'eth.dst', 'arp.opcode', 'ip.src', 'ip.dst', 'ip.proto', 'tcp.dstport', 'udp.dstport', 'gre.proto']);
  const forwarded = [1, 2, 3, 4, 5, 6, 7, 10];
  t.equal(rows.length, forwarded.length, 'one output frame per forwarded/replied input frame');
  const want: Record<string, string>[] = [
    { 'eth.dst': C_MAC, 'arp.opcode': '2' },
    { 'eth.dst': M2, 'ip.dst': RS2, 'tcp.dstport': '8080' },
    { 'eth.dst': C_MAC, 'ip.src': '10.0.0.100', 'ip.dst': CLIENT },
    { 'eth.dst': M2, 'ip.dst': RS2 },
    { 'eth.dst': M1, 'ip.dst': RS1, 'tcp.dstport': '8080' },
    { 'eth.dst': M3, 'ip.dst': '10.0.0.100', 'udp.dstport': '5000' },
    { 'eth.dst': M3, 'ip.src': '192.0.2.1', 'ip.dst': RS3, 'ip.proto': '47', 'gre.proto': '0x0800', 'tcp.dstport': '443' },
    { 'eth.dst': M3, 'ip.dst': '10.0.0.100', 'udp.dstport': '5000' },
  ];
  rows.forEach((r, i) => {
    const n = forwarded[i]!;
    t.same(r.problems, [], `out frame ${i + 1}: no problems`);
    t.same(badChecksums(r), [], `out frame ${i + 1}: no bad checksum`);
    t.equal(Number(r.one('frame.time_epoch')).toFixed(6), INPUT[n - 1]!.ts.toFixed(6), `out frame ${i + 1}: timestamp of input frame ${n}`);
    for (const [k, v] of Object.entries(want[i]!)) t.equal(r.one(k), v, `out frame ${i + 1}: ${k}`);
    if (r.one('ip.src') !== '') t.equal(r.checksums.ip?.[0], '1', `out frame ${i + 1}: IP checksum verified`);
  });
  t.equal(rows[6]!.checksums.gre?.[0], '1', 'GRE checksum verified');
});
