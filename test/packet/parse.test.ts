import t from 'tap';
import {
  buildArp, buildIcmp, buildIcmpEcho, buildIcmpError, buildSctp, buildTcp, buildUdp, buildUdpFragments, ipPacketOf,
} from '../../src/packet/build.js';
import { PacketInfo, PARSE_NOT_IP, PARSE_OK, PARSE_TRUNC_L4 } from '../../src/packet/info.js';
import { parseFrame } from '../../src/packet/parse.js';
import { parseIp } from '../../src/util/ip.js';

function parse(f: Uint8Array, off = 0, len = f.length): PacketInfo {
  const info = new PacketInfo();
  const code = parseFrame(f, off, len, info);
  if (code !== PARSE_OK) throw new Error(`parse failed: ${code}`);
  return info;
}

/** Address text -> the words PacketInfo should hold (IPv4 in word 0, rest 0). */
function words(s: string): number[] {
  const a = parseIp(s)!;
  return [a.w0, a.w1, a.w2, a.w3];
}

const V6 = { saddr: '2001:db8::10', daddr: 'fd00::1:2' };

t.test('IPv4 TCP: addresses, ports, flags, ttl, df, offsets', async (t) => {
  const f = buildTcp({ saddr: '192.168.1.10', daddr: '10.1.2.3', sport: 40000, dport: 443, flags: 0x12, ttl: 7, df: true, payload: 'hi' });
  const i = parse(f);
  t.equal(i.ethType, 0x0800);
  t.equal(i.vlanTci, -1);
  t.equal(i.af, 4);
  t.equal(i.l3Off, 14);
  t.equal(i.l3HdrLen, 20);
  t.equal(i.ipLen, 20 + 20 + 2);
  t.equal(i.proto, 6);
  t.equal(i.ttl, 7);
  t.equal(i.df, true);
  t.equal(i.fragOff, 0);
  t.equal(i.moreFrags, false);
  t.equal(i.isLaterFrag, false);
  t.same([...i.saddr], words('192.168.1.10'));
  t.same([...i.daddr], words('10.1.2.3'));
  t.equal(i.l4Off, 34);
  t.equal(i.l4Len, 22);
  t.equal(i.sport, 40000);
  t.equal(i.dport, 443);
  t.equal(i.tcpFlags, 0x12);
  t.equal(i.icmpType, -1);
  t.equal(i.innerL3Off, -1);
  t.equal(i.frameOff, 0);
  t.equal(i.frameLen, f.length);
});

t.test('VLAN tag, IPv4 options and TCP options are skipped', async (t) => {
  const f = buildTcp({ vlan: 0x2064, ipOptions: Uint8Array.of(0x94, 0x04, 0, 0, 1, 1, 1), tcpOptions: Uint8Array.of(2, 4, 5, 0xb4), dport: 8080 });
  const i = parse(f);
  t.equal(i.vlanTci, 0x2064);
  t.equal(i.ethType, 0x0800);
  t.equal(i.l3Off, 18);
  t.equal(i.l3HdrLen, 28, '7 option bytes padded to 8');
  t.equal(i.l4Off, 18 + 28);
  t.equal(i.dport, 8080);
  t.equal(i.l4Len, 24);
});

t.test('frame at an offset inside a larger buffer, with Ethernet padding', async (t) => {
  const f = buildUdp({ sport: 53, dport: 1053, payload: 'x', padTo: 60 });
  const buf = new Uint8Array(200).fill(0xee);
  buf.set(f, 50);
  const i = parse(buf, 50, f.length);
  t.equal(i.frameOff, 50);
  t.equal(i.frameLen, 60);
  t.equal(i.l3Off, 64);
  t.equal(i.ipLen, 29, 'IP length excludes the padding');
  t.equal(i.l4Off, 84);
  t.equal(i.l4Len, 9);
  t.equal(i.sport, 53);
  t.equal(i.dport, 1053);
});

t.test('IPv6 TCP and UDP', async (t) => {
  const i = parse(buildTcp({ ...V6, sport: 1, dport: 2, flags: 0x11, ttl: 200 }));
  t.equal(i.af, 6);
  t.equal(i.ethType, 0x86dd);
  t.equal(i.l3HdrLen, 40);
  t.equal(i.ipLen, 60);
  t.equal(i.ttl, 200);
  t.same([...i.saddr], words(V6.saddr));
  t.same([...i.daddr], words(V6.daddr));
  t.equal(i.l4Off, 54);
  t.equal(i.tcpFlags, 0x11);
  t.equal(i.fragHdrOff, -1);
  const u = parse(buildUdp({ ...V6, sport: 5353, dport: 53, payload: 'abc' }));
  t.equal(u.proto, 17);
  t.equal(u.l4Len, 11);
  t.equal(u.sport, 5353);
});

t.test('IPv6 extension headers are walked (hop-by-hop, dest opts, routing, AH)', async (t) => {
  const f = buildUdp({ ...V6, dport: 99, ipv6Ext: [{ type: 0, len: 16 }, { type: 60 }, { type: 43, len: 24 }, { type: 51, len: 24 }] });
  const i = parse(f);
  t.equal(i.proto, 17);
  t.equal(i.l3HdrLen, 40 + 16 + 8 + 24 + 24);
  t.equal(i.l4Off, 14 + i.l3HdrLen);
  t.equal(i.dport, 99);
  t.equal(i.l4Len, 8);
});

t.test('IPv6 parsing stops at ESP, no-next-header and unknown protocols', async (t) => {
  // ESP and "no next header" after a destination options header, and an unknown upper layer.
  for (const proto of [50, 59, 253]) {
    const base = buildUdp({ ...V6, ipv6Ext: [{ type: 60 }] });
    base[14 + 40] = proto;
    const i = parse(base);
    t.equal(i.proto, proto, `proto ${proto}`);
    t.equal(i.l4Off, 14 + 48);
    t.equal(i.sport, 0, 'no ports decoded');
  }
});

t.test('SCTP: ports and first chunk type', async (t) => {
  const init = parse(buildSctp({ sport: 5000, dport: 6000 }));
  t.equal(init.proto, 132);
  t.equal(init.sport, 5000);
  t.equal(init.dport, 6000);
  t.equal(init.sctpChunk, 1);
  t.equal(parse(buildSctp({ chunk: 'data', payload: 'x' })).sctpChunk, 0);
  t.equal(parse(buildSctp({ ...V6, chunk: 'abort' })).sctpChunk, 6);
  t.equal(parse(buildSctp({ chunks: [] })).sctpChunk, -1, 'no chunk: -1');
});

t.test('ICMP and ICMPv6 echo', async (t) => {
  const e4 = parse(buildIcmpEcho({ payload: 'ping' }));
  t.equal(e4.proto, 1);
  t.equal(e4.icmpType, 8);
  t.equal(e4.icmpCode, 0);
  t.equal(e4.innerL3Off, -1, 'echo is not an error');
  t.equal(e4.sport, 0);
  const r6 = parse(buildIcmpEcho({ ...V6, reply: true }));
  t.equal(r6.proto, 58);
  t.equal(r6.icmpType, 129);
  t.equal(r6.innerL3Off, -1);
});

t.test('ICMP errors: the quoted header and ports are decoded', async (t) => {
  const orig = buildTcp({ saddr: '10.0.0.1', daddr: '192.0.2.80', sport: 33000, dport: 80, ipOptions: Uint8Array.of(1, 1, 1, 1) });
  const f = buildIcmpError({ saddr: '10.9.9.9', daddr: '10.0.0.1', original: ipPacketOf(orig), icmpType: 3, icmpCode: 4, mtu: 1400 });
  const i = parse(f);
  t.equal(i.icmpType, 3);
  t.equal(i.icmpCode, 4);
  t.equal(i.innerL3Off, i.l4Off + 8);
  t.equal(i.innerL3HdrLen, 24);
  t.equal(i.innerProto, 6);
  t.same([...i.innerSaddr], words('10.0.0.1'));
  t.same([...i.innerDaddr], words('192.0.2.80'));
  t.equal(i.innerL4Off, i.innerL3Off + 24);
  t.equal(i.innerSport, 33000);
  t.equal(i.innerDport, 80);
  t.equal((f[i.l4Off + 6]! << 8) | f[i.l4Off + 7]!, 1400, 'next-hop MTU in bytes 6..7');

  for (const type of [4, 5, 11, 12]) {
    const e = parse(buildIcmpError({ original: ipPacketOf(orig), icmpType: type }));
    t.equal(e.innerSport, 33000, `ICMP type ${type} is an error`);
  }
  t.equal(parse(buildIcmp({ icmpType: 13, body: ipPacketOf(orig) })).innerL3Off, -1, 'timestamp request is not an error');

  // Only 4 bytes of the quoted UDP header: ports yes. 3 bytes: no ports.
  const u = ipPacketOf(buildUdp({ sport: 1111, dport: 2222 }));
  const q4 = parse(buildIcmpError({ original: u, icmpType: 11, quoteLimit: 24 }));
  t.equal(q4.innerSport, 1111);
  t.equal(q4.innerDport, 2222);
  const q3 = parse(buildIcmpError({ original: u, icmpType: 11, quoteLimit: 23 }));
  t.equal(q3.innerL3Off, 34 + 8, 'header still decoded');
  t.equal(q3.innerSport, -1);
  t.equal(q3.innerDport, -1);
  const q19 = parse(buildIcmpError({ original: u, icmpType: 11, quoteLimit: 19 }));
  t.equal(q19.innerL3Off, -1, 'quoted IPv4 header incomplete');
  t.equal(q19.icmpType, 11);
});

t.test('ICMPv6 errors with quoted extension headers', async (t) => {
  const orig = buildUdp({ ...V6, sport: 7, dport: 9, ipv6Ext: [{ type: 0 }, { type: 60 }] });
  const f = buildIcmpError({ saddr: 'fe80::1', daddr: V6.saddr, original: ipPacketOf(orig), icmpType: 2, mtu: 1280 });
  const i = parse(f);
  t.equal(i.icmpType, 2);
  t.equal(i.innerL3Off, i.l4Off + 8);
  t.equal(i.innerL3HdrLen, 56);
  t.equal(i.innerProto, 17);
  t.same([...i.innerSaddr], words(V6.saddr));
  t.same([...i.innerDaddr], words(V6.daddr));
  t.equal(i.innerL4Off, i.innerL3Off + 56);
  t.equal(i.innerSport, 7);
  t.equal(i.innerDport, 9);
  t.equal(((f[i.l4Off + 4]! << 24) | (f[i.l4Off + 5]! << 16) | (f[i.l4Off + 6]! << 8) | f[i.l4Off + 7]!) >>> 0, 1280);
  // Quote cut inside the destination options header: header unusable, the outer packet is fine.
  const cut = parse(buildIcmpError({ original: ipPacketOf(orig), icmpType: 1, saddr: 'fe80::1', daddr: V6.saddr, quoteLimit: 52 }));
  t.equal(cut.innerL3Off, -1);
  t.equal(cut.innerSport, -1);
  t.equal(parse(buildIcmp({ ...V6, icmpType: 135, body: new Uint8Array(16) })).innerL3Off, -1, 'NDP is informational');
});

t.test('IPv4 fragments: first has ports, later ones have no L4', async (t) => {
  const frags = buildUdpFragments({ sport: 4000, dport: 5000, payload: 'p'.repeat(40), fragSize: 16 });
  t.equal(frags.length, 3, '48 bytes of UDP in 16-byte pieces');
  const [a, b, c] = frags.map((f) => parse(f));
  t.equal(a!.moreFrags, true);
  t.equal(a!.fragOff, 0);
  t.equal(a!.isLaterFrag, false);
  t.equal(a!.sport, 4000);
  t.equal(a!.l4Len, 16);
  t.equal(b!.fragOff, 16);
  t.equal(b!.moreFrags, true);
  t.equal(b!.isLaterFrag, true);
  t.equal(b!.l4Off, -1);
  t.equal(b!.sport, 0);
  t.equal(b!.proto, 17);
  t.equal(c!.fragOff, 32);
  t.equal(c!.moreFrags, false);
  t.equal(c!.isLaterFrag, true);
});

t.test('IPv6 fragments: fragment header fields', async (t) => {
  const frags = buildUdpFragments({ ...V6, sport: 4000, payload: 'p'.repeat(40), fragSize: 24, ipv6Ext: [{ type: 0 }] });
  t.equal(frags.length, 2);
  const a = parse(frags[0]!);
  t.equal(a.fragHdrOff, 14 + 40 + 8, 'after the hop-by-hop header');
  t.equal(a.fragOff, 0);
  t.equal(a.moreFrags, true);
  t.equal(a.isLaterFrag, false);
  t.equal(a.proto, 17);
  t.equal(a.sport, 4000);
  const b = parse(frags[1]!);
  t.equal(b.fragOff, 24);
  t.equal(b.moreFrags, false);
  t.equal(b.isLaterFrag, true);
  t.equal(b.proto, 17, 'the fragment header\'s next header');
  t.equal(b.l4Off, -1);
  t.equal(b.l3HdrLen, 40 + 8 + 8);
});

t.test('ARP request and reply', async (t) => {
  const rq = new PacketInfo();
  const f = buildArp({ senderIp: '10.0.0.1', targetIp: '10.0.0.100', vlan: 5 });
  t.equal(parseFrame(f, 0, f.length, rq), PARSE_OK);
  t.equal(rq.ethType, 0x0806);
  t.equal(rq.af, 0);
  t.equal(rq.vlanTci, 5);
  t.equal(rq.arpOp, 1);
  t.same([rq.arpSpa, 0, 0, 0], words('10.0.0.1'));
  t.same([rq.arpTpa, 0, 0, 0], words('10.0.0.100'));
  t.equal(rq.l3Off, 18);
  const rp = parse(buildArp({ op: 'reply', senderIp: '10.0.0.100', targetIp: '10.0.0.1', padTo: 60 }));
  t.equal(rp.arpOp, 2);
  t.same([rp.arpSpa, 0, 0, 0], words('10.0.0.100'));
  // Non-Ethernet/IPv4 ARP is not for us.
  const odd = buildArp({});
  odd[14 + 5] = 16;
  t.equal(parseFrame(odd, 0, odd.length, new PacketInfo()), PARSE_NOT_IP);
});

t.test('other EtherTypes are not IP; the PacketInfo is fully reset between frames', async (t) => {
  const info = new PacketInfo();
  const tcp = buildIcmpError({ original: ipPacketOf(buildTcp({})), icmpType: 3 });
  t.equal(parseFrame(tcp, 0, tcp.length, info), PARSE_OK);
  t.equal(info.innerSport, 12345);
  const lldp = new Uint8Array(60);
  lldp[12] = 0x88; lldp[13] = 0xcc;
  t.equal(parseFrame(lldp, 0, lldp.length, info), PARSE_NOT_IP);
  t.equal(info.ethType, 0x88cc);
  const fresh = new PacketInfo();
  fresh.ethType = 0x88cc;
  fresh.frameLen = 60;
  fresh.l3Off = 14;
  t.same({ ...info, saddr: [...info.saddr], innerSaddr: [...info.innerSaddr] },
    { ...fresh, saddr: [...fresh.saddr], innerSaddr: [...fresh.innerSaddr] }, 'nothing left over from the ICMP error');
});

t.test('TCP shorter than its header is truncated', async (t) => {
  const f = buildTcp({});
  // Claim only 10 bytes of TCP in the IP length.
  f[14 + 2] = 0; f[14 + 3] = 30;
  t.equal(parseFrame(f, 0, f.length, new PacketInfo()), PARSE_TRUNC_L4);
});
