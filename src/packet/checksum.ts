/**
 * Internet checksums (RFC 1071) and their incremental updates (RFC 1624).
 * Sums: `csumAdd(buf, off, len, sum)` adds big-endian 16-bit words (a trailing odd byte is the
 * high byte of a zero-padded word; only the last range of a chain may be odd) to `sum` and returns
 * a partly folded sum < 2^18; every `sum` argument must be a non-negative integer < 2^32.
 * `csumFold(sum)` folds to the 16-bit one's-complement sum (NOT complemented); `csumFinish(sum)`
 * is its complement, the value a header stores. Pseudo-headers: `pseudoSum4(saddr, daddr, proto,
 * len)`, `pseudoSum6(saddrWords, daddrWords, proto, len)`, `pseudoSum(af, ...)`, and
 * `pseudoSumAt(buf, af, l3Off, proto, len)` reading the addresses from the IP header in the
 * buffer. IPv4 header: `ipv4HeaderChecksum`, `setIpv4HeaderChecksum`, `ipv4HeaderChecksumOk`.
 * TCP/UDP/ICMP/ICMPv6: `l4CsumOffset(af, proto)`, `l4Checksum` (value with the field taken as 0),
 * `setL4Checksum`, `l4ChecksumOk`, and the PacketInfo forms `setL4ChecksumInfo` /
 * `l4ChecksumOkInfo` (those also do SCTP's CRC32c). UDP rule: a stored 0 means "no checksum"
 * (IPv4 only; IPv6 requires one) and a computed 0 is sent as 0xffff (`udpCsumNonZero`).
 * Incremental: `csumUpdate16(check, old, new)`, `csumUpdate32`, `csumUpdate128` (8 words as
 * numbers) and `csumUpdateAddr6(check, oldWords, newWords)`; they return the new stored checksum.
 * `completePartialChecksum(buf, info)` finishes a CHECKSUM_PARTIAL frame (AF_PACKET
 * TP_STATUS_CSUMNOTREADY): TCP/UDP fields then hold the non-complemented pseudo-header sum, SCTP
 * fields hold nothing (the CRC is offloaded too). All of this is allocation-free.
 */
import { rd16, rd32, wr16 } from './bytes.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from './consts.js';
import { sctpChecksumOk, sctpChecksumSet } from './crc32c.js';
import type { PacketInfo } from './info.js';

/** 8192 words * 0xffff stays below 2^30, so the inner accumulator remains a small integer. */
const BLOCK_BYTES = 16384;

export function csumAdd(buf: Uint8Array, off: number, len: number, sum: number): number {
  let acc = 0;
  let i = off;
  const evenEnd = off + (len & ~1);
  while (i < evenEnd) {
    let blockEnd = i + BLOCK_BYTES;
    if (blockEnd > evenEnd) blockEnd = evenEnd;
    let a = 0;
    const blockEnd4 = blockEnd - 2;
    for (; i < blockEnd4; i += 4) {
      a += ((buf[i]! << 8) | buf[i + 1]!) + ((buf[i + 2]! << 8) | buf[i + 3]!);
    }
    if (i < blockEnd) {
      a += (buf[i]! << 8) | buf[i + 1]!;
      i += 2;
    }
    acc += a;
    acc = (acc & 0xffff) + (acc >>> 16);
  }
  if (len & 1) acc += buf[evenEnd]! << 8;
  return (sum >>> 16) + (sum & 0xffff) + acc;
}

/** 16-bit one's-complement sum of `sum` (< 2^32), not complemented. */
export function csumFold(sum: number): number {
  let s = (sum & 0xffff) + (sum >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** The checksum to store for data whose sum is `sum`: ~fold(sum). */
export function csumFinish(sum: number): number {
  return ~csumFold(sum) & 0xffff;
}

/** UDP sends a computed checksum of 0 as 0xffff, since 0 means "no checksum". */
export function udpCsumNonZero(check: number): number {
  return check === 0 ? 0xffff : check;
}

// ---------------------------------------------------------------------------------------------
// IPv4 header

function ihlBytes(buf: Uint8Array, l3Off: number): number {
  return (buf[l3Off]! & 15) << 2;
}

/** Header checksum of the IPv4 header at l3Off (the checksum field is taken as zero). */
export function ipv4HeaderChecksum(buf: Uint8Array, l3Off: number, hdrLen = ihlBytes(buf, l3Off)): number {
  let s = csumAdd(buf, l3Off, 10, 0);
  s = csumAdd(buf, l3Off + 12, hdrLen - 12, s);
  return csumFinish(s);
}

export function setIpv4HeaderChecksum(buf: Uint8Array, l3Off: number, hdrLen = ihlBytes(buf, l3Off)): number {
  const c = ipv4HeaderChecksum(buf, l3Off, hdrLen);
  wr16(buf, l3Off + 10, c);
  return c;
}

export function ipv4HeaderChecksumOk(buf: Uint8Array, l3Off: number, hdrLen = ihlBytes(buf, l3Off)): boolean {
  if (hdrLen < 20 || l3Off < 0 || l3Off + hdrLen > buf.length) return false;
  return csumFold(csumAdd(buf, l3Off, hdrLen, 0)) === 0xffff;
}

// ---------------------------------------------------------------------------------------------
// Pseudo-headers (RFC 793/768 for IPv4, RFC 8200 8.1 for IPv6)

export function pseudoSum4(saddr: number, daddr: number, proto: number, l4Len: number): number {
  return (saddr >>> 16) + (saddr & 0xffff) + (daddr >>> 16) + (daddr & 0xffff) + proto +
    (l4Len >>> 16) + (l4Len & 0xffff);
}

export function pseudoSum6(saddr: Uint32Array, daddr: Uint32Array, proto: number, l4Len: number): number {
  let s = proto + (l4Len >>> 16) + (l4Len & 0xffff);
  for (let i = 0; i < 4; i++) {
    const a = saddr[i]!, b = daddr[i]!;
    s += (a >>> 16) + (a & 0xffff) + (b >>> 16) + (b & 0xffff);
  }
  return s;
}

/** Pseudo-header sum from address words (IPv4: word 0). */
export function pseudoSum(af: 4 | 6, saddr: Uint32Array, daddr: Uint32Array, proto: number, l4Len: number): number {
  return af === 4 ? pseudoSum4(saddr[0]!, daddr[0]!, proto, l4Len) : pseudoSum6(saddr, daddr, proto, l4Len);
}

/**
 * Pseudo-header sum with the addresses read from the IP header at l3Off, so it reflects any
 * in-place rewrite. IPv6 with a routing header would need the final destination instead (not handled).
 */
export function pseudoSumAt(buf: Uint8Array, af: 4 | 6, l3Off: number, proto: number, l4Len: number): number {
  const len = (l4Len >>> 16) + (l4Len & 0xffff);
  if (af === 4) return csumAdd(buf, l3Off + 12, 8, proto + len);
  return csumAdd(buf, l3Off + 8, 32, proto + len);
}

// ---------------------------------------------------------------------------------------------
// TCP / UDP / ICMP / ICMPv6

/** Offset of the checksum field inside the L4 header, or -1 for protocols without an Internet checksum. */
export function l4CsumOffset(af: number, proto: number): number {
  if (proto === IPPROTO_TCP) return 16;
  if (proto === IPPROTO_UDP) return 6;
  if (proto === IPPROTO_ICMP && af === 4) return 2;
  if (proto === IPPROTO_ICMPV6 && af === 6) return 2;
  return -1;
}

/**
 * Checksum to store for the L4 segment buf[l4Off, l4Off+l4Len) (field taken as zero), with the
 * pseudo-header from the IP header at l3Off (none for ICMPv4). UDP results of 0 become 0xffff.
 * Returns -1 for protocols without an Internet checksum.
 */
export function l4Checksum(buf: Uint8Array, af: 4 | 6, l3Off: number, proto: number, l4Off: number, l4Len: number): number {
  const co = l4CsumOffset(af, proto);
  if (co < 0 || l4Len < co + 2) return -1;
  let s = proto === IPPROTO_ICMP ? 0 : pseudoSumAt(buf, af, l3Off, proto, l4Len);
  s = csumAdd(buf, l4Off, co, s);
  s = csumAdd(buf, l4Off + co + 2, l4Len - co - 2, s);
  const c = csumFinish(s);
  return proto === IPPROTO_UDP ? udpCsumNonZero(c) : c;
}

export function setL4Checksum(buf: Uint8Array, af: 4 | 6, l3Off: number, proto: number, l4Off: number, l4Len: number): number {
  const c = l4Checksum(buf, af, l3Off, proto, l4Off, l4Len);
  if (c >= 0) wr16(buf, l4Off + l4CsumOffset(af, proto), c);
  return c;
}

/**
 * Stores what a CHECKSUM_PARTIAL TCP/UDP packet carries in its checksum field: the folded,
 * non-complemented pseudo-header sum over `l4Len` (~csum_tcpudp_magic(), as tcp_v4_send_check
 * leaves it), which whoever finishes the checksum sums the segment onto.
 */
export function setPartialL4Checksum(buf: Uint8Array, af: 4 | 6, l3Off: number, proto: number, l4Off: number, l4Len: number): void {
  wr16(buf, l4Off + l4CsumOffset(af, proto), csumFold(pseudoSumAt(buf, af, l3Off, proto, l4Len)));
}

/** Verifies a TCP/UDP/ICMP/ICMPv6 checksum. UDP over IPv4 with checksum 0 passes (none sent); over IPv6 it fails. */
export function l4ChecksumOk(buf: Uint8Array, af: 4 | 6, l3Off: number, proto: number, l4Off: number, l4Len: number): boolean {
  const co = l4CsumOffset(af, proto);
  if (co < 0 || l4Len < co + 2 || l4Off < 0 || l4Off + l4Len > buf.length) return false;
  if (proto === IPPROTO_UDP && rd16(buf, l4Off + 6) === 0) return af === 4;
  let s = proto === IPPROTO_ICMP ? 0 : pseudoSumAt(buf, af, l3Off, proto, l4Len);
  s = csumAdd(buf, l4Off, l4Len, s);
  return csumFold(s) === 0xffff;
}

/** setL4Checksum for a parsed frame, SCTP included. Returns false when there is no L4 checksum to set. */
export function setL4ChecksumInfo(buf: Uint8Array, info: PacketInfo): boolean {
  if (info.af === 0 || info.l4Off < 0) return false;
  if (info.proto === IPPROTO_SCTP) {
    if (info.l4Len < 12) return false;
    sctpChecksumSet(buf, info.l4Off, info.l4Len);
    return true;
  }
  return setL4Checksum(buf, info.af, info.l3Off, info.proto, info.l4Off, info.l4Len) >= 0;
}

/** l4ChecksumOk for a parsed frame, SCTP included. */
export function l4ChecksumOkInfo(buf: Uint8Array, info: PacketInfo): boolean {
  if (info.af === 0 || info.l4Off < 0) return false;
  if (info.proto === IPPROTO_SCTP) return sctpChecksumOk(buf, info.l4Off, info.l4Len);
  return l4ChecksumOk(buf, info.af, info.l3Off, info.proto, info.l4Off, info.l4Len);
}

// ---------------------------------------------------------------------------------------------
// Incremental updates, RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')

export function csumUpdate16(check: number, oldVal: number, newVal: number): number {
  const s = (~check & 0xffff) + (~oldVal & 0xffff) + (newVal & 0xffff);
  return ~csumFold(s) & 0xffff;
}

export function csumUpdate32(check: number, oldVal: number, newVal: number): number {
  const s = (~check & 0xffff) + (~oldVal >>> 16 & 0xffff) + (~oldVal & 0xffff) +
    (newVal >>> 16) + (newVal & 0xffff);
  return ~csumFold(s) & 0xffff;
}

/** Replaces a 128-bit value (an IPv6 address, words most significant first). */
export function csumUpdate128(
  check: number,
  o0: number, o1: number, o2: number, o3: number,
  n0: number, n1: number, n2: number, n3: number,
): number {
  let s = ~check & 0xffff;
  s += (~o0 >>> 16 & 0xffff) + (~o0 & 0xffff) + (~o1 >>> 16 & 0xffff) + (~o1 & 0xffff);
  s += (~o2 >>> 16 & 0xffff) + (~o2 & 0xffff) + (~o3 >>> 16 & 0xffff) + (~o3 & 0xffff);
  s += (n0 >>> 16) + (n0 & 0xffff) + (n1 >>> 16) + (n1 & 0xffff);
  s += (n2 >>> 16) + (n2 & 0xffff) + (n3 >>> 16) + (n3 & 0xffff);
  return ~csumFold(s) & 0xffff;
}

export function csumUpdateAddr6(check: number, oldAddr: Uint32Array, newAddr: Uint32Array): number {
  return csumUpdate128(check, oldAddr[0]!, oldAddr[1]!, oldAddr[2]!, oldAddr[3]!,
    newAddr[0]! >>> 0, newAddr[1]! >>> 0, newAddr[2]! >>> 0, newAddr[3]! >>> 0);
}

/** Same as csumUpdateAddr6 with the old address read from buf at `off` (e.g. before overwriting it). */
export function csumUpdateAddr6At(check: number, buf: Uint8Array, off: number, newAddr: Uint32Array): number {
  return csumUpdate128(check, rd32(buf, off), rd32(buf, off + 4), rd32(buf, off + 8), rd32(buf, off + 12),
    newAddr[0]!, newAddr[1]!, newAddr[2]!, newAddr[3]!);
}

// ---------------------------------------------------------------------------------------------
// CHECKSUM_PARTIAL completion

/**
 * Completes the L4 checksum of a parsed frame that arrived with a partial checksum (AF_PACKET
 * TP_STATUS_CSUMNOTREADY, i.e. the sender's stack left it to "hardware"). TCP/UDP: the field holds
 * the folded, non-complemented pseudo-header sum, so the checksum is ~fold(sum over the L4 segment
 * as it is). SCTP (veth offloads CRC32c too): the CRC is computed and stored. The covered range is
 * the L4 header to the end of the IP packet (no Ethernet padding). Returns false when there is
 * nothing to complete (no L4 header, other protocol, non-first fragment, header too short).
 */
export function completePartialChecksum(buf: Uint8Array, info: PacketInfo): boolean {
  const l4 = info.l4Off;
  if (info.af === 0 || l4 < 0 || info.isLaterFrag) return false;
  const n = info.l4Len;
  const proto = info.proto;
  if (proto === IPPROTO_SCTP) {
    if (n < 12) return false;
    sctpChecksumSet(buf, l4, n);
    return true;
  }
  if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return false;
  const co = proto === IPPROTO_TCP ? 16 : 6;
  if (n < co + 2) return false;
  let c = csumFinish(csumAdd(buf, l4, n, 0));
  if (proto === IPPROTO_UDP) c = udpCsumNonZero(c);
  wr16(buf, l4 + co, c);
  return true;
}
