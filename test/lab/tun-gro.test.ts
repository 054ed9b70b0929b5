/**
 * TunWriter (src/lab/tun-gro.ts), the merging writer behind `ulvs tun-decap`: which TCP segments
 * become one super-frame (the kernel's GRO rules), what the super-frame looks like (IP length and
 * header checksum, a partial TCP checksum that finishes to the right value, the virtio_net_hdr
 * the TUN device needs), and that nothing is reordered or merged that must not be. The device is
 * a recorder of the writes; the real TUN device is exercised by test/lab/tun-decap.test.ts and
 * the wire tests.
 */
import t from 'tap';
import { TunWriter } from '../../src/lab/tun-gro.js';
import { Recorder, hex, payloadOf, rd16, rd32, type Write } from './tunnel-frames.js';
import { buildTcp, buildUdp, type TcpOptions } from '../../src/packet/build.js';
import { ipv4HeaderChecksumOk, l4ChecksumOk } from '../../src/packet/checksum.js';

const ACK = 0x10, PSH = 0x08, SYN = 0x02, FIN = 0x01, CWR = 0x80;


/** A decapsulated inner packet as tun-decap hands it over: IPv4 + TCP in a buffer with room in front. */
interface Seg { buf: Uint8Array; off: number; len: number }
function seg(o: TcpOptions): Seg {
  const f = buildTcp({ saddr: '10.0.0.1', daddr: '10.0.0.100', sport: 40000, dport: 5201, ack: 777, df: true, flags: ACK, ...o });
  // The Ethernet header is dropped, 34 bytes of room (where an outer header was) are put in front.
  const ip = f.subarray(14);
  const buf = new Uint8Array(34 + ip.length);
  buf.set(ip, 34);
  return { buf, off: 34, len: ip.length };
}

/** Consecutive segments of `mss` payload bytes starting at sequence number `seq`, partial checksums. */
function stream(n: number, mss: number, seq: number, extra: (k: number) => Partial<TcpOptions> = () => ({})): { segs: Seg[]; payload: Uint8Array } {
  const payload = payloadOf(n * mss, seq);
  const segs: Seg[] = [];
  for (let k = 0; k < n; k++) {
    segs.push(seg({ seq: seq + k * mss, ipId: 100 + k, payload: payload.subarray(k * mss, (k + 1) * mss), l4Checksum: 'partial', ...extra(k) }));
  }
  return { segs, payload };
}

const push = (w: TunWriter, s: Seg, partial = true, verified = false): void =>
  w.push(s.buf, s.off, s.len, partial ? 20 : -1, 16, verified);

/** The super-frame's checksum finished as the kernel would (skb_checksum_help at csum_start/offset). */
function finish(wr: Write): Uint8Array {
  const p = wr.pkt.slice();
  const start = wr.hdr[6]! | (wr.hdr[7]! << 8);
  const at = start + (wr.hdr[8]! | (wr.hdr[9]! << 8));
  let s = 0;
  for (let i = start; i < p.length; i += 2) s += (p[i]! << 8) | (i + 1 < p.length ? p[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  const c = ~s & 0xffff;
  p[at] = c >>> 8; p[at + 1] = c & 0xff;
  return p;
}

/** Parse helper for the finished packet: frame it behind a fake Ethernet header for l4ChecksumOk. */
function tcpOk(pkt: Uint8Array): boolean {
  const f = new Uint8Array(14 + pkt.length);
  f[12] = 0x08; f.set(pkt, 14);
  return ipv4HeaderChecksumOk(f, 14, 20) && l4ChecksumOk(f, 4, 14, 6, 34, pkt.length - 20);
}

t.test('consecutive partial segments of one flow become one GSO TCPV4 super-frame', async (t) => {
  const rec = new Recorder();
  const w = new TunWriter(rec);
  const { segs, payload } = stream(10, 1000, 5000);
  for (const s of segs) push(w, s);
  t.equal(rec.writes.length, 0, 'nothing written before the flush');
  w.flush();
  t.equal(rec.writes.length, 1, 'one write');
  const wr = rec.writes[0]!;
  t.same(wr.hdr, [1, 1, 40, 0, 1000 & 0xff, 1000 >>> 8, 20, 0, 16, 0],
    'virtio_net_hdr: NEEDS_CSUM, GSO TCPV4, hdr_len 40, gso_size 1000, csum_start 20, csum_offset 16');
  t.equal(rd16(wr.pkt, 2), 20 + 20 + 10000, 'IP total length covers all ten payloads');
  t.equal(rd16(wr.pkt, 4), 100, 'the first segment\'s IP ID');
  t.equal(rd32(wr.pkt, 24), 5000, 'the first segment\'s sequence number');
  t.equal(hex(wr.pkt.subarray(40)), hex(payload), 'the payloads, in order');
  t.ok(tcpOk(finish(wr)), 'the partial checksum finishes to the right TCP checksum, the IP header checksum is right');
  t.same([w.stats.packets, w.stats.writes, w.stats.superFrames, w.stats.mergedSegments], [10, 1, 1, 10]);
});

t.test('at most one IPv4 packet of data: a longer run is cut at 65535 bytes', async (t) => {
  const rec = new Recorder();
  const w = new TunWriter(rec);
  const { segs, payload } = stream(50, 1448, 1);
  for (const s of segs) push(w, s);
  w.flush();
  t.equal(rec.writes.length, 2, 'two super-frames');
  t.ok(rec.writes.every((x) => rd16(x.pkt, 2) <= 65535), 'each within the IPv4 length limit');
  t.equal(rd16(rec.writes[0]!.pkt, 2), 40 + 45 * 1448, '45 segments fit the first');
  t.equal(hex(Buffer.concat(rec.writes.map((x) => x.pkt.subarray(40)))), hex(payload), 'all payload, in order');
  t.ok(rec.writes.every((x) => tcpOk(finish(x))), 'both checksums finish right');
});

t.test('PSH, FIN and a short segment end a super-frame after joining it', async (t) => {
  for (const [what, extra, len] of [
    ['PSH', { flags: ACK | PSH }, 1000], ['FIN', { flags: ACK | FIN }, 1000], ['a short segment', {}, 300],
  ] as const) {
    const rec = new Recorder();
    const w = new TunWriter(rec);
    const { segs } = stream(3, 1000, 1);
    for (const s of segs) push(w, s);
    const last = seg({ seq: 3001, ipId: 103, payload: payloadOf(len, 9), l4Checksum: 'partial', ...extra });
    push(w, last);
    t.equal(rec.writes.length, 1, `${what}: written at once`);
    const wr = rec.writes[0]!;
    t.equal(rd16(wr.pkt, 2), 40 + 3000 + len, `${what}: the segment joined`);
    t.equal(wr.pkt[33]! & (PSH | FIN), (extra as TcpOptions).flags !== undefined ? (extra as TcpOptions).flags! & (PSH | FIN) : 0,
      `${what}: the merged header carries its PSH/FIN`);
    t.ok(tcpOk(finish(wr)), `${what}: checksum right`);
    push(w, seg({ seq: 3001 + len, ipId: 104, payload: payloadOf(1000, 10), l4Checksum: 'partial' }));
    w.flush();
    t.equal(rec.writes.length, 2, `${what}: the next segment starts a new one`);
  }
});

t.test('what GRO does not merge is written alone, in order', async (t) => {
  const cases: Array<[string, (s: Seg[]) => void, (w: TunWriter, s: Seg[]) => void]> = [
    ['a sequence gap', () => undefined, (w, s) => { push(w, s[0]!); push(w, s[2]!); }],
    ['another flow in between', () => undefined, (w, s) => {
      push(w, s[0]!);
      push(w, seg({ sport: 40001, seq: 1, payload: payloadOf(1000, 1), l4Checksum: 'partial' }));
      push(w, s[1]!);
    }],
    ['a different ACK number', () => undefined, (w, s) => { push(w, s[0]!); push(w, seg({ seq: 1001, ack: 778, payload: payloadOf(1000, 2), l4Checksum: 'partial' })); }],
    ['a different window', () => undefined, (w, s) => { push(w, s[0]!); push(w, seg({ seq: 1001, window: 1, payload: payloadOf(1000, 3), l4Checksum: 'partial' })); }],
    ['different TCP options', () => undefined, (w) => {
      push(w, seg({ seq: 1, payload: payloadOf(1000, 4), tcpOptions: Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2), l4Checksum: 'partial' }));
      push(w, seg({ seq: 1001, payload: payloadOf(1000, 5), tcpOptions: Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 2), l4Checksum: 'partial' }));
    }],
    ['a longer segment than the first', () => undefined, (w) => {
      push(w, seg({ seq: 1, payload: payloadOf(500, 6), l4Checksum: 'partial' }));
      push(w, seg({ seq: 501, payload: payloadOf(1000, 7), l4Checksum: 'partial' }));
    }],
    ['IP IDs not consecutive without DF', () => undefined, (w) => {
      push(w, seg({ seq: 1, df: false, ipId: 5, payload: payloadOf(1000, 8), l4Checksum: 'partial' }));
      push(w, seg({ seq: 1001, df: false, ipId: 9, payload: payloadOf(1000, 9), l4Checksum: 'partial' }));
    }],
    ['CWR', () => undefined, (w, s) => { push(w, s[0]!); push(w, seg({ seq: 1001, flags: ACK | CWR, payload: payloadOf(1000, 10), l4Checksum: 'partial' })); }],
    ['a SYN', () => undefined, (w) => { push(w, seg({ seq: 1, flags: SYN, l4Checksum: 'partial' })); push(w, seg({ seq: 2, payload: payloadOf(1000, 11), l4Checksum: 'partial' })); }],
    ['a pure ACK', () => undefined, (w, s) => { push(w, s[0]!); push(w, seg({ seq: 1001, l4Checksum: 'partial' })); }],
    ['a complete, unverified checksum', () => undefined, (w) => {
      push(w, seg({ seq: 1, payload: payloadOf(1000, 12) }), false);
      push(w, seg({ seq: 1001, payload: payloadOf(1000, 13) }), false);
    }],
  ];
  for (const [what, , run] of cases) {
    const rec = new Recorder();
    const w = new TunWriter(rec);
    const { segs } = stream(3, 1000, 1);
    run(w, segs);
    w.flush();
    t.ok(rec.writes.length >= 2, `${what}: ${rec.writes.length} writes`);
    t.ok(rec.writes.every((x) => x.hdr[1] === 0), `${what}: no super-frame`);
    t.same(rec.writes.map((x) => rd16(x.pkt, 2)).length, rec.writes.length);
  }
  const rec = new Recorder();
  const w = new TunWriter(rec);
  const { segs } = stream(3, 1000, 1);
  push(w, segs[0]!); push(w, segs[1]!);
  const other = seg({ sport: 40001, seq: 1, payload: payloadOf(1000, 1), l4Checksum: 'partial' });
  push(w, other);
  w.flush();
  t.same(rec.writes.map((x) => [rd16(x.pkt, 20), rd16(x.pkt, 2)]), [[40000, 2040], [40001, 1040]],
    'the pending super-frame is written before the packet of another flow');
});

t.test('checksums verified by the kernel merge too; the super-frame is partial', async (t) => {
  const rec = new Recorder();
  const w = new TunWriter(rec);
  for (let k = 0; k < 4; k++) push(w, seg({ seq: 1 + k * 1000, ipId: 100 + k, payload: payloadOf(1000, k) }), false, true);
  w.flush();
  t.equal(rec.writes.length, 1, 'one super-frame');
  t.equal(rec.writes[0]!.hdr[0], 1, 'NEEDS_CSUM');
  t.ok(tcpOk(finish(rec.writes[0]!)), 'finishes right');
});

t.test('packets written alone: a partial checksum is passed on, a complete one is not touched', async (t) => {
  const rec = new Recorder();
  const w = new TunWriter(rec);
  const u = buildUdp({ saddr: '10.0.0.1', daddr: '10.0.0.100', sport: 1, dport: 53, payload: 'hello', l4Checksum: 'partial' }).subarray(14);
  const buf = new Uint8Array(34 + u.length);
  buf.set(u, 34);
  w.push(buf, 34, u.length, 20, 6, false);
  const s = seg({ seq: 1, payload: payloadOf(100, 1) });
  push(w, s, false);
  t.same(rec.writes[0]!.hdr, [1, 0, 28, 0, 0, 0, 20, 0, 6, 0], 'UDP: NEEDS_CSUM at the UDP checksum');
  t.same(rec.writes[1]!.hdr, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 'complete TCP: an empty header');
  t.equal(hex(rec.writes[1]!.pkt), hex(s.buf.subarray(34)), 'the packet as it was');
  const one = new TunWriter(new Recorder(), false);
  t.throws(() => new TunWriter({ vnetHdr: false, write: () => true }), /IFF_VNET_HDR/, 'merging needs the vnet header');
  void one;
});

/** A UDP datagram client -> VIP as tun-decap hands it over (partial checksum unless told). */
function dgram(payload: Uint8Array, ipId: number, o: { sport?: number; partial?: boolean } = {}): Seg {
  const f = buildUdp({ saddr: '10.0.0.1', daddr: '10.0.0.100', sport: o.sport ?? 40000, dport: 5201, df: true, ipId, payload,
    l4Checksum: o.partial === false ? 'valid' : 'partial' });
  const ip = f.subarray(14);
  const buf = new Uint8Array(34 + ip.length);
  buf.set(ip, 34);
  return { buf, off: 34, len: ip.length };
}
const pushU = (w: TunWriter, s: Seg, partial = true): void => w.push(s.buf, s.off, s.len, partial ? 20 : -1, 6, false);

/**
 * What the kernel makes of a UDP_L4 super-frame (__udp_gso_segment): datagrams of gso_size bytes,
 * each with its own UDP length and the partial sum moved to it, then finished (skb_checksum_help).
 */
function kernelUdpSegments(wr: Write): Uint8Array[] {
  const mss = wr.hdr[4]! | (wr.hdr[5]! << 8);
  const p = wr.pkt;
  const oldLen = rd16(p, 24);
  const body = p.subarray(28);
  const out: Uint8Array[] = [];
  for (let k = 0; k * mss < body.length; k++) {
    const chunk = body.subarray(k * mss, Math.min(body.length, (k + 1) * mss));
    const d = new Uint8Array(28 + chunk.length);
    d.set(p.subarray(0, 28)); d.set(chunk, 28);
    d[2] = (28 + chunk.length) >>> 8; d[3] = (28 + chunk.length) & 0xff;
    d[24] = (8 + chunk.length) >>> 8; d[25] = (8 + chunk.length) & 0xff;
    let c = rd16(p, 26) + (~oldLen & 0xffff) + 8 + chunk.length;
    while (c > 0xffff) c = (c & 0xffff) + (c >>> 16);
    d[26] = c >>> 8; d[27] = c & 0xff;
    out.push(finish({ hdr: [1, 0, 0, 0, 0, 0, 20, 0, 6, 0], pkt: d }));
  }
  return out;
}

function udpOk(pkt: Uint8Array): boolean {
  const f = new Uint8Array(14 + pkt.length);
  f[12] = 0x08; f.set(pkt, 14);
  return l4ChecksumOk(f, 4, 14, 17, 34, pkt.length - 20);
}

t.test('UDP datagrams of one flow and size become a GSO UDP_L4 super-frame of at most 64', async (t) => {
  const rec = new Recorder();
  const w = new TunWriter(rec);
  const pays = Array.from({ length: 70 }, (_, k) => payloadOf(64, k + 1));
  pays.forEach((p, k) => pushU(w, dgram(p, 10 + k)));
  w.flush();
  t.equal(rec.writes.length, 2, 'two writes: 64 datagrams, then 6');
  const first = rec.writes[0]!;
  t.same(first.hdr, [1, 5, 28, 0, 64, 0, 20, 0, 6, 0], 'virtio_net_hdr: NEEDS_CSUM, GSO UDP_L4, hdr_len 28, gso_size 64, csum at udphdr.check');
  t.same([rd16(first.pkt, 2), rd16(first.pkt, 24)], [20 + 8 + 64 * 64, 8 + 64 * 64], 'IP and UDP lengths cover the merged payloads');
  const segs = rec.writes.flatMap(kernelUdpSegments);
  t.equal(segs.length, 70, 'cut by the kernel into the 70 datagrams');
  t.ok(segs.every(udpOk), 'each with a right UDP checksum once finished');
  t.same(segs.map((d) => hex(d.subarray(28))), pays.map(hex), 'the payloads, in order');
});

t.test('UDP: a shorter datagram ends the super-frame, a longer one or another flow starts a new one', async (t) => {
  const rec = new Recorder();
  const w = new TunWriter(rec);
  pushU(w, dgram(payloadOf(100, 1), 1));
  pushU(w, dgram(payloadOf(100, 2), 2));
  pushU(w, dgram(payloadOf(40, 3), 3));
  t.equal(rec.writes.length, 1, 'the short one joined and ended it');
  t.equal(rd16(rec.writes[0]!.pkt, 2), 20 + 8 + 240);
  pushU(w, dgram(payloadOf(100, 4), 4));
  pushU(w, dgram(payloadOf(200, 5), 5));
  pushU(w, dgram(payloadOf(200, 6), 6, { sport: 40001 }));
  pushU(w, dgram(payloadOf(200, 7), 7, { partial: false }));
  w.flush();
  t.same(rec.writes.slice(1).map((x) => [x.hdr[1], rd16(x.pkt, 2)]), [[0, 128], [0, 228], [0, 228], [0, 228]],
    'then four packets alone: a longer datagram, another flow, and a complete unverified checksum');
});
