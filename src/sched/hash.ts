/**
 * The two hash functions IPVS schedulers use, bit-exact with the kernel:
 *  - hash_32 (include/linux/hash.h): multiply by GOLDEN_RATIO_32, keep the top bits
 *    (dh, sh, lblc, lblcr bucket indexes);
 *  - hsiphash (lib/siphash.c) as built on 64-bit kernels, where it is SipHash-1-3 with
 *    two 64-bit key words truncated to 32 bits (mh).
 * 64-bit words are handled as (hi, lo) uint32 halves so nothing allocates.
 */

/** GOLDEN_RATIO_32 from include/linux/hash.h. */
export const GOLDEN_RATIO_32 = 0x61c88647;

/** hash_32(val, bits): `(val * 0x61C88647 mod 2^32) >> (32 - bits)`, for 1 <= bits <= 32. */
export function hash32(v: number, bits: number): number {
  return Math.imul(v, GOLDEN_RATIO_32) >>> (32 - bits);
}

/**
 * The address value the kernel's *_hashkey() functions feed to their hash: the IPv4 address,
 * or for IPv6 the XOR of the four 32-bit words (ntohl of the XOR = XOR of the host-order words).
 */
export function foldAddr(af: 4 | 6, words: Uint32Array): number {
  return af === 6 ? (words[0]! ^ words[1]! ^ words[2]! ^ words[3]!) >>> 0 : words[0]! >>> 0;
}

/**
 * A SipHash key: two 64-bit words k0, k1 stored as [k0hi, k0lo, k1hi, k1lo].
 * (`hsiphash_key_t` on 64-bit kernels is two `unsigned long`s.)
 */
export type SipKey = Uint32Array;

export function sipKey(k0hi: number, k0lo: number, k1hi: number, k1lo: number): SipKey {
  return Uint32Array.of(k0hi, k0lo, k1hi, k1lo);
}

// "somepseudorandomlygeneratedbytes", the SipHash initialisation constants.
const C0H = 0x736f6d65, C0L = 0x70736575;
const C1H = 0x646f7261, C1L = 0x6e646f6d;
const C2H = 0x6c796765, C2L = 0x6e657261;
const C3H = 0x74656462, C3L = 0x79746573;

/**
 * hsiphash(&v, 4, key) on a 64-bit little-endian kernel (= hsiphash_1u32): SipHash-1-3 of the
 * four bytes of `v`, low 32 bits of the result. Used per new connection by mh, so it is written
 * out with locals only: b = (4 << 56) | v; v3 ^= b; 1 round; v0 ^= b; v2 ^= 0xff; 3 rounds.
 */
export function hsiphash32(v: number, key: SipKey): number {
  const k0h = key[0]!, k0l = key[1]!, k1h = key[2]!, k1l = key[3]!;
  let v0h = (C0H ^ k0h) >>> 0, v0l = (C0L ^ k0l) >>> 0;
  let v1h = (C1H ^ k1h) >>> 0, v1l = (C1L ^ k1l) >>> 0;
  let v2h = (C2H ^ k0h) >>> 0, v2l = (C2L ^ k0l) >>> 0;
  let v3h = (C3H ^ k1h) >>> 0, v3l = (C3L ^ k1l) >>> 0;
  const bh = 0x04000000; // length 4 in the top byte
  const bl = v >>> 0;
  v3h = (v3h ^ bh) >>> 0;
  v3l = (v3l ^ bl) >>> 0;
  let t = 0;
  for (let r = 0; r < 4; r++) {
    if (r === 1) {
      // between the compression round and the 3 finalisation rounds
      v0h = (v0h ^ bh) >>> 0;
      v0l = (v0l ^ bl) >>> 0;
      v2l = (v2l ^ 0xff) >>> 0;
    }
    // SIPROUND (rotations 13, 32, 16, 21, 17, 32)
    t = (v0l + v1l) >>> 0; v0h = (v0h + v1h + (t < v0l ? 1 : 0)) >>> 0; v0l = t;
    t = ((v1h << 13) | (v1l >>> 19)) >>> 0; v1l = ((v1l << 13) | (v1h >>> 19)) >>> 0; v1h = t;
    v1h = (v1h ^ v0h) >>> 0; v1l = (v1l ^ v0l) >>> 0;
    t = v0h; v0h = v0l; v0l = t;
    t = (v2l + v3l) >>> 0; v2h = (v2h + v3h + (t < v2l ? 1 : 0)) >>> 0; v2l = t;
    t = ((v3h << 16) | (v3l >>> 16)) >>> 0; v3l = ((v3l << 16) | (v3h >>> 16)) >>> 0; v3h = t;
    v3h = (v3h ^ v2h) >>> 0; v3l = (v3l ^ v2l) >>> 0;
    t = (v0l + v3l) >>> 0; v0h = (v0h + v3h + (t < v0l ? 1 : 0)) >>> 0; v0l = t;
    t = ((v3h << 21) | (v3l >>> 11)) >>> 0; v3l = ((v3l << 21) | (v3h >>> 11)) >>> 0; v3h = t;
    v3h = (v3h ^ v0h) >>> 0; v3l = (v3l ^ v0l) >>> 0;
    t = (v2l + v1l) >>> 0; v2h = (v2h + v1h + (t < v2l ? 1 : 0)) >>> 0; v2l = t;
    t = ((v1h << 17) | (v1l >>> 15)) >>> 0; v1l = ((v1l << 17) | (v1h >>> 15)) >>> 0; v1h = t;
    v1h = (v1h ^ v2h) >>> 0; v1l = (v1l ^ v2l) >>> 0;
    t = v2h; v2h = v2l; v2l = t;
  }
  return (v0l ^ v1l ^ v2l ^ v3l) >>> 0;
}

/** Generic SipHash-c-d state as [v0h, v0l, v1h, v1l, v2h, v2l, v3h, v3l]. */
function sipRound(s: Uint32Array): void {
  let t = 0;
  t = (s[1]! + s[3]!) >>> 0; s[0] = s[0]! + s[2]! + (t < s[1]! ? 1 : 0); s[1] = t;
  t = ((s[2]! << 13) | (s[3]! >>> 19)) >>> 0; s[3] = (s[3]! << 13) | (s[2]! >>> 19); s[2] = t;
  s[2] = s[2]! ^ s[0]!; s[3] = s[3]! ^ s[1]!;
  t = s[0]!; s[0] = s[1]!; s[1] = t;
  t = (s[5]! + s[7]!) >>> 0; s[4] = s[4]! + s[6]! + (t < s[5]! ? 1 : 0); s[5] = t;
  t = ((s[6]! << 16) | (s[7]! >>> 16)) >>> 0; s[7] = (s[7]! << 16) | (s[6]! >>> 16); s[6] = t;
  s[6] = s[6]! ^ s[4]!; s[7] = s[7]! ^ s[5]!;
  t = (s[1]! + s[7]!) >>> 0; s[0] = s[0]! + s[6]! + (t < s[1]! ? 1 : 0); s[1] = t;
  t = ((s[6]! << 21) | (s[7]! >>> 11)) >>> 0; s[7] = (s[7]! << 21) | (s[6]! >>> 11); s[6] = t;
  s[6] = s[6]! ^ s[0]!; s[7] = s[7]! ^ s[1]!;
  t = (s[5]! + s[3]!) >>> 0; s[4] = s[4]! + s[2]! + (t < s[5]! ? 1 : 0); s[5] = t;
  t = ((s[2]! << 17) | (s[3]! >>> 15)) >>> 0; s[3] = (s[3]! << 17) | (s[2]! >>> 15); s[2] = t;
  s[2] = s[2]! ^ s[4]!; s[3] = s[3]! ^ s[5]!;
  t = s[4]!; s[4] = s[5]!; s[5] = t;
}

/**
 * SipHash-c-d over a byte string (lib/siphash.c __siphash / 64-bit __hsiphash), writing the
 * 64-bit result into out[0] (hi) and out[1] (lo). c=2,d=4 is siphash(); c=1,d=3 is the
 * 64-bit kernel's hsiphash() (which returns only out[1]). Control-plane / test use.
 */
export function sipHashBytes(data: Uint8Array, key: SipKey, c: number, d: number, out: Uint32Array): void {
  const s = new Uint32Array(8);
  s[0] = C0H ^ key[0]!; s[1] = C0L ^ key[1]!;
  s[2] = C1H ^ key[2]!; s[3] = C1L ^ key[3]!;
  s[4] = C2H ^ key[0]!; s[5] = C2L ^ key[1]!;
  s[6] = C3H ^ key[2]!; s[7] = C3L ^ key[3]!;
  const len = data.length;
  const full = len - (len % 8);
  for (let i = 0; i < full; i += 8) {
    const ml = (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)) >>> 0;
    const mh = (data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24)) >>> 0;
    s[6] = s[6]! ^ mh; s[7] = s[7]! ^ ml;
    for (let r = 0; r < c; r++) sipRound(s);
    s[0] = s[0]! ^ mh; s[1] = s[1]! ^ ml;
  }
  // last block: the remaining bytes little-endian, length (mod 256) in the top byte
  let bh = ((len & 0xff) << 24) >>> 0;
  let bl = 0;
  for (let i = full; i < len; i++) {
    const sh = (i - full) * 8;
    if (sh < 32) bl = (bl | (data[i]! << sh)) >>> 0;
    else bh = (bh | (data[i]! << (sh - 32))) >>> 0;
  }
  s[6] = s[6]! ^ bh; s[7] = s[7]! ^ bl;
  for (let r = 0; r < c; r++) sipRound(s);
  s[0] = s[0]! ^ bh; s[1] = s[1]! ^ bl;
  s[5] = s[5]! ^ 0xff;
  for (let r = 0; r < d; r++) sipRound(s);
  out[0] = s[0]! ^ s[2]! ^ s[4]! ^ s[6]!;
  out[1] = s[1]! ^ s[3]! ^ s[5]! ^ s[7]!;
}
