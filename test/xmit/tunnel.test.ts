import t from 'tap';
import {
  buildIpFrame, buildTcp, buildUdp, fragmentFrame, ipPacketOf, type FrameOptions,
} from '../../src/packet/build.js';
import { rd16, rd32 } from '../../src/packet/bytes.js';
import {
  completePartialChecksum, csumAdd, csumFold, ipv4HeaderChecksumOk, l4ChecksumOkInfo, pseudoSumAt,
} from '../../src/packet/checksum.js';
import { PacketInfo, PARSE_OK } from '../../src/packet/info.js';
import { parseFrame } from '../../src/packet/parse.js';
import { TUN_GRE, TUN_GUE, TUN_IPIP, TUN_F_CSUM, TUN_F_NOCSUM, TUN_F_REMCSUM } from '../../src/svc/types.js';
import {
  XMIT_DROP, XMIT_ERROR, XMIT_FRAG_NEEDED, XMIT_FRAGMENT, XMIT_OK, XMIT_TTL_EXCEEDED, XmitResult, l2Template,
} from '../../src/xmit/common.js';
import { fragmentIpv4, fragmentIpv6 } from '../../src/xmit/fragment.js';
import {
  TunnelEncap, ecnEncapsulate, encapHeaderLen, newTunnelTarget, tunnelMtu, type TunnelTarget,
} from '../../src/xmit/tunnel.js';
import { addr, frameOf, hasTshark, hex, mac, parse, placeParsed, tshark, tsharkClean } from './helpers.js';

const produced: Uint8Array[] = [];
const OUR = mac('02:00:00:00:00:aa');
const NH = mac('02:00:00:00:00:cc');
const L2 = l2Template(NH, OUR);
const OUT4 = { s: '172.16.0.1', d: '172.16.0.5' };
const OUT6 = { s: 'fd00::1', d: 'fd00::5' };
const GUE_PORT = 6080;

function target(af: 4 | 6, type: number, flags = TUN_F_NOCSUM, routeMtu = 1500, vlanTci = -1): TunnelTarget {
  const o = af === 4 ? OUT4 : OUT6;
  return newTunnelTarget(af, addr(o.s), addr(o.d), type, GUE_PORT, flags, routeMtu, L2, vlanTci);
}

/** Client packet, 4 or 6. */
function inner(fam: 4 | 6, o: FrameOptions = {}): Uint8Array {
  return buildTcp({
    saddr: fam === 4 ? '192.0.2.10' : '2001:db8:c::10', daddr: fam === 4 ? '10.0.0.100' : '2001:db8:1::100',
    sport: 40000, dport: 80, flags: 0x18, ttl: 64, tos: 0x28, payload: 'tunnelled request', ...o,
  });
}

function run(enc: TunnelEncap, frame: Uint8Array, tgt: TunnelTarget, partial = false, relayed = false): { code: number; res: XmitResult; out: Uint8Array; p: ReturnType<typeof placeParsed> } {
  const p = placeParsed(frame);
  const res = new XmitResult();
  const code = enc.xmit(p.buf, p.info, tgt, partial, relayed, res);
  return { code, res, out: frameOf(p.buf, res.off, res.len), p };
}

t.test('ECN encapsulation rule: DSCP and ECN copied, CE becomes ECT(0)', async (t) => {
  t.equal(ecnEncapsulate(0x00), 0x00, 'not-ECT');
  t.equal(ecnEncapsulate(0x01), 0x01, 'ECT(1)');
  t.equal(ecnEncapsulate(0x02), 0x02, 'ECT(0)');
  t.equal(ecnEncapsulate(0x03), 0x02, 'CE → ECT(0)');
  t.equal(ecnEncapsulate(0xbb), 0xba, 'EF + CE → EF + ECT(0)');
  t.equal(ecnEncapsulate(0xfd), 0xfd);
});

t.test('tunnel MTU arithmetic (c.3)', async (t) => {
  t.equal(tunnelMtu(target(4, TUN_IPIP), false), 1480, 'IPIP over IPv4: -20');
  t.equal(tunnelMtu(target(6, TUN_IPIP), false), 1460, 'over IPv6: -40');
  t.equal(tunnelMtu(target(4, TUN_GUE), false), 1468, 'GUE: -20 -8 -4');
  t.equal(tunnelMtu(target(4, TUN_GUE, TUN_F_CSUM), false), 1468, 'GUE csum: same size');
  t.equal(tunnelMtu(target(4, TUN_GUE, TUN_F_REMCSUM), false), 1468, 'remcsum on a complete checksum: no option');
  t.equal(tunnelMtu(target(4, TUN_GUE, TUN_F_REMCSUM), true), 1460, 'remcsum on a partial checksum: -8 more');
  t.equal(tunnelMtu(target(4, TUN_GRE), false), 1476, 'GRE: -4');
  t.equal(tunnelMtu(target(4, TUN_GRE, TUN_F_CSUM), false), 1472, 'GRE with checksum: -8');
  t.equal(tunnelMtu(target(6, TUN_GRE, TUN_F_CSUM), false), 1452);
  t.equal(tunnelMtu(target(4, TUN_IPIP, 0, 88), false), 68, 'exactly 68 is allowed');
  t.equal(tunnelMtu(target(4, TUN_IPIP, 0, 87), false), -1, 'below 68: drop');
  t.equal(tunnelMtu(target(6, TUN_IPIP, 0, 1319), false), -1, 'IPv6 outer below 1280: drop');
  t.equal(encapHeaderLen(target(4, TUN_GUE, TUN_F_REMCSUM), true), 20);
});

for (const outerAf of [4, 6] as const) {
  for (const innerAf of [4, 6] as const) {
    t.test(`IPIP: IPv${innerAf} in IPv${outerAf} equals a built encapsulation`, async (t) => {
      const enc = new TunnelEncap(1, 0x1000);
      enc.pmtuDisc = true;
      for (const [df, tos] of [[true, 0x28], [false, 0x2b], [true, 0xb9]] as const) {
        const f = inner(innerAf, { df, tos });
        const { code, res, out, p } = run(enc, f, target(outerAf, TUN_IPIP));
        t.equal(code, XMIT_OK);
        produced.push(out);
        t.ok(res.off < p.off, 'frame moved into the headroom');
        t.equal(res.off + res.len, p.off + p.len, 'payload stayed in place');
        const innerAfter = ipPacketOf(inner(innerAf, { df, tos, ttl: 63 }));
        const outerDf = outerAf === 4 && innerAf === 4 && df;
        const id = outerAf === 4 && !outerDf ? rd16(out, 18) : 0;
        const want = buildIpFrame({
          saddr: outerAf === 4 ? OUT4.s : OUT6.s, daddr: outerAf === 4 ? OUT4.d : OUT6.d,
          ttl: 63, tos: ecnEncapsulate(tos), df: outerDf, ipId: id, flowLabel: 0, srcMac: OUR, dstMac: NH,
        }, innerAf === 4 ? 4 : 41, innerAfter);
        t.equal(hex(out), hex(want), `df=${df} tos=${tos.toString(16)}: outer header per c.3, inner TTL-1`);
        if (outerAf === 4) {
          t.equal(out[14 + 9], innerAf === 4 ? 4 : 41, 'protocol 4 / 41');
          if (outerDf) t.equal(rd16(out, 18), 0, 'DF set → ID 0 (ip_select_ident)');
        } else {
          t.equal(out[14 + 6], innerAf === 4 ? 4 : 41, 'next header 4 / 41');
          t.equal(rd16(out, 18), innerAfter.length, 'payload length = inner packet');
        }
      }
    });
  }
}

t.test('outer IPv4 ID: counter for non-DF packets, 0 for DF ones; pmtu_disc=0 clears DF', async (t) => {
  const enc = new TunnelEncap(1, 0xfffe);
  const ids: number[] = [];
  for (let i = 0; i < 3; i++) ids.push(rd16(run(enc, inner(4, { df: false }), target(4, TUN_IPIP)).out, 18));
  t.same(ids, [0xfffe, 0xffff, 0], 'consecutive, wrapping at 16 bits');
  const d = run(enc, inner(4, { df: true }), target(4, TUN_IPIP)).out;
  t.equal(rd16(d, 20) & 0x4000, 0x4000, 'DF copied');
  t.equal(rd16(d, 18), 0, 'ID 0');
  enc.pmtuDisc = false;
  const n = run(enc, inner(4, { df: true }), target(4, TUN_IPIP)).out;
  t.equal(rd16(n, 20), 0, 'pmtu_disc=0: DF not copied, no MF, offset 0');
  t.equal(rd16(n, 18), 1, 'and the ID comes from the counter');
  const v6 = run(enc, inner(6), target(4, TUN_IPIP)).out;
  t.equal(rd16(v6, 20), 0, 'IPv6 inner: DF 0');
});

t.test('GUE: UDP to --tun-port, source port from the flow hash, 4-byte GUE header, checksum modes', async (t) => {
  const enc = new TunnelEncap(12345);
  for (const outerAf of [4, 6] as const) {
    for (const innerAf of [4, 6] as const) {
      for (const flags of [TUN_F_NOCSUM, TUN_F_CSUM, TUN_F_REMCSUM]) {
        const tgt = target(outerAf, TUN_GUE, flags);
        const { code, out } = run(enc, inner(innerAf), tgt);
        t.equal(code, XMIT_OK);
        produced.push(out);
        const o = parse(out, 0, out.length);
        t.equal(o.proto, 17, 'outer protocol UDP');
        t.equal(o.dport, GUE_PORT, 'destination port = --tun-port');
        t.ok(o.sport >= 32768 && o.sport < 60999, `source port ${o.sport} in the ephemeral range`);
        const u = o.l4Off;
        t.equal(rd16(out, u + 4), o.l4Len, 'UDP length');
        t.equal(hex(out.subarray(u + 8, u + 12)), (innerAf === 4 ? '0004' : '0029') + '0000', 'GUE: version 0, C 0, hlen 0, proto, flags 0');
        const innerAfter = ipPacketOf(inner(innerAf, { ttl: 63 }));
        t.equal(hex(out.subarray(u + 12)), hex(innerAfter), 'inner packet, TTL-1');
        const gue = Uint8Array.of(0, innerAf === 4 ? 4 : 41, 0, 0);
        const payload = new Uint8Array(4 + innerAfter.length);
        payload.set(gue, 0);
        payload.set(innerAfter, 4);
        const want = buildUdp({
          saddr: outerAf === 4 ? OUT4.s : OUT6.s, daddr: outerAf === 4 ? OUT4.d : OUT6.d,
          sport: o.sport, dport: GUE_PORT, ttl: 63, tos: ecnEncapsulate(0x28), ipId: outerAf === 4 ? rd16(out, 18) : 0,
          df: false, flowLabel: 0, srcMac: OUR, dstMac: NH, payload, l4Checksum: flags === TUN_F_NOCSUM ? 'zero' : 'valid',
        });
        t.equal(hex(out), hex(want), `outer v${outerAf} inner v${innerAf} flags ${flags}: equals the built frame`);
        if (flags !== TUN_F_NOCSUM) t.ok(l4ChecksumOkInfo(out, o), 'outer UDP checksum valid');
        else t.equal(rd16(out, u + 6), 0, '--tun-nocsum: UDP checksum 0');
      }
    }
  }
});

t.test('GUE source port: one port per flow, the same for all fragments, spread across flows', async (t) => {
  const enc = new TunnelEncap(99);
  const tgt = target(4, TUN_GUE);
  const a = run(enc, inner(4), tgt).out;
  const b = run(enc, inner(4, { payload: 'another packet of the same flow' }), tgt).out;
  t.equal(rd16(a, 34), rd16(b, 34), 'same flow → same source port');
  const frags = fragmentFrame(buildUdp({ saddr: '192.0.2.9', daddr: '10.0.0.100', payload: 'f'.repeat(300) }), 128);
  const ports = new Set(frags.map((f) => rd16(run(enc, f, tgt).out, 34)));
  t.equal(ports.size, 1, 'all fragments of a datagram get the same port');
  const spread = new Set<number>();
  for (let i = 0; i < 200; i++) spread.add(rd16(run(enc, inner(4, { sport: 20000 + i }), tgt).out, 34));
  t.ok(spread.size > 180, `200 flows use ${spread.size} source ports`);
  const enc2 = new TunnelEncap(100);
  t.not(rd16(run(enc2, inner(4), tgt).out, 34), rd16(a, 34), 'the hash is seeded');
});

t.test('GUE --tun-remcsum with a CHECKSUM_PARTIAL packet: private flags and checksum start/offset', async (t) => {
  const enc = new TunnelEncap(5);
  for (const innerAf of [4, 6] as const) {
    const f = inner(innerAf, { l4Checksum: 'partial' });
    const tgt = target(4, TUN_GUE, TUN_F_REMCSUM);
    const { code, out, res } = run(enc, f, tgt, true);
    t.equal(code, XMIT_OK);
    produced.push(out);
    t.equal(res.mtu, 1460, 'tunnel MTU accounts for the 8 option bytes');
    const o = parse(out, 0, out.length);
    const g = o.l4Off + 8;
    t.equal(out[g], 2, 'hlen = 2 words of options');
    t.equal(rd16(out, g + 2), 0x0001, 'GUE_FLAG_PRIV');
    t.equal(rd32(out, g + 4), 0x80000000, 'GUE_PFLAG_REMCSUM');
    const ip = g + 12;
    const start = rd16(out, g + 8);
    const csumAt = rd16(out, g + 10);
    // The inner packet seen behind a fake 14-byte Ethernet header, as the RS would decapsulate it.
    const rx = out.slice(ip - 14);
    rx[12] = innerAf === 4 ? 0x08 : 0x86; rx[13] = innerAf === 4 ? 0x00 : 0xdd;
    const ri = parse(rx, 0, rx.length);
    t.equal(start, ri.l4Off - 14, 'checksum start = inner L4 offset from the inner IP header');
    t.equal(csumAt, start + 16, 'checksum offset = start + TCP checksum field');
    t.equal(rd16(out, ip + csumAt), csumFold(pseudoSumAt(rx, innerAf, 14, 6, ri.l4Len)), 'inner checksum still the partial pseudo-header sum');
    t.ok(l4ChecksumOkInfo(out, o), 'outer UDP checksum valid over the partial inner');
    // What the receiver does with the option: complete the inner checksum.
    t.ok(completePartialChecksum(rx, ri) && l4ChecksumOkInfo(rx, ri), 'completing at the described offset gives a valid inner packet');
  }
  const full = run(enc, inner(4), target(4, TUN_GUE, TUN_F_REMCSUM), false).out;
  t.equal(full[14 + 20 + 8], 0, 'complete checksum: no option (hlen 0)');
  const noRem = run(enc, inner(4, { l4Checksum: 'partial' }), target(4, TUN_GUE, TUN_F_CSUM), true).out;
  t.equal(noRem[14 + 20 + 8], 0, 'remcsum not configured: no option');
  // Inner IP starts at 14+20+8+4 = 46; view it behind a 14-byte fake Ethernet header.
  const inr = noRem.slice(32);
  inr[12] = 0x08; inr[13] = 0x00;
  t.ok(l4ChecksumOkInfo(inr, parse(inr, 0, inr.length)), 'without remcsum a partial inner checksum is completed before encapsulation');
  produced.push(noRem);
});

t.test('GRE: 4-byte header, or 8 with the C bit and a checksum', async (t) => {
  const enc = new TunnelEncap(1, 7);
  for (const outerAf of [4, 6] as const) {
    for (const innerAf of [4, 6] as const) {
      for (const csum of [false, true]) {
        const { code, out } = run(enc, inner(innerAf, { df: false }), target(outerAf, TUN_GRE, csum ? TUN_F_CSUM : 0));
        t.equal(code, XMIT_OK);
        produced.push(out);
        const o = parse(out, 0, out.length);
        t.equal(o.proto, 47, 'protocol 47');
        const g = o.l4Off;
        t.equal(rd16(out, g), csum ? 0x8000 : 0, csum ? 'C bit, version 0' : 'no flags, version 0');
        t.equal(rd16(out, g + 2), innerAf === 4 ? 0x0800 : 0x86dd, 'protocol type');
        const hl = csum ? 8 : 4;
        if (csum) {
          t.equal(rd16(out, g + 6), 0, 'reserved1 0');
          t.equal(csumFold(csumAdd(out, g, o.l4Len, 0)), 0xffff, 'GRE checksum covers header and payload');
        }
        t.equal(hex(out.subarray(g + hl)), hex(ipPacketOf(inner(innerAf, { df: false, ttl: 63 }))), 'inner packet follows');
        if (outerAf === 4) {
          t.ok(ipv4HeaderChecksumOk(out, 14), 'outer header checksum');
          t.equal(rd16(out, 16), 20 + hl + o.l4Len - hl, 'total length');
        }
      }
    }
  }
});

t.test('xmit: TTL, MTU, drops and headroom', async (t) => {
  const enc = new TunnelEncap(1);
  let r = run(enc, inner(4, { ttl: 1 }), target(4, TUN_IPIP));
  t.equal(r.code, XMIT_TTL_EXCEEDED, 'TTL 1: time exceeded');
  t.equal(r.res.off, r.p.off, 'frame not moved');
  const big = inner(4, { df: true, payload: 'x'.repeat(1450) }); // 1490 bytes
  r = run(enc, big, target(4, TUN_IPIP));
  t.equal(r.code, XMIT_FRAG_NEEDED, 'DF and 1490 > 1480');
  t.equal(r.res.mtu, 1480, 'reports the tunnel MTU');
  r = run(enc, big, target(4, TUN_GRE, TUN_F_CSUM));
  t.equal(r.res.mtu, 1472, 'GRE csum tunnel MTU');
  r = run(enc, big, target(4, TUN_IPIP), false, true);
  t.equal(r.code, XMIT_FRAGMENT, 'relayed ICMP: no frag-needed, outer must be fragmented');
  t.equal(r.res.mtu, 1500, 'to the route MTU');
  enc.pmtuDisc = false;
  r = run(enc, big, target(4, TUN_IPIP));
  t.equal(r.code, XMIT_FRAGMENT, 'pmtu_disc=0: fragment instead of frag-needed');
  t.equal(rd16(r.out, 20) & 0x4000, 0, 'outer DF clear');
  // Fragment the outer packet and check the pieces.
  const oi = parse(r.p.buf, r.res.off, r.res.len);
  const outBuf = new Uint8Array(4000);
  const lens = new Uint32Array(4);
  const n = fragmentIpv4(r.p.buf, oi, 1500, outBuf, 0, lens);
  t.equal(n, 2, 'two outer fragments');
  let off = 0;
  for (let i = 0; i < n; i++) { produced.push(outBuf.slice(off, off + lens[i]!)); off += lens[i]!; }
  enc.pmtuDisc = true;
  r = run(enc, inner(4, { df: false, payload: 'x'.repeat(1450) }), target(4, TUN_IPIP));
  t.equal(r.code, XMIT_FRAGMENT, 'no DF: encapsulated, then fragmented');
  // IPv4 without DF in an IPv6 outer header: ip6_fragment of the outer packet.
  r = run(enc, inner(4, { df: false, payload: 'x'.repeat(1450) }), target(6, TUN_GRE, TUN_F_CSUM));
  t.equal(r.code, XMIT_FRAGMENT, 'IPv6 outer longer than the route MTU');
  const o6 = parse(r.p.buf, r.res.off, r.res.len);
  const n6 = fragmentIpv6(r.p.buf, o6, 1500, 0xabcdef01, outBuf, 0, lens);
  t.equal(n6, 2, 'two IPv6 fragments');
  const data6: number[] = [];
  off = 0;
  for (let i = 0; i < n6; i++) {
    const f = outBuf.slice(off, off + lens[i]!);
    const fi = parse(f, 0, f.length);
    t.ok(fi.ipLen <= 1500, 'fits the route MTU');
    t.equal(rd32(f, fi.fragHdrOff + 4), 0xabcdef01, 'identification');
    t.equal(f[fi.fragHdrOff], 47, 'fragment header next header = GRE');
    t.equal(fi.moreFrags, i === 0);
    data6.push(...f.subarray(fi.fragHdrOff + 8, fi.l3Off + fi.ipLen));
    produced.push(f);
    off += lens[i]!;
  }
  t.equal(hex(Uint8Array.from(data6)), hex(r.out.subarray(14 + 40)), 'fragments carry GRE + inner packet');
  const v6big = inner(6, { payload: 'y'.repeat(1250) }); // 1310 bytes
  r = run(enc, v6big, target(4, TUN_IPIP, 0, 1300));
  t.equal(r.code, XMIT_FRAG_NEEDED, 'IPv6 inner: packet too big');
  t.equal(r.res.mtu, 1280);
  r = run(enc, inner(4), target(4, TUN_IPIP, 0, 80));
  t.equal(r.code, XMIT_DROP, 'route MTU 80: tunnel MTU 60 < 68, dropped');
  r = run(enc, inner(4), target(6, TUN_IPIP, 0, 1300));
  t.equal(r.code, XMIT_DROP, 'IPv6 outer with tunnel MTU 1260 < 1280, dropped');
  // No headroom.
  const f = inner(4);
  const buf = new Uint8Array(f.length + 20);
  buf.set(f, 20);
  const info = new PacketInfo();
  t.equal(parseFrame(buf, 20, f.length, info), PARSE_OK);
  t.equal(new TunnelEncap(1).xmit(buf, info, target(4, TUN_GUE), false, false, new XmitResult()), XMIT_ERROR, 'not enough headroom');
  // VLAN-tagged outgoing frame.
  r = run(enc, inner(4), target(4, TUN_IPIP, 0, 1500, 0x0064));
  t.equal(r.code, XMIT_OK);
  t.equal(hex(r.out.subarray(12, 18)), '810000640800', '802.1Q tag and EtherType');
  produced.push(r.out);
  // Padding of a short inner frame is not carried into the tunnel.
  const padded = buildUdp({ saddr: '192.0.2.10', daddr: '10.0.0.100', payload: 'a', padTo: 60 });
  r = run(enc, padded, target(4, TUN_IPIP));
  t.equal(r.res.len, 14 + 20 + 29, 'outer frame = eth + outer IP + inner IP packet (no padding)');
  produced.push(r.out);
});

t.test('tshark validates the tunnel frames (outer, and inner for IPIP/GRE)', { skip: hasTshark ? false : 'tshark not installed' }, async (t) => {
  const rows = tshark(produced, true, true);
  t.equal(rows.length, produced.length);
  rows.forEach((r, i) => {
    if (!tsharkClean(r)) t.fail(`frame ${i + 1}: ${JSON.stringify(r)}`);
  });
  const ipip = rows.filter((r) => /ip:ip:tcp|ipv6:ip:tcp|ip:ipv6:tcp|ipv6:ipv6:tcp/.test(r.protocols));
  t.ok(ipip.length >= 12, `${ipip.length} IPIP/6in4/4in6/6in6 frames dissected down to TCP`);
  t.ok(ipip.every((r) => (r.status['tcp'] ?? []).includes('1')), 'their inner TCP checksums verified good');
  const gre = rows.filter((r) => r.protocols.includes(':gre:'));
  t.equal(gre.length, 9, '8 GRE frames + the reassembled IPv6-fragmented one');
  t.ok(gre.every((r) => (r.status['tcp'] ?? []).includes('1')), 'inner TCP under GRE verified good');
  t.equal(gre.filter((r) => (r.status['gre'] ?? []).includes('1')).length, 5, 'the 5 GRE checksums verified good');
});

