/**
 * Checksum and segmentation offload through the engine (vnet hdr batches, FrameBatch.txOffload):
 * NAT rewrites of CHECKSUM_PARTIAL frames and of GSO super-frames, proved right by finishing them
 * the way the kernel would (tcp_gso_segment / __udp_gso_segment's length adjustment of the
 * partial sum, then skb_checksum_help's sum over the segment) and comparing every resulting
 * segment byte for byte with the packet built directly for the real server; MTU checks on the
 * segment size; DR passing super-frames whole; TUN cutting them into encapsulated segments
 * (judged by tshark too); and batches without offload behaving as before (checksum completed).
 */
import t from 'tap';
import { TestDirector, CLIENT_MAC, DIR_MAC, DIR_IP } from './harness.js';
import { buildTcp, buildUdp, type FrameOptions } from '../../src/packet/build.js';
import { PacketInfo, PARSE_OK } from '../../src/packet/info.js';
import { parseFrame } from '../../src/packet/parse.js';
import { ipv4HeaderChecksumOk, l4ChecksumOk } from '../../src/packet/checksum.js';
import {
  FrameBatch, TxQueue, VNET_SLOT_SIZE, FRAME_CSUM_NOT_READY, FRAME_CSUM_VALID, FRAME_GSO, FRAME_SEGMENTED, GSO_TCPV4, GSO_TCPV6,
  GSO_UDP_L4, SEG_GAP, V_FORWARD, VERDICT_NAMES,
} from '../../src/io/batch.js';
import { reasonName } from '../../src/core/reasons.js';
import { natInbound, natOutbound } from '../../src/xmit/nat.js';
import { badChecksums, dissect, haveTshark } from '../util/tshark.js';
import { parseIp, parseIp4 } from '../../src/util/ip.js';

const RS_MAC = '02:00:00:00:01:01';
const RS6_MAC = '02:00:00:00:01:06';
const C = '10.0.0.1';
const VIP = '10.0.0.100';
const RS = '10.0.1.1';
const C6 = '2001:db8:c::1';
const VIP6 = '2001:db8:f::100';
const RS6 = '2001:db8:1::1';
const ACK = 0x10, PSH = 0x08, SYN = 0x02, FIN = 0x01, CWR = 0x80;

// ------------------------------------------------------------------ an independent reference

/** One's-complement 16-bit sum of bytes (big-endian words, odd byte padded), folded, not complemented. */
function sum16(b: Uint8Array, from: number, to: number, acc = 0): number {
  for (let i = from; i < to; i += 2) acc += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0);
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return acc;
}
const rd16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
const wr16 = (b: Uint8Array, o: number, v: number): void => { b[o] = (v >>> 8) & 0xff; b[o + 1] = v & 0xff; };

function info(frame: Uint8Array): PacketInfo {
  const i = new PacketInfo();
  if (parseFrame(frame, 0, frame.length, i) !== PARSE_OK) throw new Error('unparsable');
  return i;
}

/**
 * What the kernel does with a CHECKSUM_PARTIAL GSO frame that leaves through a device without
 * offloads: cut it into gsoSize segments (IPv4 ID + k, TCP seq + k * gsoSize, FIN/PSH on the last,
 * CWR on the first; UDP: a header per segment), move the partial sum to the segment's length
 * (tcp_gso_segment: check += newlen - oldlen), then finish each checksum over the segment
 * (skb_checksum_help). gsoSize 0: one frame, just finished. Written from the kernel's rules,
 * independently of xmit/gso.ts.
 */
function kernelFinish(frame: Uint8Array, gsoSize: number): Uint8Array[] {
  const fi = info(frame);
  const l3 = fi.l3Off, l4 = fi.l4Off, tcp = fi.proto === 6;
  const thl = tcp ? (frame[l4 + 12]! >>> 4) * 4 : 8;
  const co = tcp ? 16 : 6;
  const oldL4 = fi.l4Len;
  const payload = frame.subarray(l4 + thl, l3 + fi.ipLen);
  const mss = gsoSize > 0 ? gsoSize : payload.length;
  const n = Math.max(1, Math.ceil(payload.length / mss));
  const out: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const chunk = payload.subarray(k * mss, Math.min(payload.length, (k + 1) * mss));
    const s = new Uint8Array(l4 + thl + chunk.length);
    s.set(frame.subarray(0, l4 + thl));
    s.set(chunk, l4 + thl);
    const segL4 = thl + chunk.length;
    if (fi.af === 4) {
      wr16(s, l3 + 2, l4 - l3 + segL4);
      wr16(s, l3 + 4, (rd16(frame, l3 + 4) + k) & 0xffff);
      wr16(s, l3 + 10, 0);
      wr16(s, l3 + 10, ~sum16(s, l3, l4) & 0xffff);
    } else {
      wr16(s, l3 + 4, l4 - l3 - 40 + segL4);
    }
    if (tcp) {
      const seq = ((frame[l4 + 4]! << 24 | frame[l4 + 5]! << 16 | frame[l4 + 6]! << 8 | frame[l4 + 7]!) + k * mss) >>> 0;
      s[l4 + 4] = seq >>> 24; s[l4 + 5] = (seq >>> 16) & 0xff; s[l4 + 6] = (seq >>> 8) & 0xff; s[l4 + 7] = seq & 0xff;
      let f = frame[l4 + 13]!;
      if (k < n - 1) f &= ~(FIN | PSH);
      if (k > 0) f &= ~CWR;
      s[l4 + 13] = f;
    } else {
      wr16(s, l4 + 4, segL4);
    }
    // The partial sum covers the pseudo-header with the whole frame's L4 length: swap in the segment's.
    const partial = sum16(new Uint8Array(0), 0, 0, rd16(frame, l4 + co) + (~oldL4 & 0xffff) + segL4);
    wr16(s, l4 + co, partial);
    let c = ~sum16(s, l4, s.length) & 0xffff;
    if (!tcp && c === 0) c = 0xffff;
    wr16(s, l4 + co, c);
    out.push(s);
  }
  return out;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
function payloadOf(n: number, seed: number): Uint8Array {
  const p = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; p[i] = x & 0xff; }
  return p;
}

// ------------------------------------------------------------------ a director with a vnet-hdr batch

interface Out {
  verdict: string; reason: string; frame: Uint8Array; flags: number; csumStart: number; csumOffset: number;
  gsoType: number; gsoSize: number; segs: Uint8Array[]; tx: Uint8Array[];
}

class OffloadDirector extends TestDirector {
  readonly b: FrameBatch;
  private readonly q = new TxQueue(8);
  constructor(txOffload: boolean, mtu = 1500) {
    super({ neigh: { [RS]: RS_MAC, [C]: CLIENT_MAC, [RS6]: RS6_MAC, [C6]: CLIENT_MAC }, mtu });
    this.b = new FrameBatch(2, undefined, VNET_SLOT_SIZE);
    this.b.txOffload = txOffload;
  }

  /** Runs one frame as the AF_PACKET backend would deliver it (flags and offload metadata). */
  run(frame: Uint8Array, flags: number, gsoType = 0, gsoSize = 0): Out {
    const b = this.b;
    this.q.clear();
    b.put(0, frame, flags);
    b.count = 1;
    const fi = info(frame);
    b.csumStart[0] = fi.l4Off;
    b.csumOffset[0] = fi.proto === 6 ? 16 : 6;
    b.gsoType[0] = gsoType;
    b.gsoSize[0] = gsoSize;
    this.d.engine.process(b, this.q);
    const segs: Uint8Array[] = [];
    const fl = b.flags[0]!;
    if ((fl & FRAME_SEGMENTED) !== 0) {
      for (let k = 0; k < b.segs[0]!; k++) {
        const o = b.off[0]! + k * b.segStride[0]!;
        const end = k + 1 < b.segs[0]! ? o + b.segStride[0]! - SEG_GAP : b.off[0]! + b.len[0]!;
        segs.push(b.buf.slice(o, end));
      }
    }
    const tx: Uint8Array[] = [];
    for (let k = 0; k < this.q.count; k++) tx.push(this.q.frame(k));
    return {
      verdict: VERDICT_NAMES[b.verdict[0]!]!, reason: reasonName(b.reason[0]!), frame: b.frame(0), flags: fl,
      csumStart: b.csumStart[0]!, csumOffset: b.csumOffset[0]!, gsoType: b.gsoType[0]!, gsoSize: b.gsoSize[0]!, segs, tx,
    };
  }
}

const fromClient = <T extends FrameOptions>(o: T): T => ({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: C, daddr: VIP, ttl: 64, df: true, ...o });

async function natDirector(txOffload: boolean, mtu = 1500): Promise<OffloadDirector> {
  const td = new OffloadDirector(txOffload, mtu);
  await td.rules(`-A -t ${VIP}:80 -s rr
-a -t ${VIP}:80 -r ${RS}:8080 -m
-A -u ${VIP}:53 -s rr
-a -u ${VIP}:53 -r ${RS}:5353 -m
-A -t [${VIP6}]:80 -s rr
-a -t [${VIP6}]:80 -r [${RS6}]:8080 -m
`);
  return td;
}

/** Opens a TCP connection client:sport → VIP:80 (complete checksums; ESTABLISHED) and returns the client's next seq. */
function connect(td: OffloadDirector, sport: number, v6 = false): number {
  const s = v6 ? { family: 6 as const, saddr: C6, daddr: VIP6 } : {};
  const syn = td.run(buildTcp(fromClient({ ...s, sport, dport: 80, flags: SYN, seq: 1000 })), 0);
  if (syn.verdict !== 'forward') throw new Error(`SYN: ${syn.reason}`);
  const rs = v6 ? { family: 6 as const, saddr: RS6, daddr: C6 } : { saddr: RS, daddr: C };
  td.run(buildTcp({ srcMac: v6 ? RS6_MAC : RS_MAC, dstMac: DIR_MAC, ...rs, sport: 8080, dport: sport, flags: SYN | ACK, seq: 5000, ack: 1001 }), 0);
  // The client's ACK: ESTABLISHED (what the fast path wants).
  td.run(buildTcp(fromClient({ ...s, sport, dport: 80, flags: ACK, seq: 1001, ack: 5001 })), 0);
  return 1001;
}

// ------------------------------------------------------------------ the partial rewrite itself

t.test('partial-checksum NAT rewrite: after the kernel finishes it, it equals a checksummed packet (random cases)', async (t) => {
  let x = 0x2468ace1;
  const rnd = (): number => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
  const ip4 = (): string => [rnd() & 0xff, rnd() & 0xff, rnd() & 0xff, (rnd() & 0xfe) + 1].join('.');
  const ip6 = (): string => Array.from({ length: 8 }, () => (rnd() & 0xffff).toString(16)).join(':');
  let checked = 0;
  for (let k = 0; k < 200; k++) {
    const v6 = (k & 1) === 1;
    const udp = (k & 2) === 2;
    const inbound = (k & 4) === 4;
    const fam: FrameOptions = v6 ? { family: 6 } : {};
    const a = v6 ? ip6 : ip4;
    const [c, v, r] = [a(), a(), a()];
    const [cp, vp, rp] = [1024 + (rnd() % 60000), 1 + (rnd() % 65535), 1 + (rnd() % 65535)];
    const payload = payloadOf(rnd() % 1500, k);
    const seq = rnd(), ack = rnd();
    const build = udp ? buildUdp : (o: FrameOptions) => buildTcp({ ...o, flags: ACK | PSH, seq, ack });
    // Inbound: client → VIP becomes client → RS; outbound: RS → client becomes VIP → client.
    const before: FrameOptions = inbound ? { ...fam, saddr: c, sport: cp, daddr: v, dport: vp } : { ...fam, saddr: r, sport: rp, daddr: c, dport: cp };
    const after: FrameOptions = inbound ? { ...fam, saddr: c, sport: cp, daddr: r, dport: rp } : { ...fam, saddr: v, sport: vp, daddr: c, dport: cp };
    const f = build({ ...before, payload, l4Checksum: 'partial' });
    const want = build({ ...after, payload });
    const fi = info(f);
    const words = (s: string): Uint32Array => { const w = parseIp(s)!; return Uint32Array.of(w.w0, w.w1, w.w2, w.w3); };
    const ok = inbound ? natInbound(f, fi, words(r), rp, true) : natOutbound(f, fi, words(v), vp, true);
    if (!ok) { t.fail(`case ${k}: rewrite refused`); continue; }
    const [finished] = kernelFinish(f, 0);
    if (hex(finished!) !== hex(want)) { t.fail(`case ${k} (${v6 ? 'v6' : 'v4'} ${udp ? 'udp' : 'tcp'} ${inbound ? 'in' : 'out'}) differs`); continue; }
    checked++;
  }
  t.equal(checked, 200, 'all 200 rewritten partial frames finish into the packet built for the other side');
});

// ------------------------------------------------------------------ through the engine

t.test('NAT of a TCP GSO super-frame: kept whole and partial, every segment right once the kernel cuts it', async (t) => {
  const td = await natDirector(true);
  const seq = connect(td, 40000);
  const payload = payloadOf(20000, 7);
  const mss = 1448;
  const sf = buildTcp(fromClient({ sport: 40000, dport: 80, flags: ACK | PSH, seq, ack: 5001, ipId: 0x1234, payload, l4Checksum: 'partial' }));
  t.ok(sf.length > 1514, `a ${sf.length}-byte super-frame`);
  const o = td.run(sf, FRAME_CSUM_NOT_READY | FRAME_GSO, GSO_TCPV4, mss);
  t.same([o.verdict, o.reason], ['forward', 'nat-in']);
  t.equal(o.frame.length, sf.length, 'forwarded whole');
  t.equal(o.flags & (FRAME_CSUM_NOT_READY | FRAME_GSO), FRAME_CSUM_NOT_READY | FRAME_GSO, 'still partial and GSO: the kernel finishes it');
  t.same([o.csumStart, o.csumOffset], [34, 16], 'checksum offsets for the virtio_net_hdr');
  t.ok(ipv4HeaderChecksumOk(o.frame, 14), 'IPv4 header checksum of the super-frame is right');
  const segs = kernelFinish(o.frame, mss);
  t.equal(segs.length, Math.ceil(20000 / mss));
  let same = 0;
  segs.forEach((s, k) => {
    const chunk = payload.subarray(k * mss, Math.min(20000, (k + 1) * mss));
    const want = buildTcp({ srcMac: DIR_MAC, dstMac: RS_MAC, saddr: C, daddr: RS, sport: 40000, dport: 8080, ttl: 63, df: true,
      ipId: 0x1234 + k, seq: seq + k * mss, ack: 5001, flags: k === segs.length - 1 ? ACK | PSH : ACK, payload: chunk });
    if (hex(s) === hex(want)) same++;
    else t.fail(`segment ${k} differs from the packet built for the real server`);
  });
  t.equal(same, segs.length, `all ${segs.length} segments equal the packets built for the real server (valid checksums)`);
});

t.test('NAT of GSO replies (TCP IPv4, TCP IPv6, UDP L4): source rewritten, finished segments valid', async (t) => {
  const td = await natDirector(true);
  connect(td, 40001);
  connect(td, 40002, true);
  const mss = 1000;
  const cases: Array<[string, Uint8Array, number, (k: number, chunk: Uint8Array, n: number) => Uint8Array]> = [];
  const p1 = payloadOf(7777, 3);
  cases.push(['TCPv4 reply', buildTcp({ srcMac: RS_MAC, dstMac: DIR_MAC, saddr: RS, daddr: C, sport: 8080, dport: 40001, ttl: 64, ipId: 7,
    flags: ACK | PSH | CWR, seq: 5001, ack: 1001, payload: p1, l4Checksum: 'partial' }), GSO_TCPV4,
  (k, chunk, n) => buildTcp({ srcMac: DIR_MAC, dstMac: CLIENT_MAC, saddr: VIP, daddr: C, sport: 80, dport: 40001, ttl: 63, ipId: 7 + k,
    flags: ACK | (k === n - 1 ? PSH : 0) | (k === 0 ? CWR : 0), seq: 5001 + k * mss, ack: 1001, payload: chunk })]);
  const p2 = payloadOf(5000, 4);
  cases.push(['TCPv6 reply', buildTcp({ family: 6, srcMac: RS6_MAC, dstMac: DIR_MAC, saddr: RS6, daddr: C6, sport: 8080, dport: 40002, ttl: 64,
    flags: ACK | FIN, seq: 5001, ack: 1001, payload: p2, l4Checksum: 'partial' }), GSO_TCPV6,
  (k, chunk, n) => buildTcp({ family: 6, srcMac: DIR_MAC, dstMac: CLIENT_MAC, saddr: VIP6, daddr: C6, sport: 80, dport: 40002, ttl: 63,
    flags: ACK | (k === n - 1 ? FIN : 0), seq: 5001 + k * mss, ack: 1001, payload: chunk })]);
  // UDP: the client's query creates the connection, the real server answers with UDP GSO.
  td.run(buildUdp(fromClient({ sport: 41000, dport: 53, payload: 'q' })), 0);
  const p3 = payloadOf(3500, 5);
  cases.push(['UDP L4 reply', buildUdp({ srcMac: RS_MAC, dstMac: DIR_MAC, saddr: RS, daddr: C, sport: 5353, dport: 41000, ttl: 64, ipId: 9,
    payload: p3, l4Checksum: 'partial' }), GSO_UDP_L4,
  (k, chunk) => buildUdp({ srcMac: DIR_MAC, dstMac: CLIENT_MAC, saddr: VIP, daddr: C, sport: 53, dport: 41000, ttl: 63, ipId: 9 + k, payload: chunk })]);
  for (const [name, f, type, want] of cases) {
    const o = td.run(f, FRAME_CSUM_NOT_READY | FRAME_GSO, type, mss);
    t.same([o.verdict, o.reason], ['forward', 'nat-out'], name);
    const fi = info(f);
    const payload = f.subarray(fi.l4Off + (fi.proto === 6 ? 20 : 8));
    const segs = kernelFinish(o.frame, mss);
    const bad = segs.filter((s, k) => hex(s) !== hex(want(k, payload.subarray(k * mss, (k + 1) * mss), segs.length)));
    t.equal(bad.length, 0, `${name}: the ${segs.length} finished segments equal the packets built for the client`);
  }
});

t.test('a partial checksum without GSO stays partial with offload, and is completed without (as before)', async (t) => {
  for (const off of [true, false]) {
    const td = await natDirector(off);
    const seq = connect(td, 40003);
    const payload = payloadOf(600, 11);
    const f = buildTcp(fromClient({ sport: 40003, dport: 80, flags: ACK | PSH, seq, ack: 5001, payload, l4Checksum: 'partial' }));
    const want = buildTcp({ srcMac: DIR_MAC, dstMac: RS_MAC, saddr: C, daddr: RS, sport: 40003, dport: 8080, ttl: 63, df: true,
      seq, ack: 5001, flags: ACK | PSH, payload });
    for (const fast of [true, false]) {
      td.d.engine.fast.enabled = fast;
      const hits = td.d.engine.fast.hits;
      const o = td.run(f, FRAME_CSUM_NOT_READY);
      t.same([o.verdict, o.reason], ['forward', 'nat-in'], `offload ${off}, fast path ${fast}`);
      t.equal(td.d.engine.fast.hits - hits, fast && off ? 1 : 0, fast && off ? 'taken by the fast path' : 'taken by the general path');
      if (off) {
        t.ok((o.flags & FRAME_CSUM_NOT_READY) !== 0, 'left partial for the kernel');
        t.equal(hex(kernelFinish(o.frame, 0)[0]!), hex(want), 'finished by the kernel: the packet built for the real server');
      } else {
        t.equal(o.flags & FRAME_CSUM_NOT_READY, 0, 'completed here, flag cleared');
        t.equal(hex(o.frame), hex(want), 'the packet built for the real server');
      }
    }
  }
});

t.test('MTU checks use the segment size of a super-frame', async (t) => {
  const td = await natDirector(true, 1500);
  const seq = connect(td, 40004);
  const payload = payloadOf(8000, 13);
  const f = buildTcp(fromClient({ sport: 40004, dport: 80, flags: ACK, seq, ack: 5001, payload, l4Checksum: 'partial' }));
  const ok = td.run(f, FRAME_CSUM_NOT_READY | FRAME_GSO, GSO_TCPV4, 1460);
  t.same([ok.verdict, ok.reason], ['forward', 'nat-in'], '1460-byte segments (1500 bytes of IP) fit a 1500 MTU, though the frame is 8054 bytes');
  const big = td.run(f, FRAME_CSUM_NOT_READY | FRAME_GSO, GSO_TCPV4, 1461);
  t.same([big.verdict, big.reason], ['drop', 'frag-needed'], '1461-byte segments do not: DF set, so frag-needed');
  t.equal(big.tx.length, 1, 'one ICMP error to the client');
  const icmp = info(big.tx[0]!);
  t.same([icmp.icmpType, icmp.icmpCode, rd16(big.tx[0]!, icmp.l4Off + 6)], [3, 4, 1500], 'ICMP 3/4 with MTU 1500');
  // Without GSO metadata the same frame is simply too big.
  const plain = td.run(buildTcp(fromClient({ sport: 40004, dport: 80, flags: ACK, seq, ack: 5001, payload })), 0);
  t.same([plain.verdict, plain.reason], ['drop', 'frag-needed'], 'the same length without GSO: frag-needed');
});

t.test('a GSO frame whose checksum cannot stay partial is dropped, not sent wrong', async (t) => {
  const td = await natDirector(false);
  const seq = connect(td, 40005);
  const f = buildTcp(fromClient({ sport: 40005, dport: 80, flags: ACK, seq, ack: 5001, payload: payloadOf(4000, 1), l4Checksum: 'partial' }));
  const o = td.run(f, FRAME_CSUM_NOT_READY | FRAME_GSO, GSO_TCPV4, 1000);
  t.same([o.verdict, o.reason], ['drop', 'cannot-rewrite'], 'no offload after us: a super-frame cannot be completed whole');
});

/**
 * A director with one service forwarding by `method` (-g, -i...), a connection from client port
 * `sport`, and `payload` sent through it as one partial-checksum GSO TCP super-frame.
 */
async function superFrameThrough(txOffload: boolean, method: string, sport: number, payload: Uint8Array, gsoSize: number): Promise<Out> {
  const td = new OffloadDirector(txOffload);
  await td.rules(`-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r ${RS}:80 ${method}\n`);
  td.run(buildTcp(fromClient({ sport, dport: 80, flags: SYN, seq: 1 })), 0);
  const f = buildTcp(fromClient({ sport, dport: 80, flags: ACK, seq: 2, ack: 9, payload, l4Checksum: 'partial' }));
  return td.run(f, FRAME_CSUM_NOT_READY | FRAME_GSO, GSO_TCPV4, gsoSize);
}

t.test('DR passes a super-frame whole (MACs and TTL only), still partial', async (t) => {
  const payload = payloadOf(30000, 21);
  const o = await superFrameThrough(true, '-g', 40010, payload, 1448);
  t.same([o.verdict, o.reason], ['forward', 'dr']);
  t.equal(o.flags & (FRAME_GSO | FRAME_CSUM_NOT_READY), FRAME_GSO | FRAME_CSUM_NOT_READY);
  const want = buildTcp({ srcMac: DIR_MAC, dstMac: RS_MAC, saddr: C, daddr: VIP, sport: 40010, dport: 80, ttl: 63, df: true,
    flags: ACK, seq: 2, ack: 9, payload, l4Checksum: 'partial' });
  t.equal(hex(o.frame), hex(want), 'only the MACs and the TTL changed');
});

/** skb_checksum_help on a frame the backend sends with NEEDS_CSUM: ~sum from csumStart to the end, stored at csumStart + csumOffset. */
function finishAt(frame: Uint8Array, csumStart: number, csumOffset: number): void {
  wr16(frame, csumStart + csumOffset, ~sum16(frame, csumStart, frame.length) & 0xffff);
}

const tunCases = [
  // [name, rule, the segments leave with their inner checksum partial (no outer checksum covers it)]
  ['IPIP', '-i', true], ['GUE', '-i --tun-type gue --tun-port 6080 --tun-nocsum', true],
  ['GRE with checksum', '-i --tun-type gre --tun-csum', false],
] as const;
for (const [name, rule, stays] of tunCases) {
  t.test(`TUN (${name}) cuts a super-frame into encapsulated segments within the MTU, ${stays ? 'inner checksums partial for the kernel' : 'complete'}`, async (t) => {
    const td = new OffloadDirector(true);
    await td.rules(`-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r ${RS}:80 ${rule}\n`);
    td.run(buildTcp(fromClient({ sport: 40020, dport: 80, flags: SYN, seq: 1 })), 0);
    const payload = payloadOf(25000, 33);
    const mss = 1400;
    const f = buildTcp(fromClient({ sport: 40020, dport: 80, flags: ACK | PSH | FIN, seq: 100, ack: 9, ipId: 0x0100, payload, l4Checksum: 'partial' }));
    const o = td.run(f, FRAME_CSUM_NOT_READY | FRAME_GSO, GSO_TCPV4, mss);
    t.same([o.verdict, o.reason], ['forward', 'tunnel']);
    const n = Math.ceil(payload.length / mss);
    t.equal(o.segs.length, n, `${n} segments`);
    if (stays) {
      t.equal(o.flags & (FRAME_GSO | FRAME_CSUM_NOT_READY), FRAME_CSUM_NOT_READY, 'no GSO left; checksums left to the kernel');
      const innerL4 = 14 + 20 + (rule === '-i' ? 0 : 12) + 20;
      t.same([o.csumStart, o.csumOffset], [innerL4, 16], 'csum_start at the inner TCP header of every segment, tcphdr.check');
      // What the kernel does with each NEEDS_CSUM segment on a device without checksum offload.
      for (const seg of o.segs) finishAt(seg, o.csumStart, o.csumOffset);
    } else {
      t.equal(o.flags & (FRAME_GSO | FRAME_CSUM_NOT_READY), 0, 'nothing left for the kernel: the GRE checksum covers the inner one');
    }
    const got: Uint8Array[] = [];
    let problems = 0;
    o.segs.forEach((s, k) => {
      const outer = info(s);
      if (outer.ipLen > 1500 || !ipv4HeaderChecksumOk(s, 14) || outer.saddr[0] !== parseIp4(DIR_IP)) problems++;
      // The inner packet: find it behind the outer headers (IPIP: right after; GUE: UDP + 4; GRE: 4 or 8).
      const at = outer.proto === 4 ? outer.l4Off : outer.proto === 17 ? outer.l4Off + 12 : outer.l4Off + ((s[outer.l4Off]! & 0x80) !== 0 ? 8 : 4);
      const inner = new Uint8Array(14 + s.length - at);
      inner.set(s.subarray(0, 14));
      inner[12] = 0x08; inner[13] = 0x00;
      inner.set(s.subarray(at), 14);
      const ii = info(inner);
      const thl = (inner[ii.l4Off + 12]! >>> 4) * 4;
      const seq = ((inner[ii.l4Off + 4]! << 24) | (inner[ii.l4Off + 5]! << 16) | (inner[ii.l4Off + 6]! << 8) | inner[ii.l4Off + 7]!) >>> 0;
      const fl = inner[ii.l4Off + 13]!;
      const wantFl = k === n - 1 ? ACK | PSH | FIN : ACK;
      if (!ipv4HeaderChecksumOk(inner, 14) || !l4ChecksumOk(inner, 4, 14, 6, ii.l4Off, ii.l4Len) || seq !== 100 + k * mss ||
          fl !== wantFl || rd16(inner, 18) !== 0x0100 + k || ii.ttl !== 63) problems++;
      got.push(inner.subarray(ii.l4Off + thl));
    });
    t.equal(problems, 0, 'outer and inner headers, checksums, sequence numbers, IDs and flags are right in every segment');
    t.equal(hex(Buffer.concat(got)), hex(payload), 'the segments carry the payload, in order');
    if (haveTshark()) {
      // The random payload on port 80 is not HTTP.
      const frames = dissect(o.segs, [], ['--disable-protocol', 'http']);
      t.same(frames.map((fr) => [...fr.problems, ...badChecksums(fr)]).filter((p) => p.length > 0), [], 'tshark: no bad checksum, nothing malformed');
      if (rule !== '-i --tun-type gue --tun-port 6080 --tun-nocsum') {
        t.ok(frames.every((fr) => (fr.checksums.tcp ?? []).includes('1')), 'tshark verified every inner TCP checksum good');
      }
    }
  });
}

t.test('TUN without offload after it: the segments leave complete', async (t) => {
  const o = await superFrameThrough(false, '-i', 40021, payloadOf(5000, 34), 1400);
  t.same([o.verdict, o.segs.length, o.flags & (FRAME_GSO | FRAME_CSUM_NOT_READY)], ['forward', 4, 0], 'four segments, nothing partial');
  const ok = o.segs.every((seg) => {
    const inner = new Uint8Array(seg.length - 20);
    inner.set(seg.subarray(0, 14)); inner.set(seg.subarray(34), 14);
    const ii = info(inner);
    return l4ChecksumOk(inner, 4, 14, 6, ii.l4Off, ii.l4Len);
  });
  t.ok(ok, 'every inner TCP checksum is complete and right');
});

t.test('TUN with offload: a partial checksum without GSO stays partial, moved with the frame', async (t) => {
  const td = new OffloadDirector(true);
  await td.rules(`-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r ${RS}:80 -i\n`);
  td.run(buildTcp(fromClient({ sport: 40022, dport: 80, flags: SYN, seq: 1 })), 0);
  const payload = payloadOf(700, 35);
  const o = td.run(buildTcp(fromClient({ sport: 40022, dport: 80, flags: ACK, seq: 2, ack: 9, payload, l4Checksum: 'partial' })), FRAME_CSUM_NOT_READY);
  t.same([o.verdict, o.reason], ['forward', 'tunnel']);
  t.equal(o.flags & FRAME_CSUM_NOT_READY, FRAME_CSUM_NOT_READY, 'still partial');
  t.same([o.csumStart, o.csumOffset], [14 + 20 + 20, 16], 'csum_start now behind the outer header');
  finishAt(o.frame, o.csumStart, o.csumOffset);
  const inner = new Uint8Array(o.frame.length - 20);
  inner.set(o.frame.subarray(0, 14)); inner.set(o.frame.subarray(34), 14);
  const ii = info(inner);
  t.ok(l4ChecksumOk(inner, 4, 14, 6, ii.l4Off, ii.l4Len), 'finished where it says, the inner checksum is right');
  const want = buildTcp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: C, daddr: VIP, sport: 40022, dport: 80, ttl: 63, df: true,
    flags: ACK, seq: 2, ack: 9, payload });
  t.equal(hex(inner.subarray(14)), hex(want.subarray(14)), 'and the inner packet is the client\'s, TTL - 1');
});

t.test('TUN: a UDP GSO frame becomes UDP datagrams; a one-segment GSO frame an ordinary packet', async (t) => {
  const td = new OffloadDirector(false);
  await td.rules(`-A -u ${VIP}:53 -s rr\n-a -u ${VIP}:53 -r ${RS}:53 -i\n-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r ${RS}:80 -i\n`);
  const payload = payloadOf(4000, 44);
  const u = buildUdp(fromClient({ sport: 41000, dport: 53, ipId: 50, payload, l4Checksum: 'partial' }));
  const o = td.run(u, FRAME_CSUM_NOT_READY | FRAME_GSO, GSO_UDP_L4, 1200);
  t.same([o.verdict, o.reason, o.segs.length], ['forward', 'tunnel', 4], 'cut into 4 datagrams');
  const inner = o.segs.map((s) => s.subarray(34)); // IPIP: the inner IP packet follows the outer header
  const ok = inner.every((p, k) => {
    const f = new Uint8Array(14 + p.length);
    f.set(p, 14); f[12] = 0x08;
    const i = info(f);
    const len = Math.min(1200, 4000 - k * 1200);
    return i.l4Len === 8 + len && rd16(f, i.l4Off + 4) === 8 + len && l4ChecksumOk(f, 4, 14, 17, i.l4Off, i.l4Len) &&
      ipv4HeaderChecksumOk(f, 14) && hex(f.subarray(i.l4Off + 8)) === hex(payload.subarray(k * 1200, k * 1200 + len));
  });
  t.ok(ok, 'each has its own UDP header, length, valid checksum and its share of the payload');

  td.run(buildTcp(fromClient({ sport: 40040, dport: 80, flags: SYN, seq: 1 })), 0);
  const small = buildTcp(fromClient({ sport: 40040, dport: 80, flags: ACK, seq: 2, ack: 9, payload: payloadOf(900, 45), l4Checksum: 'partial' }));
  const one = td.run(small, FRAME_CSUM_NOT_READY | FRAME_GSO, GSO_TCPV4, 1400);
  t.same([one.verdict, one.reason, one.segs.length, one.flags & (FRAME_GSO | FRAME_CSUM_NOT_READY)], ['forward', 'tunnel', 0, 0],
    'one segment only: one ordinary encapsulated packet');
  const f = new Uint8Array(one.frame.length - 20);
  f.set(one.frame.subarray(34), 14); f[12] = 0x08;
  const fi = info(f);
  t.ok(l4ChecksumOk(f, 4, 14, 6, fi.l4Off, fi.l4Len), 'with its checksum completed');
});

t.test('TUN: segments that would not fit the tunnel MTU get frag-needed, like a plain packet', async (t) => {
  const td = new OffloadDirector(true);
  await td.rules(`-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r ${RS}:80 -i\n`);
  td.run(buildTcp(fromClient({ sport: 40030, dport: 80, flags: SYN, seq: 1 })), 0);
  const f = buildTcp(fromClient({ sport: 40030, dport: 80, flags: ACK, seq: 2, ack: 9, payload: payloadOf(9000, 2), l4Checksum: 'partial' }));
  const o = td.run(f, FRAME_CSUM_NOT_READY | FRAME_GSO, GSO_TCPV4, 1448);
  t.same([o.verdict, o.reason], ['drop', 'frag-needed'], '1500-byte inner segments do not fit 1480');
  const icmp = info(o.tx[0]!);
  t.equal(rd16(o.tx[0]!, icmp.l4Off + 6), 1480, 'the tunnel MTU is reported');
});

/**
 * The receiver's side of GUE remote checksum offload (fou's remcsum_adjust, for a packet whose
 * outer checksum was verified): the inner field holds the pseudo-header sum; the sum from csum
 * start to the end completes it. Returns the inner IP packet behind `guePayload` (GUE header
 * first) as an Ethernet frame, or null when the GUE header is not version 0 with the option.
 */
function gueRemcsumInner(guePayload: Uint8Array): Uint8Array | null {
  const g = guePayload;
  if (g[0] !== 2 || g[2] !== 0 || g[3] !== 1 || rd16(g, 4) !== 0x8000 || rd16(g, 6) !== 0) return null;
  const start = rd16(g, 8), at = rd16(g, 10);
  const inner = new Uint8Array(14 + g.length - 12);
  inner.set(g.subarray(12), 14);
  inner[12] = g[1] === 4 ? 0x08 : 0x86; inner[13] = g[1] === 4 ? 0x00 : 0xdd;
  wr16(inner, 14 + at, ~sum16(inner, 14 + start, inner.length) & 0xffff);
  return inner;
}

const GUE_REMCSUM = '-i --tun-type gue --tun-port 6080 --tun-remcsum';
for (const [payloadLen, parts] of [[25000, 1], [64000, 2]] as const) {
  t.test(`TUN (GUE remcsum) with offload: a ${payloadLen}-byte super-frame leaves as ${parts} UDP GSO frame(s) whose kernel-cut segments are GUE remcsum packets`, async (t) => {
    const td = new OffloadDirector(true);
    await td.rules(`-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r ${RS}:80 ${GUE_REMCSUM}\n`);
    td.run(buildTcp(fromClient({ sport: 40050, dport: 80, flags: SYN, seq: 1 })), 0);
    const payload = payloadOf(payloadLen, 36);
    const mss = 1400;
    const n = Math.ceil(payloadLen / mss);
    const f = buildTcp(fromClient({ sport: 40050, dport: 80, flags: ACK | PSH, seq: 100, ack: 9, ipId: 0x0100, payload, l4Checksum: 'partial' }));
    const o = td.run(f, FRAME_CSUM_NOT_READY | FRAME_GSO, GSO_TCPV4, mss);
    t.same([o.verdict, o.reason], ['forward', 'tunnel']);
    const chunk = 12 + 40 + mss;
    t.same([o.flags & (FRAME_GSO | FRAME_CSUM_NOT_READY | FRAME_SEGMENTED), o.gsoType, o.gsoSize, o.csumStart, o.csumOffset],
      [FRAME_GSO | FRAME_CSUM_NOT_READY | (parts > 1 ? FRAME_SEGMENTED : 0), GSO_UDP_L4, chunk, 14 + 20, 6],
      'UDP GSO, gso_size = GUE + inner headers + MSS, the outer UDP checksum partial');
    const frames = parts > 1 ? o.segs : [o.frame];
    t.equal(frames.length, parts, `${parts} part(s)`);
    t.ok(frames.every((p) => info(p).ipLen <= 65535 && rd16(p, 16) === p.length - 14), 'each part\'s outer IPv4 length is its own, within 16 bits');
    // What the kernel (or a NIC) does with each part: __udp_gso_segment, then the checksum finished.
    const segs = frames.flatMap((p) => kernelFinish(p, o.gsoSize));
    t.equal(segs.length, n, `${n} segments once cut`);
    let problems = 0;
    const got: Uint8Array[] = [];
    segs.forEach((s, k) => {
      const outer = info(s);
      if (outer.ipLen > 1500 || outer.proto !== 17 || rd16(s, outer.l4Off + 2) !== 6080 || outer.saddr[0] !== parseIp4(DIR_IP) ||
          !ipv4HeaderChecksumOk(s, 14) || !l4ChecksumOk(s, 4, 14, 17, outer.l4Off, outer.l4Len)) problems++;
      const inner = gueRemcsumInner(s.subarray(outer.l4Off + 8));
      if (inner === null) { problems++; return; }
      const ii = info(inner);
      const seq = ((inner[ii.l4Off + 4]! << 24) | (inner[ii.l4Off + 5]! << 16) | (inner[ii.l4Off + 6]! << 8) | inner[ii.l4Off + 7]!) >>> 0;
      if (!ipv4HeaderChecksumOk(inner, 14) || !l4ChecksumOk(inner, 4, 14, 6, ii.l4Off, ii.l4Len) || seq !== 100 + k * mss ||
          inner[ii.l4Off + 13] !== (k === n - 1 ? ACK | PSH : ACK) || rd16(inner, 18) !== 0x0100 + k || ii.ttl !== 63) problems++;
      got.push(inner.subarray(ii.l4Off + 20));
    });
    t.equal(problems, 0, 'outer headers and UDP checksums; GUE option; inner checksums (completed as fou does), sequence numbers, IDs, flags');
    t.equal(hex(Buffer.concat(got)), hex(payload), 'the segments carry the payload, in order');

    // The same segment sent as a plain partial packet takes tunnel.ts's GUE remcsum encapsulation:
    // the kernel-cut segment is that packet, but for the outer IPv4 ID (hence its header checksum).
    const k = n - 1;
    const last = payload.subarray(k * mss);
    const plain = td.run(buildTcp(fromClient({ sport: 40050, dport: 80, flags: ACK | PSH, seq: 100 + k * mss, ack: 9, ipId: 0x0100 + k,
      payload: last, l4Checksum: 'partial' })), FRAME_CSUM_NOT_READY);
    t.same([plain.verdict, plain.flags & FRAME_CSUM_NOT_READY, plain.csumStart, plain.csumOffset], ['forward', FRAME_CSUM_NOT_READY, 34, 6],
      'the plain packet leaves with its outer UDP checksum for the kernel to finish');
    finishAt(plain.frame, plain.csumStart, plain.csumOffset);
    const cut = Uint8Array.from(segs[k]!);
    for (const fr of [cut, plain.frame]) { wr16(fr, 18, 0); wr16(fr, 24, 0); }
    t.equal(hex(cut), hex(plain.frame), 'byte for byte (IDs and IPv4 header checksums aside)');

    if (haveTshark()) {
      const fr = dissect(segs, [], ['--disable-protocol', 'http']);
      t.same(fr.map((x) => [...x.problems, ...badChecksums(x)]).filter((p) => p.length > 0), [], 'tshark: the cut segments have no bad checksum, nothing malformed');
    }
  });
}

t.test('TUN (GUE remcsum) TSO and GRO super-frames of random sizes: forwarded whole and cut right by the kernel, or dropped with a reason, never a throw', async (t) => {
  const td = new OffloadDirector(true);
  await td.rules(`-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r ${RS}:80 ${GUE_REMCSUM}\n`);
  let x = 12345;
  const rnd = (n: number): number => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x % n; };
  const outcomes = new Map<string, number>();
  const wrong: string[] = [];
  for (let c = 0; c < 150; c++) {
    const sport = 42000 + c;
    td.run(buildTcp(fromClient({ sport, dport: 80, flags: SYN, seq: 1 })), 0);
    const len = 1 + rnd(64000);
    const mss = 1 + rnd(c % 3 === 0 ? 1600 : 200);
    const payload = payloadOf(len, c);
    // Odd cases: a GRO super-frame (checksum verified by the kernel, not partial), as a NIC with GRO hands over.
    const gro = c % 2 === 1;
    const o = td.run(buildTcp(fromClient({ sport, dport: 80, flags: ACK, seq: 2, ack: 9, payload, l4Checksum: gro ? undefined : 'partial' })),
      (gro ? FRAME_CSUM_VALID : FRAME_CSUM_NOT_READY) | FRAME_GSO, GSO_TCPV4, mss);
    const key = `${o.verdict}/${o.reason}`;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    if (o.verdict !== 'forward') {
      if (!['frag-needed', 'no-headroom'].includes(o.reason)) wrong.push(`#${c} len ${len} mss ${mss}: ${key}`);
      continue;
    }
    const frames = (o.flags & FRAME_SEGMENTED) !== 0 ? o.segs : [o.frame];
    // One segment only: an ordinary GUE packet (nothing to cut); else UDP GSO parts.
    const segs = (o.flags & FRAME_GSO) !== 0 ? frames.flatMap((p) => kernelFinish(p, o.gsoSize)) : frames;
    const got: Uint8Array[] = [];
    for (const s of segs) {
      const outer = info(s);
      const inner = outer.proto === 17 && outer.ipLen <= 1500 ? gueRemcsumInner(s.subarray(outer.l4Off + 8)) : null;
      if (inner === null) { got.length = 0; break; }
      const ii = info(inner);
      if (!l4ChecksumOk(inner, 4, 14, 6, ii.l4Off, ii.l4Len)) { got.length = 0; break; }
      got.push(inner.subarray(ii.l4Off + 20));
    }
    if (got.length === 0 || hex(Buffer.concat(got)) !== hex(payload)) wrong.push(`#${c} len ${len} mss ${mss}: segments wrong`);
  }
  t.same(wrong, [], `150 random super-frames: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  t.ok((outcomes.get('forward/tunnel') ?? 0) > 50, 'most were forwarded');
});

for (const [flag, name] of [['--tun-csum', 'csum'], ['--tun-remcsum', 'remcsum']] as const) {
  t.test(`TUN (GUE ${name}) with offload: a plain packet's outer UDP checksum is left to the kernel, and finishes to the one computed without offload`, async (t) => {
    const rule = `-i --tun-type gue --tun-port 6080 ${flag}`;
    const results: Uint8Array[] = [];
    for (const offload of [true, false]) {
      const td = new OffloadDirector(offload);
      await td.rules(`-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r ${RS}:80 ${rule}\n`);
      td.run(buildTcp(fromClient({ sport: 40060, dport: 80, flags: SYN, seq: 1 })), 0);
      const o = td.run(buildTcp(fromClient({ sport: 40060, dport: 80, flags: ACK, seq: 2, ack: 9, ipId: 7, payload: payloadOf(900, 5),
        l4Checksum: 'partial' })), FRAME_CSUM_NOT_READY);
      t.equal(o.verdict, 'forward', `offload ${offload}: forwarded`);
      if (offload) {
        t.same([o.flags & FRAME_CSUM_NOT_READY, o.csumStart, o.csumOffset], [FRAME_CSUM_NOT_READY, 34, 6], 'partial at the outer UDP header');
        finishAt(o.frame, o.csumStart, o.csumOffset);
      } else {
        t.equal(o.flags & FRAME_CSUM_NOT_READY, 0, 'complete');
      }
      const i = info(o.frame);
      t.ok(l4ChecksumOk(o.frame, 4, 14, 17, i.l4Off, i.l4Len), `offload ${offload}: the outer UDP checksum is right`);
      results.push(o.frame);
    }
    // Same tunnel source port seed? Both directors hash the flow with their own seed: compare all but the UDP source port and checksum.
    const [a, b] = results.map((f) => { const c = Uint8Array.from(f); wr16(c, 34, 0); wr16(c, 40, 0); wr16(c, 18, 0); wr16(c, 24, 0); return c; });
    t.equal(hex(a!), hex(b!), 'the same packet either way (source port, IDs and checksums aside)');
  });
}

t.test('TUN (GUE remcsum) without offload after it: segments cut here, as before', async (t) => {
  const o = await superFrameThrough(false, GUE_REMCSUM, 40051, payloadOf(5000, 37), 1400);
  t.same([o.verdict, o.segs.length, o.flags & (FRAME_GSO | FRAME_CSUM_NOT_READY)], ['forward', 4, 0], 'four complete segments, no GSO');
  t.ok(o.segs.every((s) => { const i = info(s); return l4ChecksumOk(s, 4, 14, 17, i.l4Off, i.l4Len) && i.ipLen <= 1500; }),
    'each with its outer UDP checksum, within the MTU');
});

t.test('TUN (GUE remcsum) super-frames: the GUE option counts against the tunnel MTU', async (t) => {
  const td = new OffloadDirector(true);
  await td.rules(`-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r ${RS}:80 ${GUE_REMCSUM}\n`);
  td.run(buildTcp(fromClient({ sport: 40052, dport: 80, flags: SYN, seq: 1 })), 0);
  // 1500 - 20 (outer IP) - 8 (UDP) - 12 (GUE + option) = 1460: 40 header bytes + 1420 payload fit, 1421 do not.
  const fits = td.run(buildTcp(fromClient({ sport: 40052, dport: 80, flags: ACK, seq: 2, ack: 9, payload: payloadOf(5000, 3), l4Checksum: 'partial' })),
    FRAME_CSUM_NOT_READY | FRAME_GSO, GSO_TCPV4, 1420);
  t.same([fits.verdict, fits.gsoSize], ['forward', 1472], 'MSS 1420: sent, 1472-byte chunks');
  const big = td.run(buildTcp(fromClient({ sport: 40052, dport: 80, flags: ACK, seq: 5002, ack: 9, payload: payloadOf(5000, 4), l4Checksum: 'partial' })),
    FRAME_CSUM_NOT_READY | FRAME_GSO, GSO_TCPV4, 1421);
  t.same([big.verdict, big.reason], ['drop', 'frag-needed'], 'MSS 1421: frag-needed');
  t.equal(rd16(big.tx[0]!, info(big.tx[0]!).l4Off + 6), 1460, 'reporting the tunnel MTU with the option');
});

void V_FORWARD;
