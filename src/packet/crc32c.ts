/**
 * CRC32c (Castagnoli, reflected polynomial 0x82F63B78), table-driven four bytes at a time.
 * `crc32c(buf, off?, len?)` is the standard CRC (initial value ~0, final inversion:
 * "123456789" -> 0xE3069283); `crc32cUpdate(state, buf, off, len)` runs the raw register for
 * chaining (start with 0xffffffff, finish with `~state >>> 0`). SCTP (RFC 4960 6.8 / Appendix B,
 * Linux sctp_compute_cksum): `sctpChecksumCompute(buf, l4Off, l4Len)` returns the CRC of the SCTP
 * packet with its checksum field taken as zero; `sctpChecksumSet` stores it and `sctpChecksumOk`
 * checks it. The value goes into the field least significant byte first (Linux stores
 * cpu_to_le32(crc)), so 0xE3069283 appears on the wire as 83 92 06 e3. No allocation.
 */

const POLY = 0x82f63b78;

/** Four 256-entry tables: T[0] is the classic byte table, T[k] advances k more zero bytes. */
const T = new Uint32Array(1024);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[i] = c >>> 0;
}
for (let i = 0; i < 256; i++) {
  for (let k = 1; k < 4; k++) {
    const prev = T[(k - 1) * 256 + i]!;
    T[k * 256 + i] = ((prev >>> 8) ^ T[prev & 0xff]!) >>> 0;
  }
}

/** Raw CRC32c register update over buf[off, off+len). */
export function crc32cUpdate(state: number, buf: Uint8Array, off: number, len: number): number {
  let crc = state | 0;
  let i = off;
  const end = off + len;
  const end4 = end - 3;
  for (; i < end4; i += 4) {
    crc ^= buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
    crc = T[768 + (crc & 0xff)]! ^ T[512 + ((crc >>> 8) & 0xff)]! ^ T[256 + ((crc >>> 16) & 0xff)]! ^ T[crc >>> 24]!;
  }
  for (; i < end; i++) crc = T[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8);
  return crc >>> 0;
}

/** Standard CRC32c of buf[off, off+len). */
export function crc32c(buf: Uint8Array, off = 0, len = buf.length - off): number {
  return ~crc32cUpdate(0xffffffff, buf, off, len) >>> 0;
}

/** Feeds four zero bytes (the SCTP checksum field during computation). */
function zeros4(crc: number): number {
  return (T[768 + (crc & 0xff)]! ^ T[512 + ((crc >>> 8) & 0xff)]! ^ T[256 + ((crc >>> 16) & 0xff)]! ^ T[crc >>> 24]!) >>> 0;
}

/** CRC32c of the SCTP packet buf[l4Off, l4Off+l4Len) with the checksum field (bytes 8..11) as zero. */
export function sctpChecksumCompute(buf: Uint8Array, l4Off: number, l4Len: number): number {
  let crc = crc32cUpdate(0xffffffff, buf, l4Off, 8);
  crc = zeros4(crc);
  crc = crc32cUpdate(crc, buf, l4Off + 12, l4Len - 12);
  return ~crc >>> 0;
}

/** Computes and stores the SCTP checksum (little-endian in the field); returns the CRC value. */
export function sctpChecksumSet(buf: Uint8Array, l4Off: number, l4Len: number): number {
  const c = sctpChecksumCompute(buf, l4Off, l4Len);
  const o = l4Off + 8;
  buf[o] = c;
  buf[o + 1] = c >>> 8;
  buf[o + 2] = c >>> 16;
  buf[o + 3] = c >>> 24;
  return c;
}

/** The CRC value stored in an SCTP header (field read little-endian). */
export function sctpChecksumRead(buf: Uint8Array, l4Off: number): number {
  const o = l4Off + 8;
  return (buf[o]! | (buf[o + 1]! << 8) | (buf[o + 2]! << 16) | (buf[o + 3]! << 24)) >>> 0;
}

export function sctpChecksumOk(buf: Uint8Array, l4Off: number, l4Len: number): boolean {
  if (l4Len < 12 || l4Off < 0 || l4Off + l4Len > buf.length) return false;
  return sctpChecksumRead(buf, l4Off) === sctpChecksumCompute(buf, l4Off, l4Len);
}
