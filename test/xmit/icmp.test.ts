import t from 'tap';
import {
  buildIcmp, buildIcmpEcho, buildIcmpError, buildSctp, buildTcp, buildUdp, fragmentFrame, ipPacketOf,
  type FrameOptions,
} from '../../src/packet/build.js';
import { rd16 } from '../../src/packet/bytes.js';
import { ipv4HeaderChecksumOk, l4ChecksumOk } from '../../src/packet/checksum.js';
import type { PacketInfo } from '../../src/packet/info.js';
import {
  XMIT_FRAG_NEEDED, XMIT_FRAGMENT, XMIT_OK, XMIT_TTL_EXCEEDED, XmitResult, l2Template,
} from '../../src/xmit/common.js';
import {
  ICMPERR_FRAG_NEEDED, ICMPERR_PORT_UNREACH, ICMPERR_TIME_EXCEEDED, IcmpErrorBuilder,
  natIcmpInbound, natIcmpOutbound, xmitIcmpNatIn, xmitIcmpNatOut,
} from '../../src/xmit/icmp.js';
import { addr, frameOf, hasTshark, hex, mac, parse, placeParsed, tshark } from './helpers.js';

const produced: Uint8Array[] = [];
const OUR = mac('02:00:00:00:00:aa');
const NH = mac('02:00:00:00:00:cc');
const L2 = l2Template(NH, OUR);
const V4 = { c: '192.0.2.10', v: '10.0.0.100', r: '172.16.0.5', rtr: '198.51.100.1' };
const V6 = { c: '2001:db8:c::10', v: '2001:db8:1::100', r: 'fd00:5::5', rtr: '2001:db8:ff::1' };

function offending(fam: 4 | 6, o: FrameOptions = {}): Uint8Array {
  const A = fam === 4 ? V4 : V6;
  return buildTcp({ saddr: A.c, daddr: A.v, sport: 40000, dport: 80, ttl: 64, tos: 0x2b, payload: 'req', ...o });
}

function build(b: IcmpErrorBuilder, frame: Uint8Array, kind: number, mtu = 0, vlan = -1, out = new Uint8Array(2000)): { n: number; out: Uint8Array; info: PacketInfo } {
  const info = parse(frame, 0, frame.length);
  const n = b.build(frame, info, kind, mtu, info.daddr, L2, vlan, out, 5);
  return { n, out: out.slice(5, 5 + n), info };
}

t.test('IPv4 errors equal a built ICMP error quoting the packet', async (t) => {
  const b = new IcmpErrorBuilder(0x100);
  const cases: [number, number, number, number][] = [
    [ICMPERR_PORT_UNREACH, 3, 3, 0], [ICMPERR_FRAG_NEEDED, 3, 4, 1400], [ICMPERR_TIME_EXCEEDED, 11, 0, 0],
  ];
  let id = 0x100;
  for (const [kind, type, code, mtu] of cases) {
    const f = offending(4, { df: true, padTo: 80 });
    const { n, out } = build(b, f, kind, mtu);
    t.ok(n > 0, `type ${type} code ${code} sent`);
    produced.push(out);
    const want = buildIcmpError({
      saddr: V4.v, daddr: V4.c, srcMac: OUR, dstMac: NH, ttl: 64, tos: (0x2b & 0x1e) | 0xc0, ipId: id++, df: false,
      original: ipPacketOf(f), icmpType: type, icmpCode: code, ...(mtu ? { mtu } : {}),
    });
    t.equal(hex(out), hex(want), `type ${type}/${code}: from the VIP, TOS = RT_TOS | 0xc0, TTL 64, no DF, whole packet quoted (no padding)`);
    if (mtu) t.equal(rd16(out, 14 + 20 + 6), 1400, 'next-hop MTU in bytes 6..7');
  }
});

t.test('IPv6 errors equal a built ICMPv6 error quoting the packet', async (t) => {
  const b = new IcmpErrorBuilder();
  const cases: [number, number, number, number][] = [
    [ICMPERR_PORT_UNREACH, 1, 4, 0], [ICMPERR_FRAG_NEEDED, 2, 0, 1280], [ICMPERR_TIME_EXCEEDED, 3, 0, 0],
  ];
  for (const [kind, type, code, mtu] of cases) {
    const f = offending(6);
    const { n, out } = build(b, f, kind, mtu);
    t.ok(n > 0);
    produced.push(out);
    const want = buildIcmpError({
      saddr: V6.v, daddr: V6.c, srcMac: OUR, dstMac: NH, ttl: 64, tos: 0, flowLabel: 0,
      original: ipPacketOf(f), icmpType: type, icmpCode: code, ...(mtu ? { mtu } : {}),
    });
    t.equal(hex(out), hex(want), `ICMPv6 ${type}/${code}`);
  }
});

t.test('quoting limits: IPv4 message at most 576 bytes (less on a smaller route MTU), ICMPv6 at most 1280', async (t) => {
  const b = new IcmpErrorBuilder();
  let r = build(b, offending(4, { payload: 'x'.repeat(1400) }), ICMPERR_FRAG_NEEDED, 1300);
  t.equal(r.n, 14 + 576, 'IPv4: 576-byte IP message');
  t.equal(rd16(r.out, 16), 576, 'total length 576');
  t.equal(hex(r.out.subarray(14 + 28)), hex(ipPacketOf(offending(4, { payload: 'x'.repeat(1400) })).subarray(0, 548)), 'first 548 bytes quoted');
  produced.push(r.out);
  b.routeMtu4 = 300;
  r = build(b, offending(4, { payload: 'x'.repeat(1400) }), ICMPERR_TIME_EXCEEDED);
  t.equal(rd16(r.out, 16), 300, 'route MTU 300: 300-byte message');
  produced.push(r.out);
  b.routeMtu4 = 48;
  t.equal(build(b, offending(4), ICMPERR_TIME_EXCEEDED).n, 0, 'room for no more than an IP header: nothing sent');
  b.routeMtu4 = 1500;
  r = build(b, offending(6, { payload: 'y'.repeat(1400) }), ICMPERR_FRAG_NEEDED, 1280);
  t.equal(r.n, 14 + 1280, 'IPv6: 1280-byte packet');
  t.equal(rd16(r.out, 18), 1240, 'payload length 1240 = 8 + 1232 quoted');
  produced.push(r.out);
  t.equal(build(b, offending(4), ICMPERR_PORT_UNREACH, 0, -1, new Uint8Array(60)).n, 0, 'output buffer too small: nothing');
  r = build(b, offending(4), ICMPERR_PORT_UNREACH, 0, 0x0123);
  t.equal(hex(r.out.subarray(12, 18)), '810001230800', 'VLAN-tagged error');
  produced.push(r.out);
});

t.test('never answered (icmp_send / icmp6_send rules)', async (t) => {
  const b = new IcmpErrorBuilder();
  const no = (f: Uint8Array, kind = ICMPERR_PORT_UNREACH) => build(b, f, kind).n === 0;
  const errV4 = buildIcmpError({ saddr: V4.c, daddr: V4.v, original: ipPacketOf(buildUdp({ saddr: V4.v, daddr: V4.c })), icmpType: 3, icmpCode: 3 });
  t.ok(no(errV4), 'an ICMP error');
  t.ok(no(buildIcmp({ saddr: V4.c, daddr: V4.v, icmpType: 40 })), 'an unknown ICMP type (> 18) counts as an error');
  t.notOk(no(buildIcmpEcho({ saddr: V4.c, daddr: V4.v }), ICMPERR_TIME_EXCEEDED), 'an echo request is answered');
  const frags = fragmentFrame(offending(4, { payload: 'z'.repeat(200) }), 64);
  t.notOk(no(frags[0]!), 'a first fragment is answered');
  t.ok(no(frags[1]!), 'a non-first fragment is not');
  t.ok(no(offending(4, { dstMac: 'ff:ff:ff:ff:ff:ff' })), 'link-layer broadcast');
  t.ok(no(offending(4, { dstMac: '01:00:5e:00:00:05' })), 'link-layer multicast');
  t.ok(no(offending(4, { daddr: '224.0.0.5' })), 'IP multicast destination');
  t.ok(no(offending(4, { daddr: '255.255.255.255' })), 'limited broadcast destination');
  t.ok(no(offending(4, { saddr: '0.0.0.0' })), 'source 0.0.0.0');
  t.ok(no(offending(4, { saddr: '239.1.1.1' })), 'multicast source');

  const errV6 = buildIcmpError({ saddr: V6.c, daddr: V6.v, original: ipPacketOf(buildUdp({ saddr: V6.v, daddr: V6.c })), icmpType: 1, icmpCode: 4 });
  t.ok(no(errV6), 'an ICMPv6 error');
  t.notOk(no(buildIcmpEcho({ saddr: V6.c, daddr: V6.v })), 'an ICMPv6 echo request is answered');
  t.ok(no(offending(6, { daddr: 'ff02::1' })), 'multicast destination: no port unreachable');
  t.notOk(no(offending(6, { daddr: 'ff02::1' }), ICMPERR_FRAG_NEEDED), '... but packet too big is sent');
  t.notOk(no(offending(6, { dstMac: '33:33:00:00:00:01' }), ICMPERR_FRAG_NEEDED), 'link multicast: packet too big only');
  t.ok(no(offending(6, { dstMac: '33:33:00:00:00:01' }), ICMPERR_TIME_EXCEEDED));
  t.ok(no(offending(6, { saddr: '::' })), 'unspecified source');
  t.ok(no(offending(6, { saddr: 'ff05::2' }), ICMPERR_FRAG_NEEDED), 'multicast source, even packet too big');
  const f6 = fragmentFrame(offending(6, { payload: 'z'.repeat(200) }), 64);
  t.notOk(no(f6[2]!, ICMPERR_TIME_EXCEEDED), 'IPv6 non-first fragment: icmp6_send answers (RFC 8200); IPVS avoids PTB for it (mtuCheck)');
});

t.test('IP ID of generated IPv4 errors counts up', async (t) => {
  const b = new IcmpErrorBuilder(0xfffe);
  const ids = [0, 1, 2].map(() => rd16(build(b, offending(4), ICMPERR_PORT_UNREACH).out, 18));
  t.same(ids, [0xfffe, 0xffff, 0]);
});

// ---------------------------------------------------------------------------------------------
// NAT of related ICMP errors

/** The quoted packet as it should look after NAT: built for the new tuple, but with the original transport checksum (the kernel does not update it). */
function quotedAfter(orig: Uint8Array, rebuilt: Uint8Array, quoteLen: number): Uint8Array {
  const a = ipPacketOf(orig), b = ipPacketOf(rebuilt);
  const ia = parse(orig, 0, orig.length);
  const at = ia.l4Off - ia.l3Off + (ia.proto === 6 ? 16 : ia.proto === 17 ? 6 : 8);
  b.set(a.subarray(at, at + (ia.proto === 132 ? 4 : 2)), at);
  return b.subarray(0, quoteLen);
}

type B = (o: FrameOptions) => Uint8Array;
const QUOTED: [string, B][] = [['tcp', (o) => buildTcp(o)], ['udp', (o) => buildUdp(o)], ['sctp', (o) => buildSctp({ chunk: 'data', ...o })]];

for (const [fam, A] of [[4, V4], [6, V6]] as const) {
  for (const [name, qb] of QUOTED) {
    for (const quoteLen of [fam === 4 ? 28 : 48, 2000]) {
      t.test(`IPv${fam} ${name} quoted ${quoteLen > 100 ? 'whole' : 'header + 8'}: inbound ICMP NAT (client side → RS)`, async (t) => {
        // The client's router reports a problem with our reply VIP:80 → client:40000.
        const quoted = qb({ saddr: A.v, sport: 80, daddr: A.c, dport: 40000, payload: 'reply data' });
        const qlen = Math.min(quoteLen, ipPacketOf(quoted).length);
        const type = fam === 4 ? 3 : 2;
        const err = buildIcmpError({ saddr: A.rtr, daddr: A.v, ttl: 30, original: ipPacketOf(quoted).subarray(0, qlen), icmpType: type, icmpCode: fam === 4 ? 4 : 0, mtu: 1280 });
        const p = placeParsed(err);
        t.ok(natIcmpInbound(p.buf, p.info, addr(A.r), 8080));
        const got = frameOf(p.buf, p.off, p.len);
        produced.push(got);
        const rebuilt = qb({ saddr: A.r, sport: 8080, daddr: A.c, dport: 40000, payload: 'reply data' });
        const want = buildIcmpError({ saddr: A.rtr, daddr: A.r, ttl: 30, original: quotedAfter(quoted, rebuilt, qlen), icmpType: type, icmpCode: fam === 4 ? 4 : 0, mtu: 1280 });
        t.equal(hex(got), hex(want), 'outer daddr, quoted saddr:sport = RS:dport; quoted IP checksum redone; quoted L4 checksum left alone');
        const info = parse(got, 0, got.length);
        t.ok(l4ChecksumOk(got, fam, info.l3Off, fam === 4 ? 1 : 58, info.l4Off, info.l4Len), 'ICMP checksum valid');
        if (fam === 4) t.ok(ipv4HeaderChecksumOk(got, info.innerL3Off), 'quoted IPv4 header checksum valid');
        t.equal(p.info.innerSport, 8080, 'PacketInfo refreshed');
      });

      t.test(`IPv${fam} ${name} quoted ${quoteLen > 100 ? 'whole' : 'header + 8'}: outbound ICMP NAT (RS → client)`, async (t) => {
        // The RS reports a problem with the client's (translated) packet client:40000 → RS:8080.
        const quoted = qb({ saddr: A.c, sport: 40000, daddr: A.r, dport: 8080, payload: 'request data' });
        const qlen = Math.min(quoteLen, ipPacketOf(quoted).length);
        const type = fam === 4 ? 3 : 1;
        const code = fam === 4 ? 3 : 4;
        const err = buildIcmpError({ saddr: A.r, daddr: A.c, ttl: 64, original: ipPacketOf(quoted).subarray(0, qlen), icmpType: type, icmpCode: code });
        const p = placeParsed(err);
        t.ok(natIcmpOutbound(p.buf, p.info, addr(A.v), 80));
        const got = frameOf(p.buf, p.off, p.len);
        produced.push(got);
        const rebuilt = qb({ saddr: A.c, sport: 40000, daddr: A.v, dport: 80, payload: 'request data' });
        const want = buildIcmpError({ saddr: A.v, daddr: A.c, ttl: 64, original: quotedAfter(quoted, rebuilt, qlen), icmpType: type, icmpCode: code });
        t.equal(hex(got), hex(want), 'outer saddr = VIP, quoted daddr:dport = VIP:vport');
      });
    }
  }
}

t.test('quoted packets without ports: later fragment or too short', async (t) => {
  const frag = fragmentFrame(buildUdp({ saddr: V4.v, daddr: V4.c, sport: 80, dport: 40000, payload: 'p'.repeat(100) }), 32)[1]!;
  const err = buildIcmpError({ saddr: V4.rtr, daddr: V4.v, original: ipPacketOf(frag), icmpType: 11, icmpCode: 1 });
  const p = placeParsed(err);
  const quotedData = hex(p.buf.subarray(p.info.innerL3Off + 20, p.info.innerL3Off + 24));
  t.ok(natIcmpInbound(p.buf, p.info, addr(V4.r), 8080));
  t.equal(hex(p.buf.subarray(p.info.innerL3Off + 20, p.info.innerL3Off + 24)), quotedData, 'a quoted later fragment has no ports to rewrite');
  t.equal(p.buf[p.info.innerL3Off + 12], 172, 'but its source address is rewritten');
  produced.push(frameOf(p.buf, p.off, p.len));
  const short = buildIcmpError({ saddr: V4.rtr, daddr: V4.v, original: ipPacketOf(buildTcp({ saddr: V4.v, daddr: V4.c })).subarray(0, 22), icmpType: 3, icmpCode: 1 });
  const q = placeParsed(short);
  t.equal(q.info.innerSport, -1, 'setup: only 2 bytes of TCP quoted');
  t.ok(natIcmpInbound(q.buf, q.info, addr(V4.r), 8080));
  t.equal(rd16(q.buf, q.info.innerL3Off + 20), 12345, 'no port written into a quote that lacks it');
  produced.push(frameOf(q.buf, q.off, q.len));
  const echo = placeParsed(buildIcmpEcho({ saddr: V4.c, daddr: V4.v }));
  t.notOk(natIcmpInbound(echo.buf, echo.info, addr(V4.r), 8080), 'not an error: refused');
});

t.test('xmitIcmpNatIn / xmitIcmpNatOut', async (t) => {
  const res = new XmitResult();
  const quoted = buildTcp({ saddr: V4.v, sport: 80, daddr: V4.c, dport: 40000, payload: 'w'.repeat(1400) });
  const err = buildIcmpError({ saddr: V4.rtr, daddr: V4.v, ttl: 30, df: true, original: ipPacketOf(quoted), icmpType: 3, icmpCode: 4, mtu: 1400, quoteLimit: 1440 });
  let p = placeParsed(err);
  t.equal(xmitIcmpNatIn(p.buf, p.info, addr(V4.r), 8080, L2, 1500, res), XMIT_OK);
  const got = frameOf(p.buf, p.off, p.len);
  produced.push(got);
  t.equal(got[14 + 8], 29, 'TTL decremented');
  t.equal(hex(got.subarray(0, 12)), hex(NH) + hex(OUR), 'MACs');
  p = placeParsed(err);
  t.equal(xmitIcmpNatIn(p.buf, p.info, addr(V4.r), 8080, L2, 1000, res), XMIT_FRAGMENT, 'a relayed ICMP error with DF never triggers frag-needed');
  p = placeParsed(buildIcmpError({ saddr: V4.rtr, daddr: V4.v, ttl: 1, original: ipPacketOf(quoted), icmpType: 3, icmpCode: 4, mtu: 1400 }));
  t.equal(xmitIcmpNatIn(p.buf, p.info, addr(V4.r), 8080, L2, 1500, res), XMIT_TTL_EXCEEDED);

  const fromRs = buildIcmpError({ saddr: V4.r, daddr: V4.c, ttl: 64, df: true, original: ipPacketOf(buildUdp({ saddr: V4.c, daddr: V4.r, sport: 40000, dport: 8080 })), icmpType: 3, icmpCode: 3 });
  p = placeParsed(fromRs);
  t.equal(xmitIcmpNatOut(p.buf, p.info, addr(V4.v), 80, L2, 1500, res), XMIT_OK);
  const o = parse(p.buf, p.off, p.len);
  produced.push(frameOf(p.buf, p.off, p.len));
  t.equal(o.ttl, 63);
  t.same(Array.from(o.saddr), Array.from(addr(V4.v)));
  t.equal(o.innerDport, 80);
  p = placeParsed(fromRs);
  t.equal(p.info.ipLen, 56, 'setup: a 56-byte error');
  t.equal(xmitIcmpNatOut(p.buf, p.info, addr(V4.v), 80, L2, 50, res), XMIT_FRAG_NEEDED, 'forwarding path: ICMP errors are not exempt');
});

t.test('tshark validates the ICMP frames', { skip: hasTshark ? false : 'tshark not installed' }, async (t) => {
  const rows = tshark(produced);
  t.equal(rows.length, produced.length);
  // Quoted transport checksums are not asserted: a truncated quote cannot verify, and after ICMP
  // NAT the kernel leaves them stale on purpose. Outer and quoted IPv4 headers and the ICMP
  // checksum must all be good.
  let bad = 0;
  rows.forEach((r, i) => {
    const ip = r.status['ip'] ?? [];
    const icmp = [...(r.status['icmp'] ?? []), ...(r.status['icmpv6'] ?? [])];
    if (r.malformed || ip.some((s) => s !== '1') || icmp.length !== 1 || icmp[0] !== '1') {
      bad++;
      t.fail(`frame ${i + 1}: ${JSON.stringify(r)}`);
    }
  });
  t.equal(bad, 0, 'every IPv4 header (outer and quoted) and every ICMP/ICMPv6 checksum verified good, nothing malformed');
});
