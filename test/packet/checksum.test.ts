import t from 'tap';
import { buildSctp, buildTcp, buildUdp, buildIcmpEcho, type FrameOptions } from '../../src/packet/build.js';
import { rd16, rd32, wr16, wr32 } from '../../src/packet/bytes.js';
import {
  completePartialChecksum, csumAdd, csumFinish, csumFold, csumUpdate16, csumUpdate32, csumUpdateAddr6,
  csumUpdateAddr6At, ipv4HeaderChecksum, ipv4HeaderChecksumOk, l4Checksum, l4ChecksumOk, l4ChecksumOkInfo,
  pseudoSum, pseudoSumAt, setIpv4HeaderChecksum, setL4ChecksumInfo, udpCsumNonZero,
} from '../../src/packet/checksum.js';
import { sctpChecksumOk } from '../../src/packet/crc32c.js';
import { PacketInfo, PARSE_OK } from '../../src/packet/info.js';
import { parseFrame } from '../../src/packet/parse.js';
import { xorshift32 } from './corpus.js';

const hex = (s: string) => Uint8Array.from(s.replace(/\s+/g, '').match(/../g)!.map((b) => parseInt(b, 16)));

/** Textbook RFC 1071 loop: add words one at a time with end-around carry. Independent of csumAdd's blocking. */
function naiveSum(b: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i += 2) {
    s += (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0);
    s = (s & 0xffff) + (s >>> 16);
  }
  return s;
}

function parsed(f: Uint8Array): PacketInfo {
  const info = new PacketInfo();
  if (parseFrame(f, 0, f.length, info) !== PARSE_OK) throw new Error('parse failed');
  return info;
}

t.test('RFC 1071 section 3 numerical example', async (t) => {
  const b = hex('0001 f203 f4f5 f6f7');
  t.equal(csumFold(csumAdd(b, 0, 8, 0)), 0xddf2);
  t.equal(csumFinish(csumAdd(b, 0, 8, 0)), 0x220d);
  // Byte-order independence (RFC 1071 2.B): the swapped data sums to the swapped result.
  const sw = hex('0100 03f2 f5f4 f7f6');
  t.equal(csumFold(csumAdd(sw, 0, 8, 0)), 0xf2dd);
});

t.test('IPv4 header checksum of a well-known header (c0a8:0001 -> c0a8:00c7)', async (t) => {
  const h = hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7');
  t.equal(ipv4HeaderChecksum(h, 0), 0xb861);
  t.ok(ipv4HeaderChecksumOk(h, 0));
  h[8] = 0x3f; // TTL decremented, checksum not updated
  t.notOk(ipv4HeaderChecksumOk(h, 0));
  t.equal(setIpv4HeaderChecksum(h, 0), 0xb961);
  t.ok(ipv4HeaderChecksumOk(h, 0));
});

t.test('RFC 1624 section 4 example: eqn. 3 gives 0x0000, not 0xffff', async (t) => {
  t.equal(csumUpdate16(0xdd2f, 0x5555, 0x3285), 0x0000);
});

t.test('csumAdd equals the textbook loop for random buffers, offsets, odd lengths, chaining, 64 KiB+', async (t) => {
  const rnd = xorshift32(7);
  let bad = 0;
  for (let k = 0; k < 300; k++) {
    const n = k < 5 ? 70_000 + k : rnd() % 300;
    const b = new Uint8Array(n + 8);
    for (let i = 0; i < b.length; i++) b[i] = k % 7 === 0 ? 0xff : rnd();
    const off = rnd() % 8;
    if (csumFold(csumAdd(b, off, n, 0)) !== naiveSum(b, off, n)) bad++;
    // Chain: an even-length head, then the rest.
    const cut = (rnd() % (n + 1)) & ~1;
    if (csumFold(csumAdd(b, off + cut, n - cut, csumAdd(b, off, cut, 0))) !== naiveSum(b, off, n)) bad++;
    // A large starting sum is accepted.
    if (csumFold(csumAdd(b, off, n, 0xfffffff0)) !== csumFold(naiveSum(b, off, n) + csumFold(0xfffffff0))) bad++;
  }
  t.equal(bad, 0);
  t.equal(csumFold(csumAdd(new Uint8Array(0), 0, 0, 0)), 0);
  t.equal(csumFold(csumAdd(Uint8Array.of(0xab), 0, 1, 0)), 0xab00, 'odd byte is the high byte');
});

function frameKinds(): Array<[string, FrameOptions & { kind: 'tcp' | 'udp' }]> {
  return [
    ['tcp4', { kind: 'tcp' }],
    ['udp4', { kind: 'udp' }],
    ['tcp6', { kind: 'tcp', family: 6 }],
    ['udp6', { kind: 'udp', family: 6 }],
  ];
}

t.test('incremental updates == full recompute over many random NAT-style rewrites', async (t) => {
  const rnd = xorshift32(0xc0ffee);
  let rewrites = 0;
  const mismatches: string[] = [];
  for (const [name, o] of frameKinds()) {
    for (let round = 0; round < 250; round++) {
      const payload = new Uint8Array(rnd() % 64);
      for (let i = 0; i < payload.length; i++) payload[i] = rnd();
      const f = o.kind === 'tcp' ? buildTcp({ ...o, payload, seq: rnd(), ack: rnd() }) : buildUdp({ ...o, payload });
      const info = parsed(f);
      const l3 = info.l3Off, l4 = info.l4Off;
      const co = l4 + (o.kind === 'tcp' ? 16 : 6);
      for (let step = 0; step < 8; step++) {
        const what = rnd() % 4;
        let c = rd16(f, co);
        if (what === 0 || what === 1) {
          // Port rewrite (sport or dport).
          const at = l4 + 2 * what;
          const nv = rnd() & 0xffff;
          c = csumUpdate16(c, rd16(f, at), nv);
          wr16(f, at, nv);
        } else if (info.af === 4) {
          // Address rewrite: the L4 checksum covers it through the pseudo-header, the IP header checksum directly.
          const at = l3 + (what === 2 ? 12 : 16);
          const nv = rnd();
          c = csumUpdate32(c, rd32(f, at), nv);
          wr16(f, l3 + 10, csumUpdate32(rd16(f, l3 + 10), rd32(f, at), nv));
          wr32(f, at, nv);
        } else {
          const at = l3 + (what === 2 ? 8 : 24);
          const nv = Uint32Array.of(rnd(), rnd(), rnd(), rnd());
          const old = Uint32Array.of(rd32(f, at), rd32(f, at + 4), rd32(f, at + 8), rd32(f, at + 12));
          const viaWords = csumUpdateAddr6(c, old, nv);
          c = csumUpdateAddr6At(c, f, at, nv);
          if (viaWords !== c) mismatches.push(`${name}: addr6 word/buffer forms differ`);
          for (let i = 0; i < 4; i++) wr32(f, at + 4 * i, nv[i]!);
        }
        if (o.kind === 'udp') c = udpCsumNonZero(c);
        wr16(f, co, c);
        rewrites++;
        const full = l4Checksum(f, info.af as 4 | 6, l3, info.proto, l4, info.l4Len);
        if (full !== c) mismatches.push(`${name}: incremental ${c.toString(16)} full ${full.toString(16)}`);
        if (!l4ChecksumOk(f, info.af as 4 | 6, l3, info.proto, l4, info.l4Len)) mismatches.push(`${name}: verify failed`);
        if (info.af === 4 && !ipv4HeaderChecksumOk(f, l3)) mismatches.push(`${name}: ip header`);
      }
    }
  }
  t.same(mismatches.slice(0, 10), []);
  t.equal(rewrites, 4 * 250 * 8);
});

t.test('csumUpdate16/32 on random words of random data == recompute (covers the 0x0000/0xffff edge)', async (t) => {
  const rnd = xorshift32(99);
  let bad = 0;
  const b = new Uint8Array(40);
  for (let k = 0; k < 20_000; k++) {
    for (let i = 0; i < b.length; i++) b[i] = k % 100 === 0 ? 0xff : rnd();
    const check = csumFinish(csumAdd(b, 0, 40, 0));
    const at = (rnd() % 10) * 4;
    if (k & 1) {
      const nv = rnd() & 0xffff;
      const upd = csumUpdate16(check, rd16(b, at), nv);
      wr16(b, at, nv);
      if (upd !== csumFinish(csumAdd(b, 0, 40, 0))) bad++;
    } else {
      const nv = k % 3 === 0 ? 0 : rnd();
      const upd = csumUpdate32(check, rd32(b, at), nv);
      wr32(b, at, nv);
      if (upd !== csumFinish(csumAdd(b, 0, 40, 0))) bad++;
    }
  }
  t.equal(bad, 0);
});

t.test('partial checksum completion == the checksum a full computation gives', async (t) => {
  const rnd = xorshift32(4242);
  let bad = 0, n = 0;
  for (const [, o] of frameKinds()) {
    for (let k = 0; k < 100; k++) {
      const payload = new Uint8Array(rnd() % 101);
      for (let i = 0; i < payload.length; i++) payload[i] = rnd();
      const opts = { ...o, payload, sport: rnd() & 0xffff, padTo: k % 3 === 0 ? 60 : undefined };
      const build = o.kind === 'tcp' ? buildTcp : buildUdp;
      const want = build({ ...opts, l4Checksum: 'valid' });
      const f = build({ ...opts, l4Checksum: 'partial' });
      const info = parsed(f);
      // What the sender left: the folded pseudo-header sum, which is not a valid checksum.
      const co = info.l4Off + (o.kind === 'tcp' ? 16 : 6);
      if (rd16(f, co) !== csumFold(pseudoSum(info.af as 4 | 6, info.saddr, info.daddr, info.proto, info.l4Len))) bad++;
      if (!completePartialChecksum(f, info)) bad++;
      if (Buffer.compare(Buffer.from(f), Buffer.from(want)) !== 0) bad++;
      if (!l4ChecksumOkInfo(f, info)) bad++;
      n++;
    }
  }
  t.equal(bad, 0, `${n} frames`);
});

t.test('partial SCTP (CRC offloaded, field zero) is completed with the CRC32c', async (t) => {
  for (const family of [4, 6] as const) {
    const want = buildSctp({ family, chunk: 'data', payload: 'abcdefg' });
    const f = buildSctp({ family, chunk: 'data', payload: 'abcdefg', l4Checksum: 'partial' });
    const info = parsed(f);
    t.notOk(sctpChecksumOk(f, info.l4Off, info.l4Len), 'not valid before');
    t.ok(completePartialChecksum(f, info));
    t.same(f, want, `IPv${family}`);
  }
});

t.test('completePartialChecksum leaves what it cannot complete alone', async (t) => {
  const icmp = buildIcmpEcho({});
  const copy = icmp.slice();
  t.notOk(completePartialChecksum(icmp, parsed(icmp)));
  t.same(icmp, copy);
});

t.test('UDP: a computed 0 is sent as 0xffff; 0 means "none" over IPv4 only', async (t) => {
  // Two payload bytes chosen so the checksum would come out as 0: with w = 0 the checksum is c,
  // and adding w = c makes the one's-complement sum 0xffff.
  const f = buildUdp({ payload: Uint8Array.of(0, 0), l4Checksum: 'zero' });
  const info = parsed(f);
  const sum = csumAdd(f, info.l4Off, info.l4Len, pseudoSumAt(f, 4, info.l3Off, 17, info.l4Len));
  const c = csumFinish(sum);
  t.not(c, 0);
  wr16(f, info.l4Off + 8, c);
  t.equal(l4Checksum(f, 4, info.l3Off, 17, info.l4Off, info.l4Len), 0xffff);
  t.ok(setL4ChecksumInfo(f, info));
  t.equal(rd16(f, info.l4Off + 6), 0xffff);
  t.ok(l4ChecksumOkInfo(f, info), '0xffff verifies');

  const none4 = buildUdp({ l4Checksum: 'zero' });
  t.ok(l4ChecksumOkInfo(none4, parsed(none4)), 'IPv4 UDP without checksum is acceptable');
  const none6 = buildUdp({ family: 6, l4Checksum: 'zero' });
  t.notOk(l4ChecksumOkInfo(none6, parsed(none6)), 'IPv6 UDP must carry a checksum');
});

t.test('bad checksums are detected for every protocol', async (t) => {
  for (const f of [
    buildTcp({ l4Checksum: 'bad' }), buildUdp({ family: 6, l4Checksum: 'bad' }), buildIcmpEcho({ l4Checksum: 'bad' }),
    buildIcmpEcho({ family: 6, l4Checksum: 'bad' }), buildSctp({ l4Checksum: 'bad' }),
  ]) {
    const info = parsed(f);
    t.notOk(l4ChecksumOkInfo(f, info), `proto ${info.proto} bad`);
    t.ok(setL4ChecksumInfo(f, info));
    t.ok(l4ChecksumOkInfo(f, info), `proto ${info.proto} fixed`);
  }
  const ipBad = buildTcp({ ipChecksum: 'bad' });
  t.notOk(ipv4HeaderChecksumOk(ipBad, 14));
});
