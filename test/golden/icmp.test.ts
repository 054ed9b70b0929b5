/**
 * Golden packets, ICMP through process(): errors related to a connection in both directions
 * (the client's port unreachable about a reply, a NAT real server's error about a client
 * packet: outer and quoted addresses/ports rewritten, every checksum right), frag-needed /
 * packet too big (DF packet over the director's MTU) and TTL / hop-limit expiry.
 */
import t from 'tap';
import { buildIcmpError, buildTcp, buildUdp, ipPacketOf } from '../../src/packet/build.js';
import { rd16 } from '../../src/packet/bytes.js';
import { parseIp } from '../../src/util/ip.js';
import {
  DIR_IP, IP, MAC, Judge, TCP_ACK, TCP_SYN, decode, director, fromClient, fromRs, only, outcome,
} from './helpers.js';

const judge = new Judge();

const RULES = `-A -u ${IP.vip}:5000 -s rr
-a -u ${IP.vip}:5000 -r ${IP.rs1}:6000 -m -w 1
-A -t ${IP.vip}:80 -s rr
-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m -w 1
-A -t ${IP.vip}:81 -s rr
-a -t ${IP.vip}:81 -r ${IP.rs2}:81 -g -w 1
-A -t ${IP.vip}:82 -s rr
-a -t ${IP.vip}:82 -r ${IP.rs3}:82 -i -w 1
-A -u [${IP.vip6}]:5000 -s rr
-a -u [${IP.vip6}]:5000 -r [${IP.rs61}]:6000 -m -w 1
`;

t.test('ICMP errors about a NAT connection, IPv4, both directions', async (t) => {
  const td = director();
  await td.rules(RULES);
  const q = buildUdp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40000, dport: 5000, payload: 'req' });
  t.equal(td.send(q).reason, 'nat-in');
  // The client got a reply VIP:5000 → client:40000 and answers port unreachable about it.
  const reply = buildUdp({ saddr: IP.vip, daddr: IP.client, sport: 5000, dport: 40000, payload: 'late reply' });
  const unreach = buildIcmpError({ ...fromClient, saddr: IP.client, daddr: IP.vip, icmpType: 3, icmpCode: 3, original: ipPacketOf(reply) });
  const s1 = td.send(unreach);
  t.same(outcome(s1), { verdict: 'forward', reason: 'icmp-in', frames: 1 }, 'client → RS direction');
  const o1 = decode(only(s1));
  t.same([o1.saddr, o1.daddr, o1.dstMac, o1.ttl], [IP.client, IP.rs1, MAC.rs1, 63], 'outer: to the real server, TTL - 1');
  t.same([o1.innerSaddr, o1.innerSport, o1.innerDaddr, o1.innerDport], [IP.rs1, 6000, IP.client, 40000], 'quoted: as the RS sent it');
  judge.add('ICMP client → RS', only(s1), {
    'ip.src': [IP.client, IP.rs1], 'ip.dst': [IP.rs1, IP.client], 'icmp.type': '3', 'icmp.code': '3',
    'udp.srcport': '6000', 'udp.dstport': '40000',
  }, undefined, 'udp');
  t.equal(rd16(only(s1), o1.l4Off + 8 + 20 + 6), rd16(reply, 14 + 20 + 6), 'quoted UDP checksum left as it was');

  // The real server reports an error about the client's packet (as it received it, DNATed).
  const asReceived = buildUdp({ saddr: IP.client, daddr: IP.rs1, sport: 40000, dport: 6000, payload: 'req', ttl: 63 });
  const err = buildIcmpError({ ...fromRs(MAC.rs1), saddr: IP.rs1, daddr: IP.client, icmpType: 3, icmpCode: 3, original: ipPacketOf(asReceived) });
  const s2 = td.send(err);
  t.same(outcome(s2), { verdict: 'forward', reason: 'icmp-out', frames: 1 }, 'RS → client direction');
  const o2 = decode(only(s2));
  t.same([o2.saddr, o2.daddr, o2.dstMac, o2.ttl], [IP.vip, IP.client, MAC.client, 63], 'outer: from the VIP to the client');
  t.same([o2.innerSaddr, o2.innerSport, o2.innerDaddr, o2.innerDport], [IP.client, 40000, IP.vip, 5000], 'quoted: as the client sent it');
  judge.add('ICMP RS → client', only(s2), {
    'ip.src': [IP.vip, IP.client], 'ip.dst': [IP.client, IP.vip], 'udp.srcport': '40000', 'udp.dstport': '5000',
  }, undefined, 'udp');

  // An error about a flow nobody knows is not ours.
  const stray = buildIcmpError({ ...fromClient, saddr: IP.client, daddr: IP.vip, icmpType: 3, icmpCode: 3,
    original: ipPacketOf(buildUdp({ saddr: IP.vip, daddr: IP.client, sport: 5000, dport: 49999 })) });
  t.same(outcome(td.send(stray)), { verdict: 'pass', reason: 'icmp-unrelated', frames: 0 });
  // Counted: one inbound and one outbound packet besides the request.
  const st = await td.ipvsadm('-L', '-n', '--stats', '--exact', '-u', `${IP.vip}:5000`);
  const row = st.out.split('\n').find((l) => l.includes('-> 10.0.1.1:6000'))!;
  t.same(row.trim().split(/\s+/).slice(2, 5), ['1', '2', '1'], 'conns, in packets, out packets');
});

t.test('ICMPv6 errors about a NAT connection, both directions', async (t) => {
  const td = director();
  await td.rules(RULES);
  t.equal(td.send(buildUdp({ ...fromClient, saddr: IP.client6, daddr: IP.vip6, sport: 40000, dport: 5000, payload: 'r' })).reason, 'nat-in');
  const reply = buildUdp({ saddr: IP.vip6, daddr: IP.client6, sport: 5000, dport: 40000, payload: 'x' });
  const s1 = td.send(buildIcmpError({ ...fromClient, saddr: IP.client6, daddr: IP.vip6, icmpType: 1, icmpCode: 4, original: ipPacketOf(reply) }));
  t.same(outcome(s1), { verdict: 'forward', reason: 'icmp-in', frames: 1 });
  const o1 = decode(only(s1));
  t.same([o1.daddr, o1.innerSaddr, o1.innerSport], [IP.rs61, IP.rs61, 6000]);
  judge.add('ICMPv6 client → RS', only(s1), { 'ipv6.dst': [IP.rs61, IP.client6], 'icmpv6.type': '1', 'udp.srcport': '6000' }, undefined, 'udp');
  const asReceived = buildUdp({ saddr: IP.client6, daddr: IP.rs61, sport: 40000, dport: 6000, payload: 'r' });
  const s2 = td.send(buildIcmpError({ ...fromRs(MAC.rs61), saddr: IP.rs61, daddr: IP.client6, icmpType: 1, icmpCode: 4, original: ipPacketOf(asReceived) }));
  t.same(outcome(s2), { verdict: 'forward', reason: 'icmp-out', frames: 1 });
  const o2 = decode(only(s2));
  t.same([o2.saddr, o2.innerDaddr, o2.innerDport], [IP.vip6, IP.vip6, 5000]);
  judge.add('ICMPv6 RS → client', only(s2), { 'ipv6.src': [IP.vip6, IP.client6], 'udp.dstport': '5000' }, undefined, 'udp');
});

t.test('ICMP errors about DR and TUN connections go to the real server unchanged (encapsulated for TUN)', async (t) => {
  const td = director();
  await td.rules(RULES);
  td.send(buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40001, dport: 81, flags: TCP_SYN }));
  td.send(buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40002, dport: 82, flags: TCP_SYN }));
  for (const [port, rsMac, reason] of [[81, MAC.rs2, 'icmp-in'], [82, MAC.rs3, 'icmp-in']] as const) {
    const orig = buildTcp({ saddr: IP.vip, daddr: IP.client, sport: port, dport: 40000 + port - 80, flags: TCP_SYN | TCP_ACK });
    const e = buildIcmpError({ ...fromClient, saddr: IP.client, daddr: IP.vip, icmpType: 3, icmpCode: 4, mtu: 1300, original: ipPacketOf(orig) });
    const s = td.send(e);
    t.same(outcome(s), { verdict: 'forward', reason, frames: 1 }, `port ${port}`);
    const o = only(s);
    t.equal(decode(o).dstMac, rsMac);
    if (port === 81) {
      t.same(o.subarray(14 + 20), e.subarray(14 + 20), 'DR: ICMP message untouched');
      judge.add('ICMP relayed over DR', o, { 'ip.dst': [IP.vip, IP.client], 'icmp.mtu': '1300' });
    } else {
      t.same([decode(o).proto, decode(o).daddr], [4, IP.rs3], 'TUN: IPIP to the RS');
      t.same(o.subarray(14 + 20 + 20), e.subarray(14 + 20), 'TUN: ICMP message untouched inside');
      judge.add('ICMP relayed over TUN', o, { 'ip.dst': [IP.rs3, IP.vip, IP.client], 'icmp.mtu': '1300' }, ['ip', 'icmp']);
    }
  }
});

t.test('frag-needed / packet too big: a DF packet over the director MTU', async (t) => {
  const td = director({ mtu: 1400 });
  await td.rules(RULES);
  const big = (o: object) => buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, dport: 80, flags: TCP_ACK, payload: 'x'.repeat(1460), ...o });

  // NAT, client side: ICMP 3/4 from the VIP back to the client, quoting the packet (TTL already decremented).
  t.equal(td.send(buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40000, dport: 80, flags: TCP_SYN })).reason, 'nat-in');
  const f = big({ sport: 40000, df: true });
  const s = td.send(f);
  t.same(outcome(s), { verdict: 'drop', reason: 'frag-needed', frames: 1 });
  const icmp = only(s);
  const d = decode(icmp);
  t.same([d.proto, d.icmpType, d.icmpCode, rd16(icmp, d.l4Off + 6)], [1, 3, 4, 1400], 'ICMP 3/4 with next-hop MTU 1400');
  t.same([d.saddr, d.daddr, d.dstMac, d.srcMac], [IP.vip, IP.client, MAC.client, MAC.dir], 'from the VIP, back to the sender');
  t.same([d.innerSaddr, d.innerDaddr, d.innerDport], [IP.client, IP.vip, 80], 'quotes the packet as received (before DNAT)');
  t.equal(d.ipLen, 576, 'IPv4 error limited to 576 bytes');
  judge.add('frag-needed NAT in', icmp, {
    'icmp.type': '3', 'icmp.code': '4', 'icmp.mtu': '1400', 'ip.src': [IP.vip, IP.client], 'ip.ttl': ['64', '63'],
  }, undefined, 'tcp');
  t.same(icmp.subarray(d.l4Off + 8 + 20), f.subarray(34, 34 + 548 - 20), 'quoted TCP segment: the first bytes, unchanged');
  // Same packet without DF would need fragmenting, which ulvs does not do: dropped, counted.
  t.same(outcome(td.send(big({ sport: 40000, df: false }))), { verdict: 'drop', reason: 'too-big', frames: 0 });
  // A packet that fits is forwarded.
  t.same(outcome(td.send(big({ sport: 40000, df: true, payload: 'x'.repeat(1360) }))), { verdict: 'forward', reason: 'nat-in', frames: 1 });

  // NAT reply over the MTU: the forwarding path answers the real server, from the director's address.
  const r = buildTcp({ ...fromRs(MAC.rs1), saddr: IP.rs1, daddr: IP.client, sport: 8080, dport: 40000, flags: TCP_ACK, df: true, payload: 'y'.repeat(1460) });
  const s2 = td.send(r);
  t.same(outcome(s2), { verdict: 'drop', reason: 'frag-needed', frames: 1 });
  const d2 = decode(only(s2));
  t.same([d2.saddr, d2.daddr, d2.dstMac, d2.innerSaddr, d2.innerSport], [DIR_IP, IP.rs1, MAC.rs1, IP.rs1, 8080], 'to the RS, quoting its packet');
  judge.add('frag-needed NAT out', only(s2), { 'icmp.mtu': '1400', 'ip.src': [DIR_IP, IP.rs1], 'ip.ttl': ['64', '64'] }, undefined, 'tcp');

  // DR and TUN: TUN reports the MTU left after the 20-byte outer header.
  td.send(buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40001, dport: 81, flags: TCP_SYN }));
  td.send(buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40002, dport: 82, flags: TCP_SYN }));
  for (const [port, mtu] of [[81, 1400], [82, 1380]] as const) {
    const s3 = td.send(big({ sport: 40000 + port - 80, dport: port, df: true }));
    t.same(outcome(s3), { verdict: 'drop', reason: 'frag-needed', frames: 1 }, `port ${port}`);
    t.equal(rd16(only(s3), 14 + 20 + 6), mtu, `port ${port}: reported MTU ${mtu}`);
    judge.add(`frag-needed ${port === 81 ? 'DR' : 'TUN'}`, only(s3), { 'icmp.mtu': String(mtu), 'ip.src': [IP.vip, IP.client] }, undefined, 'tcp');
  }
  // TUN with a packet that fits the route but not the tunnel: 1381..1400 bytes.
  t.equal(td.send(big({ sport: 40002, dport: 82, df: true, payload: 'z'.repeat(1400 - 40) })).reason, 'frag-needed', 'tunnel overhead counts');
});

t.test('IPv6 packet too big', async (t) => {
  const td = director({ mtu: 1400 });
  await td.rules(RULES);
  const f = buildUdp({ ...fromClient, saddr: IP.client6, daddr: IP.vip6, sport: 40000, dport: 5000, payload: 'x'.repeat(1400) });
  const s = td.send(f);
  t.same(outcome(s), { verdict: 'drop', reason: 'frag-needed', frames: 1 });
  const o = only(s);
  const d = decode(o);
  t.same([d.proto, d.icmpType, d.icmpCode, d.saddr, d.daddr], [58, 2, 0, IP.vip6, IP.client6]);
  t.equal(d.ipLen, 1280, 'ICMPv6 error fills the minimum MTU');
  judge.add('packet too big', o, { 'icmpv6.type': '2', 'icmpv6.mtu': '1400', 'ipv6.src': [IP.vip6, IP.client6] });
});

t.test('TTL expiry: ICMP time exceeded, nothing forwarded', async (t) => {
  const td = director();
  await td.rules(RULES);
  const f = buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40000, dport: 80, flags: TCP_SYN, ttl: 1 });
  const s = td.send(f);
  t.same(outcome(s), { verdict: 'drop', reason: 'ttl-exceeded', frames: 1 });
  const o = only(s);
  const d = decode(o);
  t.same([d.icmpType, d.icmpCode, d.saddr, d.daddr, d.dstMac], [11, 0, IP.vip, IP.client, MAC.client]);
  t.same(o.subarray(14 + 28, 14 + 28 + decode(f).ipLen), ipPacketOf(f), 'quotes the packet unchanged (TTL 1)');
  judge.add('time exceeded (TCP in)', o, { 'icmp.type': '11', 'icmp.code': '0', 'ip.ttl': ['64', '1'], 'tcp.dstport': '80' });

  // Reply direction: the forwarding path answers the RS.
  td.send(buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40001, dport: 80, flags: TCP_SYN }));
  const r = buildTcp({ ...fromRs(MAC.rs1), saddr: IP.rs1, daddr: IP.client, sport: 8080, dport: 40001, flags: TCP_SYN | TCP_ACK, ttl: 1 });
  const s2 = td.send(r);
  t.same(outcome(s2), { verdict: 'drop', reason: 'ttl-exceeded', frames: 1 });
  const d2 = decode(only(s2));
  t.same([d2.icmpType, d2.saddr, d2.daddr, d2.dstMac], [11, DIR_IP, IP.rs1, MAC.rs1]);
  judge.add('time exceeded (TCP out)', only(s2), { 'icmp.type': '11', 'ip.src': [DIR_IP, IP.rs1] });

  // IPv6 hop limit 1.
  const s3 = td.send(buildUdp({ ...fromClient, saddr: IP.client6, daddr: IP.vip6, sport: 40000, dport: 5000, ttl: 1, payload: 'q' }));
  t.same(outcome(s3), { verdict: 'drop', reason: 'ttl-exceeded', frames: 1 });
  const d3 = decode(only(s3));
  t.same([d3.icmpType, d3.icmpCode, d3.saddr, d3.daddr], [3, 0, IP.vip6, IP.client6]);
  judge.add('ICMPv6 time exceeded', only(s3), { 'icmpv6.type': '3', 'icmpv6.code': '0' });
});

t.test('IPv6 errors about NAT replies come from the director\'s IPv6 address, or not at all', async (t) => {
  const td = director();
  await td.rules(RULES);
  td.send(buildUdp({ ...fromClient, saddr: IP.client6, daddr: IP.vip6, sport: 40000, dport: 5000, payload: 'r' }));
  const reply = () => buildUdp({ ...fromRs(MAC.rs61), saddr: IP.rs61, daddr: IP.client6, sport: 6000, dport: 40000, ttl: 1, payload: 'a' });
  t.same(outcome(td.send(reply())), { verdict: 'drop', reason: 'ttl-exceeded', frames: 0 },
    'no IPv6 address of its own: nothing sent (never an ICMPv6 from ::)');
  const a = parseIp('2001:db8:d::1')!;
  td.d.engine.ip6.set([a.w0, a.w1, a.w2, a.w3]);
  const s = td.send(reply());
  t.same(outcome(s), { verdict: 'drop', reason: 'ttl-exceeded', frames: 1 });
  const d = decode(only(s));
  t.same([d.icmpType, d.saddr, d.daddr, d.dstMac], [3, '2001:db8:d::1', IP.rs61, MAC.rs61]);
  judge.add('ICMPv6 time exceeded to the RS', only(s), { 'ipv6.src': ['2001:db8:d::1', IP.rs61], 'icmpv6.type': '3' });
});

judge.register(t);
