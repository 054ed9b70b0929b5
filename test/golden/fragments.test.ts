/**
 * IP fragments through process(): the first fragment (it carries the ports) creates or finds
 * the connection, later fragments follow it through the fragment-id cache; a later fragment
 * whose first fragment was never seen is dropped (fragment-no-conn). tshark reassembles the
 * NATed fragments and checks the UDP checksum over the whole datagram — the incremental update
 * in the first fragment must be right for data the director never saw together.
 */
import t from 'tap';
import { buildSctp, buildUdpFragments, fragmentFrame } from '../../src/packet/build.js';
import { IP, MAC, Judge, decode, director, fromClient, fromRs, only, outcome } from './helpers.js';
import { badChecksums, dissect, tsharkMissing, tsharkTestOptions } from '../util/tshark.js';

const judge = new Judge();
/** Each forwarded datagram's fragments, for tshark to reassemble. */
const reassembledFrames: Uint8Array[][] = [];

const RULES = `-A -u ${IP.vip}:5000 -s rr
-a -u ${IP.vip}:5000 -r ${IP.rs1}:6000 -m -w 1
-A -u ${IP.vip}:5001 -s rr
-a -u ${IP.vip}:5001 -r ${IP.rs2}:5001 -g -w 1
-A -u [${IP.vip6}]:5000 -s rr
-a -u [${IP.vip6}]:5000 -r [${IP.rs61}]:6000 -m -w 1
`;

const PAYLOAD = 'fragmented datagram payload, 48 bytes long.....';

t.test('IPv4 NAT: the first fragment creates the connection, later fragments follow, both directions', async (t) => {
  const td = director();
  await td.rules(RULES);
  const frags = buildUdpFragments({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40000, dport: 5000, payload: PAYLOAD, fragSize: 24, ipId: 0x4242 });
  t.equal(frags.length, 3, 'three fragments');
  const outs: Uint8Array[] = [];
  frags.forEach((f, i) => {
    const s = td.send(f);
    t.same(outcome(s), { verdict: 'forward', reason: 'nat-in', frames: 1 }, `fragment ${i}`);
    const o = only(s);
    const d = decode(o);
    t.same([d.daddr, d.saddr, d.ttl], [IP.rs1, IP.client, 63], `fragment ${i}: DNATed address, TTL - 1`);
    if (i === 0) t.equal(d.dport, 6000, 'first fragment: port rewritten');
    outs.push(o);
    judge.add(`NAT in fragment ${i}`, o, { 'ip.dst': IP.rs1, 'ip.id': '0x4242', /* 8-byte units */ 'ip.frag_offset': String(i * 3) }, ['ip']);
  });
  t.equal((await td.ipvsadm('-L', '-n', '-c')).out.split('\n').filter((l) => l.startsWith('UDP')).length, 1, 'one connection');
  reassembledFrames.push(outs);

  const replies = buildUdpFragments({ ...fromRs(MAC.rs1), saddr: IP.rs1, daddr: IP.client, sport: 6000, dport: 40000, payload: PAYLOAD, fragSize: 24, ipId: 0x5151 });
  const routs: Uint8Array[] = [];
  replies.forEach((f, i) => {
    const s = td.send(f);
    t.same(outcome(s), { verdict: 'forward', reason: 'nat-out', frames: 1 }, `reply fragment ${i}`);
    const d = decode(only(s));
    t.same([d.saddr, d.daddr, d.dstMac], [IP.vip, IP.client, MAC.client], `reply fragment ${i}: SNATed`);
    if (i === 0) t.equal(d.sport, 5000);
    routs.push(only(s));
  });
  reassembledFrames.push(routs);
});

t.test('a later fragment without its first fragment is dropped', async (t) => {
  const td = director();
  await td.rules(RULES);
  const frags = buildUdpFragments({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40001, dport: 5000, payload: PAYLOAD, fragSize: 24, ipId: 0x7777 });
  t.same(outcome(td.send(frags[1]!)), { verdict: 'drop', reason: 'fragment-no-conn', frames: 0 }, 'middle fragment first');
  t.same(outcome(td.send(frags[2]!)), { verdict: 'drop', reason: 'fragment-no-conn', frames: 0 }, 'last fragment');
  t.same(outcome(td.send(frags[0]!)), { verdict: 'forward', reason: 'nat-in', frames: 1 }, 'the first fragment still creates the connection');
  t.same(outcome(td.send(frags[2]!)), { verdict: 'forward', reason: 'nat-in', frames: 1 }, 'a later fragment now follows');
  // Another datagram (other IP ID) of the same flow: its later fragments are unknown.
  const other = buildUdpFragments({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40001, dport: 5000, payload: PAYLOAD, fragSize: 24, ipId: 0x7778 });
  t.same(outcome(td.send(other[1]!)), { verdict: 'drop', reason: 'fragment-no-conn', frames: 0 }, 'fragments are matched by IP ID');
  // The fragment cache entry lasts 30 s.
  td.advance(31);
  t.same(outcome(td.send(frags[1]!)), { verdict: 'drop', reason: 'fragment-no-conn', frames: 0 }, 'forgotten after 30 s');
});

t.test('DR fragments keep everything but MACs and TTL', async (t) => {
  const td = director();
  await td.rules(RULES);
  const frags = buildUdpFragments({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40002, dport: 5001, payload: PAYLOAD, fragSize: 16 });
  const outs = frags.map((f, i) => {
    const s = td.send(f);
    t.same(outcome(s), { verdict: 'forward', reason: 'dr', frames: 1 }, `fragment ${i}`);
    t.same(only(s).subarray(14 + 20), f.subarray(14 + 20), `fragment ${i}: payload untouched`);
    t.equal(decode(only(s)).dstMac, MAC.rs2);
    return only(s);
  });
  reassembledFrames.push(outs);
});

t.test('IPv6 fragments (fragment header)', async (t) => {
  const td = director();
  await td.rules(RULES);
  const frags = buildUdpFragments({ ...fromClient, saddr: IP.client6, daddr: IP.vip6, sport: 40003, dport: 5000, payload: PAYLOAD, fragSize: 24, fragId: 0xabcdef01 });
  t.same(outcome(td.send(frags[2]!)), { verdict: 'drop', reason: 'fragment-no-conn', frames: 0 }, 'last fragment alone');
  const outs = frags.map((f, i) => {
    const s = td.send(f);
    t.same(outcome(s), { verdict: 'forward', reason: 'nat-in', frames: 1 }, `fragment ${i}`);
    t.equal(decode(only(s)).daddr, IP.rs61);
    return only(s);
  });
  t.equal(decode(outs[0]!).dport, 6000);
  reassembledFrames.push(outs);
});

t.test('fragments the director cannot forward are dropped and named', async (t) => {
  const td = director({ mtu: 1400 });
  await td.rules(RULES + `--add-service --sctp-service ${IP.vip}:3868 -s rr\n-a --sctp-service ${IP.vip}:3868 -r ${IP.rs1}:3869 -m\n`);
  // An SCTP first fragment whose port NAT must change: the new CRC32c covers data that is not here.
  const sctp = fragmentFrame(buildSctp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40005, dport: 3868, chunk: 'data', payload: 'y'.repeat(40) }), 32);
  const first = td.send(buildSctp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40005, dport: 3868 }));
  t.equal(first.reason, 'nat-in', 'the association exists');
  t.same(outcome(td.send(sctp[0]!)), { verdict: 'drop', reason: 'cannot-rewrite', frames: 0 }, 'SCTP first fragment with a port change');
  // IPv6: a non-first fragment over the MTU is dropped without packet-too-big (only first fragments get one).
  const small = buildUdpFragments({ ...fromClient, saddr: IP.client6, daddr: IP.vip6, sport: 40006, dport: 5000, payload: 'z'.repeat(3000), fragSize: 1200, fragId: 77 });
  const big = buildUdpFragments({ ...fromClient, saddr: IP.client6, daddr: IP.vip6, sport: 40006, dport: 5000, payload: 'z'.repeat(3000), fragSize: 1392, fragId: 77 });
  t.same(outcome(td.send(small[0]!)), { verdict: 'forward', reason: 'nat-in', frames: 1 }, 'first fragment fits');
  t.same(outcome(td.send(big[1]!)), { verdict: 'drop', reason: 'too-big', frames: 0 }, 'later fragment of 1440 bytes over MTU 1400: dropped, no ICMPv6');
  t.same(outcome(td.send(small[1]!)), { verdict: 'forward', reason: 'nat-in', frames: 1 }, 'one that fits still follows');
});

t.test('tshark reassembles the forwarded fragments: UDP checksum good over the whole datagram', tsharkTestOptions(), async (t) => {
  if (tsharkMissing(t)) return;
  for (const [k, frames] of reassembledFrames.entries()) {
    const rows = dissect(frames, ['udp.length', 'data.len', 'ip.dst', 'ipv6.dst'], ['-o', 'ip.defragment:TRUE', '-o', 'ipv6.defragment:TRUE']);
    const last = rows[rows.length - 1]!;
    t.same(last.problems, [], `datagram ${k}: no problems`);
    t.same(badChecksums(last), [], `datagram ${k}: no bad checksum`);
    t.equal(last.checksums.udp?.[0], '1', `datagram ${k}: reassembled UDP checksum verified good`);
    t.equal(last.one('udp.length'), String(8 + PAYLOAD.length), `datagram ${k}: whole datagram`);
  }
});

judge.register(t);
