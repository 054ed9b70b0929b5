/**
 * `ulvs tun-decap` on GUE remote-checksum UDP GSO super-frames (what a director with
 * --tun-type gue --tun-remcsum sends for a TCP super-frame: one outer header, then chunks of
 * gso_size bytes, each a whole GUE packet once the kernel segments it), and on GUE remcsum
 * frames whose outer checksum arrived partial. Frames go through TunDecapCore (the per-frame work
 * of TunDecap.poll) into a TunWriter whose device is a recorder, so no namespace is needed: what
 * reaches the TUN device, with which virtio_net_hdr, and what is counted. Last, the round trip:
 * what the director's own GUE remcsum GSO transmitter (xmit/gue-gso.ts) sends, taken apart here.
 */
import t from 'tap';
import {
  Decapsulator, TunDecapCore, DECAP_REASON_NAMES, DECAP_OK,
} from '../../src/lab/tun-decap.js';
import { TunWriter } from '../../src/lab/tun-gro.js';
import {
  FrameBatch, TxQueue, VNET_SLOT_SIZE, FRAME_CSUM_NOT_READY, FRAME_CSUM_VALID, FRAME_GSO, FRAME_SEGMENTED, GSO_TCPV4, GSO_UDP_L4,
  SEG_GAP, VERDICT_NAMES,
} from '../../src/io/batch.js';
import { TestDirector, CLIENT_MAC, DIR_MAC } from '../core/harness.js';
import { buildTcp, buildUdp, ipPacketOf, type TcpOptions } from '../../src/packet/build.js';
import { ipv4HeaderChecksumOk, l4ChecksumOk, setIpv4HeaderChecksum } from '../../src/packet/checksum.js';
import {
  Recorder, gueFrame, gueGsoFrame, hex, ipipFrame, payloadOf, rd16, rd32, remcsumFor, type GueGsoFrame, type Outer, type Write,
} from './tunnel-frames.js';

const OUT4: Outer = { saddr: '192.0.2.1', daddr: '192.0.2.10' };
const OUT6: Outer = { saddr: '2001:db8::1', daddr: '2001:db8::10' };
const ACK = 0x10;


/** TCP segments client -> VIP of `sizes` payload bytes with consecutive sequence numbers, checksums partial (a sender with offload). */
function tcpRun(sizes: number[], seq = 1000, extra: Partial<TcpOptions> = {}): { inners: Uint8Array[]; payload: Uint8Array } {
  const payload = payloadOf(sizes.reduce((a, b) => a + b, 0), seq);
  const inners: Uint8Array[] = [];
  let at = 0;
  sizes.forEach((n, k) => {
    inners.push(ipPacketOf(buildTcp({
      saddr: '198.51.100.7', daddr: '203.0.113.100', sport: 40000, dport: 80, seq: seq + at, ack: 777, flags: ACK, df: true,
      ipId: 100 + k, payload: payload.subarray(at, at + n), l4Checksum: 'partial', ...extra,
    })));
    at += n;
  });
  return { inners, payload };
}

/** The checksum finished as the kernel would (skb_checksum_help) from csum_start / csum_offset. */
function finish(pkt: Uint8Array, start: number, offset: number): Uint8Array {
  const p = pkt.slice();
  let s = 0;
  for (let i = start; i < p.length; i += 2) s += (p[i]! << 8) | (i + 1 < p.length ? p[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  const c = ~s & 0xffff;
  p[start + offset] = c >>> 8; p[start + offset + 1] = c & 0xff;
  return p;
}
const finishWrite = (w: Write): Uint8Array => finish(w.pkt, w.hdr[6]! | (w.hdr[7]! << 8), w.hdr[8]! | (w.hdr[9]! << 8));

/** A valid IPv4 header and TCP/UDP checksum (IPv6: the transport checksum). */
function checksumsOk(pkt: Uint8Array): boolean {
  const v6 = pkt[0]! >>> 4 === 6;
  const l4 = v6 ? 40 : (pkt[0]! & 15) << 2;
  const proto = v6 ? pkt[6]! : pkt[9]!;
  return (v6 || ipv4HeaderChecksumOk(pkt, 0, l4)) && l4ChecksumOk(pkt, v6 ? 6 : 4, 0, proto, l4, pkt.length - l4);
}

interface Run { rec: Recorder; core: TunDecapCore; reasons: Record<string, number>; stats: Record<string, number> }

/** Puts each frame in a batch slot with its offload metadata, runs them through one TunDecapCore, flushes. */
function run(frames: Array<{ f: GueGsoFrame | Uint8Array; flags?: number; gsoType?: number; gsoSize?: number; csumStart?: number }>,
  o: { merge?: boolean } = {}): Run {
  const rec = new Recorder();
  const core = new TunDecapCore(new Decapsulator({ guePorts: [6080], localAddrs: ['192.0.2.10', '2001:db8::10'] }),
    new TunWriter(rec, o.merge ?? true));
  const b = new FrameBatch(frames.length, undefined, VNET_SLOT_SIZE);
  frames.forEach((x, i) => {
    const g = x.f instanceof Uint8Array ? null : x.f;
    if (!b.put(i, g ? g.frame : x.f as Uint8Array, x.flags ?? (FRAME_GSO | FRAME_CSUM_NOT_READY))) throw new Error('frame too long');
    b.csumStart[i] = x.csumStart ?? g?.csumStart ?? 0;
    b.csumOffset[i] = g?.csumOffset ?? 6;
    b.gsoType[i] = x.gsoType ?? GSO_UDP_L4;
    b.gsoSize[i] = x.gsoSize ?? g?.gsoSize ?? 0;
  });
  for (let i = 0; i < frames.length; i++) core.frame(b, i);
  core.flush();
  const reasons = Object.fromEntries(DECAP_REASON_NAMES.map((n, i) => [n, core.stats.reasons[i]!]).filter(([, v]) => v !== 0));
  const stats = Object.fromEntries(core.statsText().split(/\s+/).map((kv) => kv.split('=')).map(([k, v]) => [k!, Number(v)]));
  return { rec, core, reasons, stats };
}

t.test('a GUE UDP GSO super-frame of TCP segments reaches the stack as one TCP super-frame', async (t) => {
  const sizes = [...new Array<number>(9).fill(1400), 300];
  const { inners, payload } = tcpRun(sizes, 5000);
  const g = gueGsoFrame(OUT4, inners, { port: 6080 });
  t.equal(g.gsoSize, 12 + 40 + 1400, 'gso_size: GUE remcsum header + inner headers + MSS');
  const { rec, reasons, stats } = run([{ f: g }]);
  t.same(reasons, { ok: 10 }, 'each of the ten chunks decapsulated');
  t.equal(rec.writes.length, 1, 'one TUN write');
  const w = rec.writes[0]!;
  t.same(w.hdr, [1, 1, 40, 0, 1400 & 0xff, 1400 >>> 8, 20, 0, 16, 0],
    'virtio_net_hdr: NEEDS_CSUM, GSO TCPV4, hdr_len 40, gso_size 1400, csum_start 20, csum_offset 16');
  t.equal(rd16(w.pkt, 2), 40 + payload.length, 'IP total length covers every chunk\'s payload');
  t.equal(rd32(w.pkt, 24), 5000, 'the first segment\'s sequence number');
  t.equal(hex(w.pkt.subarray(40)), hex(payload), 'the payloads of all chunks, in order');
  t.ok(checksumsOk(finishWrite(w)), 'the partial TCP checksum finishes to the right value');
  t.same([stats['frames'], stats['injected'], stats['gso-frames'], stats['gso-chunks'], stats['writes'], stats['super-frames'], stats['merged']],
    [1, 10, 1, 10, 1, 1, 10], 'statsText: 1 frame, 10 injected, 1 GSO frame of 10 chunks, 1 write merging 10');
});

t.test('without merging, each chunk\'s inner packet is written alone with its checksum left partial', async (t) => {
  const { inners } = tcpRun([1000, 1000, 1000, 250], 1);
  const { rec, reasons } = run([{ f: gueGsoFrame(OUT4, inners, { port: 6080 }) }], { merge: false });
  t.same(reasons, { ok: 4 });
  t.equal(rec.writes.length, 4, 'four writes');
  rec.writes.forEach((w, k) => {
    t.same(w.hdr, [1, 0, 38, 0, 0, 0, 20, 0, 16, 0], `segment ${k}: NEEDS_CSUM from the TCP header, checksum field at +16`);
    t.equal(hex(w.pkt), hex(inners[k]!), `segment ${k}: exactly the inner packet (the vnet header written in front broke nothing)`);
    t.notOk(checksumsOk(w.pkt), `segment ${k}: the checksum is still the pseudo-header sum`);
    t.ok(checksumsOk(finishWrite(w)), `segment ${k}: finished by the kernel it is right`);
  });
});

t.test('a super-frame of one chunk', async (t) => {
  const { inners } = tcpRun([700], 42);
  // The director declares its usual gso_size; the only chunk is shorter.
  const g = gueGsoFrame(OUT4, inners, { port: 6080, gsoSize: 12 + 40 + 1448 });
  const { rec, reasons, stats } = run([{ f: g }]);
  t.same(reasons, { ok: 1 });
  t.equal(rec.writes.length, 1);
  t.same(rec.writes[0]!.hdr, [1, 0, 38, 0, 0, 0, 20, 0, 16, 0], 'written alone, checksum partial');
  t.equal(hex(rec.writes[0]!.pkt), hex(inners[0]!), 'the inner packet');
  t.same([stats['gso-frames'], stats['gso-chunks'], stats['super-frames']], [1, 1, 0]);
});

t.test('IPv6 outside and inside: decapsulated per chunk; IPv6 inner packets are written alone', async (t) => {
  const payload = payloadOf(3 * 800, 7);
  const inners = [0, 1, 2].map((k) => ipPacketOf(buildTcp({
    saddr: '2001:db8:c::7', daddr: '2001:db8:f::100', sport: 40001, dport: 80, seq: 1 + k * 800, flags: ACK,
    payload: payload.subarray(k * 800, (k + 1) * 800), l4Checksum: 'partial',
  })));
  const { rec, reasons } = run([{ f: gueGsoFrame(OUT6, inners, { port: 6080 }) }]);
  t.same(reasons, { ok: 3 });
  t.same(rec.writes.map((w) => hex(w.pkt)), inners.map(hex), 'the three inner packets, in order');
  t.ok(rec.writes.every((w) => w.hdr[6] === 40 && w.hdr[8] === 16), 'partial from the TCP header behind the 40-byte IPv6 header');
  t.ok(rec.writes.every((w) => checksumsOk(finishWrite(w))), 'each finishes right');
});

t.test('UDP datagrams inside merge into a UDP_L4 super-frame again', async (t) => {
  const pays = [0, 1, 2, 3].map((k) => payloadOf(k === 3 ? 100 : 500, k + 1));
  const inners = pays.map((p, k) => ipPacketOf(buildUdp({
    saddr: '198.51.100.7', daddr: '203.0.113.100', sport: 40002, dport: 53, df: true, ipId: k, payload: p, l4Checksum: 'partial',
  })));
  t.same(remcsumFor(inners[0]!), [20, 26], 'the remote checksum describes the UDP checksum');
  const { rec, reasons } = run([{ f: gueGsoFrame(OUT4, inners, { port: 6080 }) }]);
  t.same(reasons, { ok: 4 });
  t.equal(rec.writes.length, 1, 'one write');
  t.same(rec.writes[0]!.hdr.slice(0, 2), [1, GSO_UDP_L4], 'NEEDS_CSUM, GSO UDP_L4');
  t.equal(hex(rec.writes[0]!.pkt.subarray(28)), hex(Buffer.concat(pays)), 'the datagrams\' payloads, in order');
});

t.test('a bad chunk is refused alone; the segments around it still arrive, in order', async (t) => {
  const sizes = new Array<number>(6).fill(1000);
  const cases: Array<[string, (f: GueGsoFrame) => void, string]> = [
    ['GUE version 2', (g) => { g.frame[g.chunkOff[2]!] = 0x80 | 2; }, 'unsupported'],
    ['an unknown GUE flag', (g) => { g.frame[g.chunkOff[2]! + 2] = 0x80; }, 'unsupported'],
    ['a GUE control message', (g) => { g.frame[g.chunkOff[2]!] |= 0x20; }, 'gue-control'],
    ['an unknown inner protocol', (g) => { g.frame[g.chunkOff[2]! + 1] = 47; }, 'unsupported'],
    ['an inner length running into the next chunk', (g) => {
      const ip = g.chunkOff[2]! + 12;
      const len = rd16(g.frame, ip + 2) + 12;
      g.frame[ip + 2] = len >>> 8; g.frame[ip + 3] = len & 0xff;
      setIpv4HeaderChecksum(g.frame, ip, 20);
    }, 'bad-inner'],
    ['a remote checksum field beyond the inner packet', (g) => { g.frame[g.chunkOff[2]! + 10] = 0x7f; }, 'bad-inner'],
  ];
  for (const [what, spoil, why] of cases) {
    const { inners, payload } = tcpRun(sizes, 1);
    const g = gueGsoFrame(OUT4, inners, { port: 6080 });
    spoil(g);
    const { rec, reasons } = run([{ f: g }]);
    t.same(reasons, { ok: 5, [why]: 1 }, `${what}: chunk 2 refused as ${why}, the five others taken`);
    t.same(rec.writes.map((w) => [rd32(w.pkt, 24), rd16(w.pkt, 2) - 40]), [[1, 2000], [3001, 3000]],
      `${what}: segments 0-1 and 3-5 as two super-frames (the gap ends the first)`);
    t.equal(hex(Buffer.concat(rec.writes.map((w) => w.pkt.subarray(40)))), hex(Buffer.concat([payload.subarray(0, 2000), payload.subarray(3000)])),
      `${what}: their payloads`);
    t.ok(rec.writes.every((w) => checksumsOk(finishWrite(w))), `${what}: checksums finish right`);
  }
});

t.test('a truncated last chunk', async (t) => {
  for (const [what, keep, why] of [
    ['its inner packet cut short', 12 + 40 + 100, 'bad-inner'],
    ['its GUE header cut short', 3, 'bad-outer'],
  ] as const) {
    const { inners } = tcpRun([1000, 1000, 1000, 600], 1);
    const g = gueGsoFrame(OUT4, inners, { port: 6080 });
    // Cut the frame inside the last chunk, with outer lengths (and checksums) that say so.
    const end = g.chunkOff[3]! + keep;
    const f = g.frame.slice(0, end);
    const l3 = 14;
    f[l3 + 2] = (end - l3) >>> 8; f[l3 + 3] = (end - l3) & 0xff;
    setIpv4HeaderChecksum(f, l3, 20);
    const ulen = end - g.csumStart;
    f[g.csumStart + 4] = ulen >>> 8; f[g.csumStart + 5] = ulen & 0xff;
    const { rec, reasons, stats } = run([{ f: { ...g, frame: f } }]);
    t.same(reasons, { ok: 3, [why]: 1 }, `${what}: the last chunk refused as ${why}`);
    t.equal(stats['gso-chunks'], 4, `${what}: four chunks counted`);
    t.equal(rec.writes.length, 1, `${what}: one write`);
    t.equal(rd16(rec.writes[0]!.pkt, 2), 40 + 3000, `${what}: the three whole segments, merged`);
  }
});

t.test('super-frames refused as a whole', async (t) => {
  const { inners } = tcpRun([1000, 1000, 500], 1);
  const g = gueGsoFrame(OUT4, inners, { port: 6080 });
  const wrongSum = g.frame.slice();
  wrongSum[14 + 8] -= 1; // TTL changed after the header checksum was computed
  const cases: Array<[string, Parameters<typeof run>[0][number], string]> = [
    ['gso_size 0', { f: g, gsoSize: 0 }, 'bad-gso'],
    ['a partial checksum elsewhere than the outer UDP one', { f: g, csumStart: g.csumStart + 8 }, 'bad-gso'],
    ['GSO type TCPV4 on a GUE frame', { f: g, gsoType: GSO_TCPV4 }, 'unsupported'],
    ['a complete outer UDP checksum nobody verified', { f: g, flags: FRAME_GSO }, 'unsupported'],
    ['UDP to a port that is not GUE', { f: gueGsoFrame(OUT4, inners, { port: 6081 }) }, 'not-tunnel'],
    ['to another host', { f: gueGsoFrame({ ...OUT4, daddr: '192.0.2.99' }, inners, { port: 6080 }) }, 'not-local'],
    ['a wrong outer IPv4 header checksum', { f: { ...g, frame: wrongSum } }, 'bad-checksum'],
    ['an IPIP frame', { f: ipipFrame(OUT4, inners[0]!), gsoType: GSO_TCPV4, gsoSize: 1000 }, 'unsupported'],
  ];
  for (const [what, frame, why] of cases) {
    const { rec, reasons, stats } = run([frame]);
    t.same(reasons, { [why]: 1 }, `${what}: ${why}`);
    t.equal(rec.writes.length, 0, `${what}: nothing written`);
    t.equal(stats['gso-frames'], 0, `${what}: not counted as a GSO frame`);
  }
});

t.test('a super-frame whose outer checksum the kernel verified: the inner checksums are completed here', async (t) => {
  const { inners } = tcpRun([1000, 1000, 400], 1);
  const { rec, reasons } = run([{ f: gueGsoFrame(OUT4, inners, { port: 6080 }), flags: FRAME_GSO | FRAME_CSUM_VALID }]);
  t.same(reasons, { ok: 3 });
  t.equal(rec.writes.length, 3, 'written one by one: a computed checksum is neither partial nor verified');
  t.ok(rec.writes.every((w) => w.hdr[0] === 0), 'no NEEDS_CSUM');
  t.ok(rec.writes.every((w) => checksumsOk(w.pkt)), 'each TCP checksum is complete and right');
});

t.test('GUE remote checksum on a frame whose outer checksum is partial stays partial', async (t) => {
  const { inners } = tcpRun([1200], 9);
  const inner = inners[0]!;
  const frame = gueFrame(OUT4, inner, { port: 6080, remcsum: remcsumFor(inner), udpChecksum: 'valid' });
  const udp = 14 + 20;
  // Through the Decapsulator: the checksum's place is reported, the packet is not touched.
  const dec = new Decapsulator({ guePorts: [6080] });
  const buf = new Uint8Array(frame.length + 256);
  buf.set(frame, 128);
  t.equal(dec.decap(buf, 128, frame.length, true, udp, 6), DECAP_OK);
  t.same([dec.csumStart, dec.csumOffset], [20, 16], 'csum start = remcsum start (20), offset = field - start (16)');
  t.equal(hex(buf.subarray(dec.innerOff, dec.innerOff + dec.innerLen)), hex(inner), 'the inner packet unchanged: no sum taken');
  t.ok(checksumsOk(finish(inner, 20, 16)), 'finished as the kernel would, the checksum is right');
  // The same frame not partial (it crossed a wire, its checksum verified): completed here, as before.
  buf.set(frame, 128);
  t.equal(dec.decap(buf, 128, frame.length, false), DECAP_OK);
  t.equal(dec.csumStart, -1, 'not partial');
  t.ok(checksumsOk(buf.slice(dec.innerOff, dec.innerOff + dec.innerLen)), 'completed in place');
  // Through TunDecapCore into the TUN device: the vnet header asks the kernel to finish it.
  const { rec, reasons } = run([{ f: frame, flags: FRAME_CSUM_NOT_READY, csumStart: udp }]);
  t.same(reasons, { ok: 1 });
  t.same(rec.writes[0]!.hdr, [1, 0, 38, 0, 0, 0, 20, 0, 16, 0], 'NEEDS_CSUM, csum_start 20, csum_offset 16');
  t.ok(checksumsOk(finishWrite(rec.writes[0]!)), 'the finished checksum is right');
  // Partial remcsum segments of one flow merge (they could not when they were completed here).
  const run2 = tcpRun([1000, 1000, 1000], 50);
  const frames = run2.inners.map((p) => ({ f: gueFrame(OUT4, p, { port: 6080, remcsum: remcsumFor(p) }), flags: FRAME_CSUM_NOT_READY, csumStart: udp }));
  const r2 = run(frames);
  t.same(r2.reasons, { ok: 3 });
  t.equal(r2.rec.writes.length, 1, 'three frames, one super-frame');
  t.equal(hex(r2.rec.writes[0]!.pkt.subarray(40)), hex(run2.payload));
  t.ok(checksumsOk(finishWrite(r2.rec.writes[0]!)), 'its checksum finishes right');
});

t.test('round trip: the director\'s GUE remcsum UDP GSO frames come out as the client\'s TCP stream', async (t) => {
  const C = '10.0.0.1', VIP = '10.0.0.100', RS = '192.0.2.10', RS_MAC = '02:00:00:00:01:01';
  const td = new TestDirector({ neigh: { [RS]: RS_MAC, [C]: CLIENT_MAC } });
  await td.rules(`-A -t ${VIP}:80 -s rr\n-a -t ${VIP}:80 -r ${RS}:80 -i --tun-type gue --tun-port 6080 --tun-remcsum\n`);
  const b = new FrameBatch(1, undefined, VNET_SLOT_SIZE);
  b.txOffload = true; // an AF_PACKET backend with the vnet header: the frame may stay whole
  const q = new TxQueue(4);
  const fromClient = { srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: C, daddr: VIP, sport: 40060, dport: 80, df: true };
  const through = (f: Uint8Array, flags: number, mss = 0): void => {
    b.put(0, f, flags);
    b.count = 1;
    b.csumStart[0] = 34; b.csumOffset[0] = 16; b.gsoType[0] = mss ? GSO_TCPV4 : 0; b.gsoSize[0] = mss;
    td.d.engine.process(b, q);
  };
  through(buildTcp({ ...fromClient, flags: 0x02, seq: 1 }), 0);
  const payload = payloadOf(64000, 77);
  const mss = 1400;
  through(buildTcp({ ...fromClient, flags: ACK, seq: 2, ack: 9, payload, l4Checksum: 'partial' }), FRAME_CSUM_NOT_READY | FRAME_GSO, mss);
  t.equal(VERDICT_NAMES[b.verdict[0]!], 'forward', 'the director forwards the super-frame');
  t.equal(b.gsoType[0], GSO_UDP_L4, 'as UDP GSO');
  // Its parts (two: 64,000 bytes do not fit one outer IPv4 length), as AF_PACKET sends and a veth delivers them.
  const fl = b.flags[0]!;
  const parts: GueGsoFrame[] = [];
  const nParts = (fl & FRAME_SEGMENTED) !== 0 ? b.segs[0]! : 1;
  for (let k = 0; k < nParts; k++) {
    const o = b.off[0]! + k * b.segStride[0]!;
    const end = k + 1 < nParts ? o + b.segStride[0]! - SEG_GAP : b.off[0]! + b.len[0]!;
    parts.push({ frame: b.buf.slice(o, end), gsoSize: b.gsoSize[0]!, csumStart: b.csumStart[0]!, csumOffset: b.csumOffset[0]!, chunkOff: [] });
  }
  t.equal(parts.length, 2, 'two parts');
  const { rec, reasons, stats } = run(parts.map((f) => ({ f })));
  const n = Math.ceil(payload.length / mss);
  t.same(reasons, { ok: n }, `all ${n} chunks decapsulated`);
  t.same([stats['gso-frames'], stats['gso-chunks']], [2, n]);
  t.ok(rec.writes.length <= 3 && rec.writes.every((w) => w.hdr[1] === GSO_TCPV4), `merged again: ${rec.writes.length} TCP super-frames`);
  t.equal(hex(Buffer.concat(rec.writes.map((w) => w.pkt.subarray(40)))), hex(payload), 'the client\'s payload, in order');
  t.ok(rec.writes.every((w) => checksumsOk(finishWrite(w))), 'every checksum finishes right');
  t.ok(rec.writes.every((w) => rd32(w.pkt, 16) === 0x0a000064 && rd16(w.pkt, 22) === 80), 'to VIP:80');
});
