import t from 'tap';
import { foldAddr, hash32, hsiphash32, sipHashBytes, sipKey } from '../../src/sched/hash.js';
import { addr4 } from './fixtures.js';

t.test('hash32 = top bits of v * 0x61C88647 (values worked by hand)', async (t) => {
  // 1 * 0x61C88647 = 0x61C88647 -> top byte 0x61
  t.equal(hash32(1, 8), 0x61);
  // 2 * 0x61C88647 = 0xC3910C8E -> 0xC3
  t.equal(hash32(2, 8), 0xc3);
  // -0x61C88647 mod 2^32 = 0x9E3779B9 -> 0x9E
  t.equal(hash32(0xffffffff, 8), 0x9e);
  // top 10 bits of 0x61C88647 = 0b0110000111
  t.equal(hash32(1, 10), 0x187);
  t.equal(hash32(0, 10), 0);
  // 10.0.0.1 = 0x0A000001: 0x0A000000 * G contributes 0xC6000000 (0x47 * 10 = 0x2C6),
  // plus G = 0x127C88647 -> 0x27C88647 -> 0x27 = 39 (the reference's worked sh value)
  t.equal(hash32(addr4('10.0.0.1'), 8), 39);
  // further worked sh indexes from the reference (recent-kernel formula)
  t.equal(hash32(addr4('192.168.1.100'), 8), 89);
  t.equal(hash32(addr4('203.0.113.7'), 8), 124);
  t.equal(hash32((addr4('10.0.0.1') + 12345) >>> 0, 8), 134);
});

t.test('hash32 agrees with a BigInt evaluation of the formula', async (t) => {
  let x = 12345;
  for (let i = 0; i < 2000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    for (const bits of [8, 10]) {
      const want = Number(((BigInt(x) * 0x61c88647n) & 0xffffffffn) >> BigInt(32 - bits));
      if (hash32(x, bits) !== want) {
        t.fail(`hash32(${x}, ${bits})`);
        return;
      }
    }
  }
  t.pass('2000 values x 2 widths');
});

t.test('foldAddr: IPv4 word, IPv6 XOR of the four words', async (t) => {
  t.equal(foldAddr(4, Uint32Array.of(0x0a000001, 0xdead, 0xbeef, 1)), 0x0a000001);
  t.equal(foldAddr(6, Uint32Array.of(0x20010db8, 0, 0, 1)), (0x20010db8 ^ 1) >>> 0);
  t.equal(foldAddr(6, Uint32Array.of(0xffffffff, 0xffffffff, 0xffffffff, 0)), 0xffffffff);
});

// lib/siphash_kunit.c: key bytes 00..0f, input bytes 0..n-1 for vector n.
const KEY = sipKey(0x07060504, 0x03020100, 0x0f0e0d0c, 0x0b0a0908);

// SipHash-2-4 vectors (from the reference implementation, as used by the kernel's test)
const SIPHASH24: bigint[] = [
  0x726fdb47dd0e0e31n, 0x74f839c593dc67fdn, 0x0d6c8009d9a94f5an, 0x85676696d7fb7e2dn,
  0xcf2794e0277187b7n, 0x18765564cd99a68dn, 0xcbc9466e58fee3cen, 0xab0200f58b01d137n,
  0x93f5f5799a932462n, 0x9e0082df0ba9e4b0n, 0x7a5dbbc594ddb9f3n, 0xf4b32f46226bada7n,
  0x751e8fbc860ee5fbn, 0x14ea5627c0843d90n, 0xf723ca908e7af2een, 0xa129ca6149be45e5n,
  0x3f2acc7f57c29bdbn, 0x699ae9f52cbe4794n, 0x4bc1b3f0968dd39cn, 0xbb6dc91da77961bdn,
  0xbed65cf21aa2ee98n, 0xd0f2cbb02e3b67c7n, 0x93536795e3a33e88n, 0xa80c038ccd5ccec8n,
  0xb8ad50c6f649af94n, 0xbce192de8a85b8ean, 0x17d835b85bbb15f3n, 0x2f2e6163076bcfadn,
  0xde4daaaca71dc9a5n, 0xa6a2506687956571n, 0xad87a3535c49ef28n, 0x32d892fad841c342n,
  0x7127512f72f27ccen, 0xa7f32346f95978e3n, 0x12e0b01abb051238n, 0x15e034d40fa197aen,
  0x314dffbe0815a3b4n, 0x027990f029623981n, 0xcadcd4e59ef40c4dn, 0x9abfd8766a33735cn,
  0x0e3ea96b5304a7d0n, 0xad0c42d6fc585992n, 0x187306c89bc215a9n, 0xd4a60abcf3792b95n,
  0xf935451de4f21df2n, 0xa9538f0419755787n, 0xdb9acddff56ca510n, 0xd06c98cd5c0975ebn,
  0xe612a3cb9ecba951n, 0xc766e62cfcadaf96n, 0xee64435a9752fe72n, 0xa192d576b245165an,
  0x0a8787bf8ecb74b2n, 0x81b3e73d20b49b6fn, 0x7fa8220ba3b2ecean, 0x245731c13ca42499n,
  0xb78dbfaf3a8d83bdn, 0xea1ad565322a1a0bn, 0x60e61c23a3795013n, 0x6606d7e446282b93n,
  0x6ca4ecb15c5f91e1n, 0x9f626da15c9625f3n, 0xe51b38608ef25f57n, 0x958a324ceb064572n,
];

// hsiphash on 64-bit kernels (SipHash-1-3, low 32 bits)
const HSIPHASH64: number[] = [
  0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328, 0x49533b67, 0xc59f22a7, 0x9bb11140,
  0x8d299a8e, 0x6c063de4, 0x92ff097f, 0xf94dc352, 0x57b4d9a2, 0x1229ffa7, 0xc0f95d34, 0x2a519956,
  0x7d908b66, 0x63dbd80c, 0xb473e63e, 0x8d297d1c, 0xa6cce040, 0x2b45f844, 0xa320872e, 0xdae6c123,
  0x67349c8c, 0x705b0979, 0xca9913a5, 0x4ade3b35, 0xef6cd00d, 0x4ab1e1f4, 0x43c5e663, 0x8c21d1bc,
  0x16a7b60d, 0x7a8ff9bf, 0x1f2a753e, 0xbf186b91, 0xada26206, 0xa3c33057, 0xae3a36a1, 0x7b108392,
  0x99e41531, 0x3f1ad944, 0xc8138825, 0xc28949a6, 0xfaf8876b, 0x9f042196, 0x68b1d623, 0x8b5114fd,
  0xdf074c46, 0x12cc86b3, 0x0a52098f, 0x9d292f9a, 0xa2f41f12, 0x43a71ed0, 0x73f0bce6, 0x70a7e980,
  0x243c6d75, 0xfdb71513, 0xa67d8a08, 0xb7e8f148, 0xf7a644ee, 0x0f1837f2, 0x4b6694e0, 0xb7bbb3a8,
];

function bytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = i;
  return b;
}

t.test('SipHash-2-4 matches the kernel/reference test vectors', async (t) => {
  const out = new Uint32Array(2);
  for (let n = 0; n < 64; n++) {
    sipHashBytes(bytes(n), KEY, 2, 4, out);
    const got = (BigInt(out[0]!) << 32n) | BigInt(out[1]!);
    t.equal(got, SIPHASH24[n], `length ${n}`);
  }
});

t.test('SipHash-1-3 (64-bit hsiphash) matches the kernel kunit vectors', async (t) => {
  const out = new Uint32Array(2);
  for (let n = 0; n < 64; n++) {
    sipHashBytes(bytes(n), KEY, 1, 3, out);
    t.equal(out[1], HSIPHASH64[n], `length ${n}`);
  }
});

t.test('hsiphash32 (what ip_vs_mh uses) = hsiphash of the 4 little-endian bytes', async (t) => {
  // kunit: hsiphash_1u32(0x03020100) == vector[4]
  t.equal(hsiphash32(0x03020100, KEY), 0x88d38328);
  const out = new Uint32Array(2);
  const buf = new Uint8Array(4);
  const mhKey = sipKey(0, 2654435761, 0, 2654435761);
  let x = 7;
  let bad = 0;
  for (let i = 0; i < 1000; i++) {
    x = (Math.imul(x, 747796405) + 2891336453) >>> 0;
    buf[0] = x & 0xff;
    buf[1] = (x >>> 8) & 0xff;
    buf[2] = (x >>> 16) & 0xff;
    buf[3] = x >>> 24;
    for (const key of [KEY, mhKey]) {
      sipHashBytes(buf, key, 1, 3, out);
      if (hsiphash32(x, key) !== out[1]) bad++;
    }
  }
  t.equal(bad, 0, 'fast path equals the generic byte-string path on 2000 inputs');
});
