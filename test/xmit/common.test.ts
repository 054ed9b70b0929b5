import t from 'tap';
import { buildTcp, buildUdp, fragmentFrame, buildIcmpEcho } from '../../src/packet/build.js';
import { ipv4HeaderChecksumOk, l4ChecksumOkInfo } from '../../src/packet/checksum.js';
import {
  MTU_DROP, MTU_ICMP, MTU_OK, XMIT_DROP, XMIT_FRAG_NEEDED, XMIT_FRAGMENT, XMIT_OK, XMIT_TTL_EXCEEDED,
  XmitResult, decTtl, ipDsfield, l2Template, mtuCheck, mtuCheckForward, setEthAddrs, setEthMacs, writeEthHeader,
} from '../../src/xmit/common.js';
import { xmitDr } from '../../src/xmit/dr.js';
import { fragmentIpv4 } from '../../src/xmit/fragment.js';
import { frameOf, hasTshark, hex, mac, parse, placeParsed, tshark, tsharkClean } from './helpers.js';

const produced: Uint8Array[] = [];

t.test('decTtl: IPv4 TTL and header checksum, IPv6 hop limit, refusal at 1 and 0', async (t) => {
  for (const ttl of [255, 64, 2]) {
    const p = placeParsed(buildTcp({ ttl, tos: 0x10 }));
    t.ok(decTtl(p.buf, p.info), `ttl ${ttl}`);
    t.equal(hex(frameOf(p.buf, p.off, p.len)), hex(buildTcp({ ttl: ttl - 1, tos: 0x10 })), `ttl ${ttl} → ${ttl - 1}, checksum as if built so`);
    t.equal(p.info.ttl, ttl - 1, 'PacketInfo refreshed');
  }
  const p6 = placeParsed(buildUdp({ family: 6, ttl: 64 }));
  t.ok(decTtl(p6.buf, p6.info));
  t.equal(hex(frameOf(p6.buf, p6.off, p6.len)), hex(buildUdp({ family: 6, ttl: 63 })));
  for (const fam of [4, 6] as const) {
    for (const ttl of [1, 0]) {
      const f = buildUdp({ family: fam, ttl });
      const p = placeParsed(f);
      t.notOk(decTtl(p.buf, p.info), `IPv${fam} ttl ${ttl}: time exceeded`);
      t.equal(hex(frameOf(p.buf, p.off, p.len)), hex(f), 'packet left as it was');
    }
  }
});

t.test('mtuCheck: the kernel ensure_mtu_is_adequate matrix', async (t) => {
  const df = parse(buildUdp({ df: true, payload: 'x'.repeat(72) }), 0, 114); // ipLen 100
  t.equal(df.ipLen, 100);
  t.equal(mtuCheck(df, 100, false, false), MTU_OK, 'exactly the MTU fits');
  t.equal(mtuCheck(df, 99, false, false), MTU_ICMP, 'DF and one byte over: frag-needed');
  t.equal(mtuCheck(df, 99, true, false), MTU_OK, 'relayed ICMP error: never frag-needed');
  t.equal(mtuCheck(df, 99, false, true), MTU_OK, 'tunnel with pmtu_disc=0: no IPv4 check');
  const nodf = parse(buildUdp({ df: false, payload: 'x'.repeat(72) }), 0, 114);
  t.equal(mtuCheck(nodf, 99, false, false), MTU_OK, 'no DF: fragmented later, no ICMP');
  const v6 = buildUdp({ family: 6, payload: 'y'.repeat(1300) });
  const i6 = parse(v6, 0, v6.length);
  t.equal(mtuCheck(i6, 1280, false, false), MTU_ICMP, 'IPv6 too big: packet too big');
  t.equal(mtuCheck(i6, 1280, true, false), MTU_DROP, 'IPv6 relayed ICMP too big: dropped, no PTB');
  t.equal(mtuCheck(i6, 1280, false, true), MTU_ICMP, 'the pmtu_disc exemption is IPv4 only');
  const frags = fragmentFrame(buildUdp({ family: 6, payload: 'z'.repeat(4000) }), 1392);
  const first = parse(frags[0]!, 0, frags[0]!.length);
  const later = parse(frags[1]!, 0, frags[1]!.length);
  t.equal(mtuCheck(first, 1280, false, false), MTU_ICMP, 'IPv6 first fragment: PTB');
  t.equal(mtuCheck(later, 1280, false, false), MTU_DROP, 'IPv6 later fragment: dropped without PTB');
  t.equal(mtuCheckForward(df, 99), MTU_ICMP, 'forwarding: DF too big');
  t.equal(mtuCheckForward(nodf, 99), MTU_OK, 'forwarding: no DF');
  t.equal(mtuCheckForward(i6, 1280), MTU_ICMP, 'forwarding: IPv6 too big');
});

t.test('Ethernet rewrite and header building', async (t) => {
  const f = buildTcp({ vlan: 0x2064 });
  const p = placeParsed(f);
  const dst = mac('02:11:22:33:44:55'), src = mac('02:66:77:88:99:aa');
  setEthMacs(p.buf, p.off, dst, src);
  t.equal(hex(frameOf(p.buf, p.off, p.len)), hex(buildTcp({ vlan: 0x2064, dstMac: dst, srcMac: src })), 'MACs from two arrays, VLAN tag kept');
  const q = placeParsed(buildTcp());
  setEthAddrs(q.buf, q.off, l2Template(src, dst));
  t.equal(hex(frameOf(q.buf, q.off, q.len)), hex(buildTcp({ dstMac: src, srcMac: dst })), 'MACs from a 12-byte template');
  const b = new Uint8Array(40).fill(0xee);
  t.equal(writeEthHeader(b, 20, l2Template(dst, src), -1, 0x86dd), 6, 'untagged header starts 14 bytes before L3');
  t.equal(hex(b.subarray(6, 20)), hex(dst) + hex(src) + '86dd', 'dst, src, EtherType');
  t.equal(writeEthHeader(b, 20, l2Template(dst, src), 0x0123, 0x0800), 2, 'tagged header starts 18 bytes before L3');
  t.equal(hex(b.subarray(2, 20)), hex(dst) + hex(src) + '81000123' + '0800');
});

t.test('ipDsfield reads the TOS / traffic class', async (t) => {
  t.equal(ipDsfield(buildUdp({ tos: 0xb9 }), parse(buildUdp({ tos: 0xb9 }), 0, 42)), 0xb9);
  const f6 = buildUdp({ family: 6, tos: 0xb9, flowLabel: 0xabcde });
  t.equal(ipDsfield(f6, parse(f6, 0, f6.length)), 0xb9);
});

const OUR = mac('02:00:00:00:00:aa');
const RSMAC = mac('02:00:00:00:00:bb');
const L2 = l2Template(RSMAC, OUR);

t.test('xmitDr: only MACs and TTL change', async (t) => {
  const res = new XmitResult();
  for (const fam of [4, 6] as const) {
    const o = { family: fam, ttl: 20, df: true, payload: 'direct routing', sport: 5555, dport: 443 };
    const p = placeParsed(buildTcp(o));
    t.equal(xmitDr(p.buf, p.info, L2, 1500, false, res), XMIT_OK, `IPv${fam}`);
    t.equal(res.off, p.off);
    t.equal(res.len, p.len);
    const got = frameOf(p.buf, res.off, res.len);
    produced.push(got);
    t.equal(hex(got), hex(buildTcp({ ...o, ttl: 19, srcMac: OUR, dstMac: RSMAC })), 'destination address still the VIP, TTL-1, MACs');
    const info = parse(got, 0, got.length);
    t.ok(l4ChecksumOkInfo(got, info));
    if (fam === 4) t.ok(ipv4HeaderChecksumOk(got, info.l3Off));
  }
  const one = buildTcp({ ttl: 1 });
  let p = placeParsed(one);
  t.equal(xmitDr(p.buf, p.info, L2, 1500, false, res), XMIT_TTL_EXCEEDED);
  t.equal(hex(frameOf(p.buf, p.off, p.len)), hex(one), 'untouched');
  p = placeParsed(buildTcp({ df: true, payload: 'x'.repeat(1500) }));
  t.equal(xmitDr(p.buf, p.info, L2, 1500, false, res), XMIT_FRAG_NEEDED, 'DF and 1540 > 1500');
  t.equal(res.mtu, 1500);
  p = placeParsed(buildTcp({ df: true, payload: 'x'.repeat(1500) }));
  t.equal(xmitDr(p.buf, p.info, L2, 1500, true, res), XMIT_FRAGMENT, 'relayed ICMP error with DF: sent fragmented');
  p = placeParsed(buildTcp({ df: false, payload: 'x'.repeat(1500) }));
  t.equal(xmitDr(p.buf, p.info, L2, 1500, false, res), XMIT_FRAGMENT, 'no DF: fragment');
  p = placeParsed(buildTcp({ family: 6, payload: 'x'.repeat(1500) }));
  t.equal(xmitDr(p.buf, p.info, L2, 1500, false, res), XMIT_FRAG_NEEDED, 'IPv6: packet too big');
  p = placeParsed(buildIcmpEcho({ family: 6, payload: 'x'.repeat(1500) }));
  t.equal(xmitDr(p.buf, p.info, L2, 1500, true, res), XMIT_DROP, 'IPv6 relayed ICMP too big: drop');
});

t.test('fragmentIpv4 splits like ip_fragment', async (t) => {
  const payload = new Uint8Array(1000);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
  // Options: a copied one (0x94 router alert, 4 bytes) and a non-copied one (0x07 record route, 7 bytes + EOL).
  const ipOptions = Uint8Array.of(0x94, 4, 0, 0, 0x07, 7, 4, 0, 0, 0, 0, 0);
  const orig = buildUdp({ payload, ipId: 0x3344, ttl: 33, vlan: 7, ipOptions });
  const p = placeParsed(orig);
  const out = new Uint8Array(4000);
  const lens = new Uint32Array(8);
  const n = fragmentIpv4(p.buf, p.info, 576, out, 10, lens);
  const hl = 32;
  const per = (576 - hl) & ~7;
  t.equal(n, Math.ceil(1008 / per), 'fragment count');
  let o = 10;
  const data = new Uint8Array(1008);
  for (let i = 0; i < n; i++) {
    const f = out.slice(o, o + lens[i]!);
    produced.push(f);
    const info = parse(f, 0, f.length);
    t.ok(info.ipLen <= 576, `fragment ${i} fits`);
    t.ok(ipv4HeaderChecksumOk(f, info.l3Off), `fragment ${i} header checksum`);
    t.equal(info.vlanTci, 7, 'link header repeated');
    t.equal(f[info.l3Off + 4]! << 8 | f[info.l3Off + 5]!, 0x3344, 'same ID');
    t.equal(info.fragOff, i * per, 'offset');
    t.equal(info.moreFrags, i < n - 1, 'MF on all but the last');
    t.notOk(info.df, 'DF cleared');
    t.equal(hex(f.subarray(info.l3Off + 20, info.l3Off + 24)), '94040000', 'copied option kept');
    t.equal(hex(f.subarray(info.l3Off + 24, info.l3Off + 31)), i === 0 ? '07070400000000' : '01010101010101', 'non-copied option: NOOPs after the first');
    data.set(f.subarray(info.l3Off + hl, info.l3Off + info.ipLen), info.fragOff);
    o += lens[i]!;
  }
  const whole = parse(orig, 0, orig.length);
  t.equal(hex(data), hex(orig.subarray(whole.l3Off + hl, whole.l3Off + whole.ipLen)), 'fragments carry the datagram');
  t.equal(fragmentIpv4(p.buf, p.info, 2000, out, 0, lens), 0, 'fits already: nothing to do');
  t.equal(fragmentIpv4(p.buf, p.info, 576, out, 0, new Uint32Array(1)), 0, 'not enough slots');
  t.equal(fragmentIpv4(p.buf, p.info, 576, new Uint8Array(500), 0, lens), 0, 'output too small');
  // Fragmenting a fragment keeps its offset base and MF.
  const frag = fragmentFrame(buildUdp({ payload: 'q'.repeat(600) }), 304)[0]!;
  const fp = placeParsed(frag);
  t.equal(fragmentIpv4(fp.buf, fp.info, 180, out, 0, lens), 2);
  const last = parse(out, lens[0]!, lens[1]!);
  t.equal(last.fragOff, 160, 'second piece offset');
  t.ok(last.moreFrags, 'the original had MF, so its last piece keeps MF');
});

t.test('tshark validates DR output and fragments', { skip: hasTshark ? false : 'tshark not installed' }, async (t) => {
  const rows = tshark(produced);
  t.equal(rows.length, produced.length);
  t.ok(rows.every(tsharkClean), 'no bad checksum, no malformed packet');
  rows.forEach((r, i) => {
    if ((r.status['ip'] ?? []).length > 0 && !(r.status['ip'] ?? []).every((s) => s === '1')) t.fail(`frame ${i + 1} IPv4 header`);
  });
});
