import t from 'tap';
import {
  buildSctp, buildTcp, buildUdp, fragmentFrame, type FrameOptions,
} from '../../src/packet/build.js';
import {
  completePartialChecksum, ipv4HeaderChecksumOk, l4ChecksumOkInfo,
} from '../../src/packet/checksum.js';
import { sctpChecksumOk, sctpChecksumRead } from '../../src/packet/crc32c.js';
import { rd16 } from '../../src/packet/bytes.js';
import {
  XMIT_DROP, XMIT_FRAG_NEEDED, XMIT_FRAGMENT, XMIT_OK, XMIT_TTL_EXCEEDED, XmitResult, l2Template,
} from '../../src/xmit/common.js';
import { natInbound, natOutbound, xmitNatIn, xmitNatOut } from '../../src/xmit/nat.js';
import { addr, frameOf, hasTshark, hex, mac, parse, placeParsed, tshark, tsharkClean } from './helpers.js';

/** Every frame the transmitters produced, for the tshark pass at the end. */
const produced: Uint8Array[] = [];
function keep(f: Uint8Array): Uint8Array {
  produced.push(f);
  return f;
}

const V4 = { c: '192.0.2.10', v: '10.0.0.100', r: '172.16.0.5' };
const V6 = { c: '2001:db8:c::10', v: '2001:db8:1::100', r: 'fd00:5::5' };
const CPORT = 40000;
const VPORT = 80;
const DPORT = 8080;

type Builder = (o: FrameOptions) => Uint8Array;
const PROTOS: [string, Builder][] = [
  ['tcp', (o) => buildTcp({ flags: 0x18, seq: 0x11223344, ack: 0x55667788, ...o })],
  ['udp', (o) => buildUdp(o)],
  ['sctp', (o) => buildSctp({ chunk: 'data', ...o })],
];

/** Deterministic PRNG (xorshift32) for the property tests. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

for (const [fam, A] of [['IPv4', V4], ['IPv6', V6]] as const) {
  for (const [name, build] of PROTOS) {
    t.test(`${fam} ${name}: inbound DNAT equals a packet built for the real server`, async (t) => {
      const base: FrameOptions = { saddr: A.c, sport: CPORT, ttl: 50, tos: 0x28, payload: 'GET / HTTP/1.0\r\n\r\n!' };
      const orig = build({ ...base, daddr: A.v, dport: VPORT });
      const p = placeParsed(orig);
      t.ok(natInbound(p.buf, p.info, addr(A.r), DPORT, false), 'rewritten');
      const got = keep(frameOf(p.buf, p.off, p.len));
      const want = build({ ...base, daddr: A.r, dport: DPORT });
      t.equal(hex(got), hex(want), 'bytes equal a freshly built RS-bound packet');
      const info = parse(got, 0, got.length);
      t.same(Array.from(info.daddr), Array.from(addr(A.r)), 'destination address is the RS');
      t.equal(info.dport, DPORT, 'destination port is the conn dport');
      t.equal(info.sport, CPORT, 'source port unchanged');
      t.same(Array.from(info.saddr), Array.from(addr(A.c)), 'source unchanged');
      t.ok(l4ChecksumOkInfo(got, info), 'L4 checksum valid');
      if (fam === 'IPv4') t.ok(ipv4HeaderChecksumOk(got, info.l3Off), 'IPv4 header checksum valid');
      t.same(Array.from(p.info.daddr), Array.from(addr(A.r)), 'PacketInfo refreshed: daddr');
      t.equal(p.info.dport, DPORT, 'PacketInfo refreshed: dport');
    });

    t.test(`${fam} ${name}: outbound SNAT of the reply equals a packet built from the VIP`, async (t) => {
      const base: FrameOptions = { daddr: A.c, dport: CPORT, ttl: 63, payload: 'HTTP/1.0 200 OK\r\n' };
      const reply = build({ ...base, saddr: A.r, sport: DPORT });
      const p = placeParsed(reply);
      t.ok(natOutbound(p.buf, p.info, addr(A.v), VPORT, false));
      const got = keep(frameOf(p.buf, p.off, p.len));
      t.equal(hex(got), hex(build({ ...base, saddr: A.v, sport: VPORT })), 'bytes equal a packet sent from VIP:vport');
      t.equal(p.info.sport, VPORT);
      t.same(Array.from(p.info.saddr), Array.from(addr(A.v)));
    });

    t.test(`${fam} ${name}: NAT in, then the rewritten reply out, gives back the original addresses`, async (t) => {
      const req = build({ saddr: A.c, daddr: A.v, sport: CPORT, dport: VPORT, payload: 'ping' });
      const p = placeParsed(req);
      natInbound(p.buf, p.info, addr(A.r), DPORT, false);
      // The real server answers the translated packet: swap the translated tuple.
      const seen = parse(p.buf, p.off, p.len);
      t.same(Array.from(seen.daddr), Array.from(addr(A.r)));
      const reply = build({ saddr: A.r, sport: seen.dport, daddr: A.c, dport: seen.sport, payload: 'pong' });
      const q = placeParsed(reply);
      natOutbound(q.buf, q.info, addr(A.v), VPORT, false);
      const back = parse(q.buf, q.off, q.len);
      const orig = parse(req, 0, req.length);
      t.same(Array.from(back.saddr), Array.from(orig.daddr), 'reply source = original destination (VIP)');
      t.same(Array.from(back.daddr), Array.from(orig.saddr), 'reply destination = client');
      t.equal(back.sport, orig.dport, 'reply source port = vport');
      t.equal(back.dport, orig.sport, 'reply destination port = client port');
      t.ok(l4ChecksumOkInfo(q.buf, back));
      // And translating back with the inverse mapping restores the request byte for byte.
      natInbound(p.buf, p.info, addr(A.v), VPORT, false);
      t.equal(hex(frameOf(p.buf, p.off, p.len)), hex(req), 'inverse DNAT restores the exact original bytes');
    });
  }

  t.test(`${fam} udp with checksum 0: the kernel computes a full checksum`, async (t) => {
    const base: FrameOptions = { saddr: A.c, sport: CPORT, payload: 'dns?' };
    const p = placeParsed(buildUdp({ ...base, daddr: A.v, dport: 53, l4Checksum: 'zero' }));
    t.ok(natInbound(p.buf, p.info, addr(A.r), 5300, false));
    const got = keep(frameOf(p.buf, p.off, p.len));
    const info = parse(got, 0, got.length);
    t.not(rd16(got, info.l4Off + 6), 0, 'checksum is no longer 0');
    t.ok(l4ChecksumOkInfo(got, info), 'and it is valid');
    t.equal(hex(got), hex(buildUdp({ ...base, daddr: A.r, dport: 5300 })), 'equals a checksummed packet built for the RS');
  });

  t.test(`${fam} udp: an incremental result of 0 is sent as 0xffff`, async (t) => {
    // Pick the 2 payload bytes so that the RS-bound packet's computed checksum is 0.
    const o: FrameOptions = { saddr: A.c, sport: CPORT, daddr: A.r, dport: DPORT, payload: new Uint8Array(2) };
    const probe = buildUdp(o);
    const pi = parse(probe, 0, probe.length);
    const c0 = rd16(probe, pi.l4Off + 6);
    const payload = Uint8Array.of(c0 >>> 8, c0 & 0xff);
    const want = buildUdp({ ...o, payload });
    t.equal(rd16(want, pi.l4Off + 6), 0xffff, 'setup: the RS-bound packet sums to 0 (stored as 0xffff)');
    const p = placeParsed(buildUdp({ ...o, daddr: A.v, dport: VPORT, payload }));
    t.ok(natInbound(p.buf, p.info, addr(A.r), DPORT, false));
    t.equal(hex(keep(frameOf(p.buf, p.off, p.len))), hex(want));
  });

  t.test(`${fam} CHECKSUM_PARTIAL: only the pseudo-header part changes, then completion gives a valid packet`, async (t) => {
    for (const [name, build] of PROTOS) {
      const base: FrameOptions = { saddr: A.c, sport: CPORT, payload: 'partial checksum payload' };
      const p = placeParsed(build({ ...base, daddr: A.v, dport: VPORT, l4Checksum: 'partial' }));
      t.ok(natInbound(p.buf, p.info, addr(A.r), DPORT, true), name);
      const got = frameOf(p.buf, p.off, p.len);
      if (name !== 'sctp') {
        t.equal(hex(got), hex(build({ ...base, daddr: A.r, dport: DPORT, l4Checksum: 'partial' })),
          `${name}: field holds the RS pseudo-header sum, as an offloading sender would leave it`);
        const info = parse(got, 0, got.length);
        t.ok(completePartialChecksum(got, info), `${name}: completion possible`);
        t.ok(l4ChecksumOkInfo(got, info), `${name}: completed checksum valid`);
        t.equal(hex(keep(got)), hex(build({ ...base, daddr: A.r, dport: DPORT })), `${name}: equals a fully checksummed RS packet`);
      } else {
        const info = parse(got, 0, got.length);
        t.ok(sctpChecksumOk(got, info.l4Off, info.l4Len), 'sctp: CRC computed (the kernel recomputes it for partial)');
        keep(got);
      }
    }
  });

  t.test(`${fam} fragments: the first gets the L4 update, later ones only the IP header`, async (t) => {
    for (const [name, build] of PROTOS.slice(0, 2)) {
      const base: FrameOptions = { saddr: A.c, sport: CPORT, payload: 'x'.repeat(150), ipId: 0x4242 };
      const frags = fragmentFrame(build({ ...base, daddr: A.v, dport: VPORT }), 64, 0x99);
      const want = fragmentFrame(build({ ...base, daddr: A.r, dport: DPORT }), 64, 0x99);
      t.equal(frags.length, 3, `${name}: 3 fragments`);
      frags.forEach((f, i) => {
        const p = placeParsed(f);
        t.equal(p.info.isLaterFrag, i > 0);
        t.ok(natInbound(p.buf, p.info, addr(A.r), DPORT, false), `${name} fragment ${i}`);
        t.equal(hex(keep(frameOf(p.buf, p.off, p.len))), hex(want[i]!), `${name} fragment ${i} equals the RS-bound fragment`);
      });
    }
    const zero = fragmentFrame(buildUdp({ saddr: A.c, daddr: A.v, sport: CPORT, dport: VPORT, payload: 'y'.repeat(100), l4Checksum: 'zero' }), 64);
    const p = placeParsed(zero[0]!);
    t.ok(natInbound(p.buf, p.info, addr(A.r), DPORT, false));
    t.equal(rd16(p.buf, p.info.l4Off + 6), 0, 'a checksum-less UDP first fragment keeps 0 (the datagram is not all here)');
    const s = fragmentFrame(buildSctp({ saddr: A.c, daddr: A.v, sport: CPORT, dport: VPORT, chunk: 'data', payload: 'z'.repeat(100) }), 64);
    const ps = placeParsed(s[0]!);
    t.notOk(natInbound(ps.buf, ps.info, addr(A.r), DPORT, false), 'an SCTP first fragment needing a new CRC cannot be rewritten');
  });

  t.test(`${fam} random packets: incremental update equals full recomputation`, async (t) => {
    const r = rng(fam === 'IPv4' ? 7 : 11);
    let n = 0;
    for (let i = 0; i < 300; i++) {
      const len = r() % 200;
      const payload = new Uint8Array(len);
      for (let k = 0; k < len; k++) payload[k] = r() & 0xff;
      const rand4 = () => `${1 + (r() % 223)}.${r() & 255}.${r() & 255}.${r() & 255}`;
      const rand6 = () => Array.from({ length: 8 }, () => (r() & 0xffff).toString(16)).join(':');
      const ra = fam === 'IPv4' ? rand4 : rand6;
      const c = ra(), v = ra(), d = ra();
      const sp = r() & 0xffff, vp = r() & 0xffff, dp = r() & 0xffff;
      const build = PROTOS[i % 3]![1];
      const p = placeParsed(build({ saddr: c, daddr: v, sport: sp, dport: vp, payload }));
      natInbound(p.buf, p.info, addr(d), dp, false);
      if (hex(frameOf(p.buf, p.off, p.len)) === hex(build({ saddr: c, daddr: d, sport: sp, dport: dp, payload }))) n++;
      else t.fail(`mismatch: ${c} ${v}:${vp} -> ${d}:${dp} len ${len}`);
    }
    t.equal(n, 300, 'all 300 random rewrites match');
  });
}

t.test('SCTP: no CRC work when the port does not change (kernel: only update csum if we really have to)', async (t) => {
  const f = buildSctp({ saddr: V4.c, daddr: V4.v, sport: CPORT, dport: VPORT, chunk: 'data', payload: 'q', l4Checksum: 'bad' });
  const p = placeParsed(f);
  const before = sctpChecksumRead(p.buf, p.info.l4Off);
  t.ok(natInbound(p.buf, p.info, addr(V4.r), VPORT, false));
  t.equal(sctpChecksumRead(p.buf, p.info.l4Off), before, 'CRC bytes untouched (the CRC does not cover addresses)');
  const q = placeParsed(buildSctp({ saddr: V4.c, daddr: V4.v, sport: CPORT, dport: VPORT, chunk: 'data', payload: 'q' }));
  natInbound(q.buf, q.info, addr(V4.r), VPORT, false);
  t.ok(sctpChecksumOk(q.buf, q.info.l4Off, q.info.l4Len), 'a valid CRC stays valid');
});

t.test('truncated transport header is refused', async (t) => {
  const f = buildTcp({ saddr: V4.c, daddr: V4.v });
  const p = placeParsed(f);
  p.info.l4Len = 10; // pretend only 10 bytes of TCP arrived
  t.notOk(natInbound(p.buf, p.info, addr(V4.r), DPORT, false));
});

const OUR = mac('02:00:00:00:00:aa');
const RSMAC = mac('02:00:00:00:00:bb');
const L2 = l2Template(RSMAC, OUR);

t.test('xmitNatIn: TTL, MAC, DNAT; TTL 1; DF too big; non-DF too big; IPv6 too big', async (t) => {
  const res = new XmitResult();
  const base: FrameOptions = { saddr: V4.c, sport: CPORT, payload: 'a'.repeat(100), df: true };
  let p = placeParsed(buildTcp({ ...base, daddr: V4.v, dport: VPORT, ttl: 64 }));
  t.equal(xmitNatIn(p.buf, p.info, addr(V4.r), DPORT, false, L2, 1500, res), XMIT_OK);
  t.equal(res.off, p.off);
  t.equal(res.len, p.len);
  t.equal(hex(keep(frameOf(p.buf, res.off, res.len))),
    hex(buildTcp({ ...base, daddr: V4.r, dport: DPORT, ttl: 63, srcMac: OUR, dstMac: RSMAC })),
    'TTL 63, MACs, DNAT — equals the built expectation');

  const ttl1 = buildTcp({ ...base, daddr: V4.v, dport: VPORT, ttl: 1 });
  p = placeParsed(ttl1);
  t.equal(xmitNatIn(p.buf, p.info, addr(V4.r), DPORT, false, L2, 1500, res), XMIT_TTL_EXCEEDED);
  t.equal(hex(frameOf(p.buf, p.off, p.len)), hex(ttl1), 'frame untouched, ready to be quoted');

  p = placeParsed(buildTcp({ ...base, daddr: V4.v, dport: VPORT }));
  t.equal(xmitNatIn(p.buf, p.info, addr(V4.r), DPORT, false, L2, 120, res), XMIT_FRAG_NEEDED, 'DF and 140 > 120');
  t.equal(res.mtu, 120, 'MTU for the ICMP');
  t.equal(p.buf[p.info.l3Off + 8], 63, 'kernel order: TTL was decremented before the MTU check');

  p = placeParsed(buildTcp({ ...base, df: false, daddr: V4.v, dport: VPORT }));
  t.equal(xmitNatIn(p.buf, p.info, addr(V4.r), DPORT, false, L2, 120, res), XMIT_FRAGMENT, 'no DF: rewritten, caller fragments');
  t.ok(l4ChecksumOkInfo(p.buf, parse(p.buf, p.off, p.len)));

  p = placeParsed(buildTcp({ ...base, saddr: V6.c, daddr: V6.v, dport: VPORT }));
  t.equal(xmitNatIn(p.buf, p.info, addr(V6.r), DPORT, false, L2, 1280, res), XMIT_OK);
  keep(frameOf(p.buf, p.off, p.len));
  p = placeParsed(buildTcp({ ...base, saddr: V6.c, daddr: V6.v, dport: VPORT, payload: 'b'.repeat(1300) }));
  t.equal(xmitNatIn(p.buf, p.info, addr(V6.r), DPORT, false, L2, 1280, res), XMIT_FRAG_NEEDED, 'IPv6 too big: PTB');
  const later = placeParsed(fragmentFrame(buildUdp({ saddr: V6.c, daddr: V6.v, payload: 'd'.repeat(3000) }), 1288)[1]!);
  t.ok(later.info.isLaterFrag && later.info.ipLen > 1280, 'setup: oversized later fragment');
  t.equal(xmitNatIn(later.buf, later.info, addr(V6.r), DPORT, false, L2, 1280, res), XMIT_DROP, 'later fragment: dropped without PTB');
});

t.test('xmitNatOut: forwarding checks first (TTL, MTU on the unchanged packet), then SNAT', async (t) => {
  const res = new XmitResult();
  const base: FrameOptions = { daddr: V4.c, dport: CPORT, payload: 'r'.repeat(60), df: true };
  let p = placeParsed(buildTcp({ ...base, saddr: V4.r, sport: DPORT, ttl: 64 }));
  t.equal(xmitNatOut(p.buf, p.info, addr(V4.v), VPORT, false, L2, 1500, res), XMIT_OK);
  t.equal(hex(keep(frameOf(p.buf, p.off, p.len))),
    hex(buildTcp({ ...base, saddr: V4.v, sport: VPORT, ttl: 63, srcMac: OUR, dstMac: RSMAC })));
  const ttl1 = buildTcp({ ...base, saddr: V4.r, sport: DPORT, ttl: 1 });
  p = placeParsed(ttl1);
  t.equal(xmitNatOut(p.buf, p.info, addr(V4.v), VPORT, false, L2, 1500, res), XMIT_TTL_EXCEEDED);
  t.equal(hex(frameOf(p.buf, p.off, p.len)), hex(ttl1));
  const big = buildTcp({ ...base, saddr: V4.r, sport: DPORT, ttl: 9 });
  p = placeParsed(big);
  t.equal(xmitNatOut(p.buf, p.info, addr(V4.v), VPORT, false, L2, 80, res), XMIT_FRAG_NEEDED);
  t.equal(hex(frameOf(p.buf, p.off, p.len)), hex(big), 'quoted unchanged (ip_forward checks before decrementing)');
});

t.test('tshark validates every produced frame', { skip: hasTshark ? false : 'tshark not installed' }, async (t) => {
  const rows = tshark(produced);
  t.equal(rows.length, produced.length, 'one dissection per frame');
  rows.forEach((r, i) => {
    if (!tsharkClean(r)) t.fail(`frame ${i + 1}: ${JSON.stringify(r)}`);
  });
  // Every frame that carries a transport header must have had its checksum verified as good.
  rows.forEach((r, i) => {
    const info = parse(produced[i]!, 0, produced[i]!.length);
    if (info.l4Off < 0) return;
    const proto = info.proto === 6 ? 'tcp' : info.proto === 17 ? 'udp' : 'sctp';
    // A first fragment's checksum covers data tshark does not see (defragmentation is off).
    if (info.moreFrags) return;
    if (!(r.status[proto] ?? []).includes('1')) t.fail(`frame ${i + 1}: ${proto} checksum not verified good: ${JSON.stringify(r)}`);
    if (info.af === 4 && !(r.status['ip'] ?? []).includes('1')) t.fail(`frame ${i + 1}: IPv4 header checksum not verified good`);
  });
  t.ok(rows.every(tsharkClean), 'no bad checksum, no malformed packet');
});
