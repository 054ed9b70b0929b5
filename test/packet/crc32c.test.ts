import t from 'tap';
import { buildSctp } from '../../src/packet/build.js';
import { crc32c, crc32cUpdate, sctpChecksumCompute, sctpChecksumOk, sctpChecksumRead, sctpChecksumSet } from '../../src/packet/crc32c.js';
import { PacketInfo, PARSE_OK } from '../../src/packet/info.js';
import { parseFrame } from '../../src/packet/parse.js';
import { xorshift32 } from './corpus.js';

/** Bit-at-a-time reflected CRC32c, straight from the definition (no tables). */
function crcBitwise(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of b) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

t.test('standard check value and RFC 3720 B.4 vectors', async (t) => {
  t.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  t.equal(crc32c(new Uint8Array(32)), 0x8a9136aa, '32 zero bytes (wire: aa 36 91 8a)');
  t.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43, '32 0xff bytes');
  t.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e, 'incrementing');
  t.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c, 'decrementing');
  t.equal(crc32c(new Uint8Array(0)), 0);
});

t.test('table-driven CRC == bitwise definition for random data, offsets and chaining', async (t) => {
  const rnd = xorshift32(2024);
  let bad = 0;
  for (let k = 0; k < 500; k++) {
    const b = new Uint8Array(rnd() % 200);
    for (let i = 0; i < b.length; i++) b[i] = rnd();
    const off = b.length ? rnd() % b.length : 0;
    const len = b.length - off;
    if (crc32c(b, off, len) !== crcBitwise(b.subarray(off))) bad++;
    const cut = len ? rnd() % len : 0;
    const chained = ~crc32cUpdate(crc32cUpdate(0xffffffff, b, off, cut), b, off + cut, len - cut) >>> 0;
    if (chained !== crcBitwise(b.subarray(off))) bad++;
  }
  t.equal(bad, 0);
});

t.test('SCTP checksum: CRC over the packet with a zero field, stored least significant byte first', async (t) => {
  const f = buildSctp({ chunk: 'data', payload: 'The quick brown fox' });
  const info = new PacketInfo();
  t.equal(parseFrame(f, 0, f.length, info), PARSE_OK);
  const sctp = f.slice(info.l4Off, info.l4Off + info.l4Len);
  const field = sctp.slice(8, 12);
  sctp.fill(0, 8, 12);
  const want = crcBitwise(sctp);
  t.same([...field], [want & 0xff, (want >>> 8) & 0xff, (want >>> 16) & 0xff, want >>> 24], 'little-endian in the field');
  t.equal(sctpChecksumRead(f, info.l4Off), want);
  t.equal(sctpChecksumCompute(f, info.l4Off, info.l4Len), want, 'the stored value does not affect the computation');
  t.ok(sctpChecksumOk(f, info.l4Off, info.l4Len));

  const g = f.slice();
  g[g.length - 1] ^= 0x40;
  t.notOk(sctpChecksumOk(g, info.l4Off, info.l4Len), 'one flipped bit is detected');
  t.equal(sctpChecksumSet(g, info.l4Off, info.l4Len), sctpChecksumCompute(g, info.l4Off, info.l4Len));
  t.ok(sctpChecksumOk(g, info.l4Off, info.l4Len));
  t.notOk(sctpChecksumOk(g, info.l4Off, 11), 'shorter than the common header');
});
