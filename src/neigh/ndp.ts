/**
 * IPv6 Neighbor Discovery frames (RFC 4861), the IPv6 counterpart of arp.ts:
 *   - Neighbor Solicitations the director writes to resolve next hops (multicast
 *     to the target's solicited-node group, or unicast to re-probe a known one);
 *   - Neighbor Advertisements: the answer to a solicitation for a VIP, written in
 *     place over the solicitation (as the engine answers ARP), and the unsolicited
 *     advertisement that announces a VIP (the IPv6 gratuitous ARP);
 *   - a reader that validates NS/NA frames seen on the wire the way a host must
 *     before believing them (hop limit 255, code 0, checksum, option lengths), and
 *     feeds the neighbour cache.
 * No allocation: frames are written into a caller's buffer, fields are read into a
 * reusable record, addresses are passed as four words (most significant first).
 */
import { l4ChecksumOk, setL4Checksum } from '../packet/checksum.js';
import { rd16, rd32, wr16, wr32 } from '../packet/bytes.js';
import { ETH_P_8021Q, ETH_P_IPV6, ICMPV6_NDISC_NA, ICMPV6_NDISC_NS, IPPROTO_ICMPV6 } from '../packet/consts.js';
import type { Words6 } from '../util/ip6-set.js';

export const ND_NS = ICMPV6_NDISC_NS;
export const ND_NA = ICMPV6_NDISC_NA;
/** Option types: source / target link-layer address. */
export const ND_OPT_SLLA = 1;
export const ND_OPT_TLLA = 2;
/** Flags in the first byte after an NA's checksum. */
export const NA_F_ROUTER = 0x80;
export const NA_F_SOLICITED = 0x40;
export const NA_F_OVERRIDE = 0x20;
/** Ethernet + IPv6 + NS/NA body (24) + one Ethernet link-layer address option (8). */
export const ND_FRAME_LEN = 14 + 40 + 32;
/** NDP frames must arrive with the hop limit they were sent with: proof they were not routed. */
const ND_HOP_LIMIT = 255;
const ETH_P_8021AD = 0x88a8;

/** The fields of one NS or NA frame (byte offsets into the buffer it was read from). */
export class NdView {
  type = 0;
  /** NA flags (NA_F_*); 0 for NS. */
  flags = 0;
  l3Off = 0;
  l4Off = 0;
  /** ICMPv6 message length (IPv6 payload length). */
  l4Len = 0;
  /** IPv6 source and destination, and the target address of the message. */
  srcOff = 0;
  dstOff = 0;
  targetOff = 0;
  /** The 6-byte address of the source (NS) or target (NA) link-layer address option, or -1. */
  llaOff = -1;
  /** The source is :: (duplicate address detection): nothing can be learned about the sender. */
  unspecSrc = false;
}

function isZero16(b: Uint8Array, o: number): boolean {
  for (let k = 0; k < 16; k++) if (b[o + k] !== 0) return false;
  return true;
}

/** ff02::1:ffXX:XXXX, the group a solicitation for an address goes to. */
function isSolicitedNode(b: Uint8Array, o: number): boolean {
  if (b[o] !== 0xff || b[o + 1] !== 0x02) return false;
  for (let k = 2; k < 11; k++) if (b[o + k] !== 0) return false;
  return b[o + 11] === 0x01 && b[o + 12] === 0xff;
}

/**
 * Reads the NS or NA at buf[off..off+len) (802.1Q/802.1ad tags skipped) into `v`, with the
 * checks RFC 4861 7.1.1 / 7.1.2 require of a receiver; false when it is not a valid one.
 * IPv6 extension headers are not walked: NDP is sent without them (and a frame that has
 * them is left to the kernel).
 */
export function readNd(buf: Uint8Array, off: number, len: number, v: NdView): boolean {
  const end = off + len;
  if (len < 14 || end > buf.length) return false;
  let o = off + 12;
  let type = rd16(buf, o);
  while (type === ETH_P_8021Q || type === ETH_P_8021AD) {
    o += 4;
    if (o + 2 > end) return false;
    type = rd16(buf, o);
  }
  if (type !== ETH_P_IPV6) return false;
  const l3 = o + 2;
  if (l3 + 40 > end) return false;
  if ((buf[l3]! >>> 4) !== 6 || buf[l3 + 6] !== IPPROTO_ICMPV6 || buf[l3 + 7] !== ND_HOP_LIMIT) return false;
  const plen = rd16(buf, l3 + 4);
  const l4 = l3 + 40;
  if (plen < 24 || l4 + plen > end) return false;
  const t = buf[l4]!;
  if ((t !== ND_NS && t !== ND_NA) || buf[l4 + 1] !== 0) return false;
  if (buf[l4 + 8] === 0xff) return false; // the target is never a multicast address
  if (!l4ChecksumOk(buf, 6, l3, IPPROTO_ICMPV6, l4, plen)) return false;
  const want = t === ND_NS ? ND_OPT_SLLA : ND_OPT_TLLA;
  let lla = -1;
  for (let p = l4 + 24; p < l4 + plen;) {
    if (p + 2 > l4 + plen) return false;
    const olen = buf[p + 1]! * 8;
    if (olen === 0 || p + olen > l4 + plen) return false; // a zero-length option ends the walk: invalid
    if (buf[p] === want && olen === 8 && lla < 0) lla = p + 2;
    p += olen;
  }
  const unspec = isZero16(buf, l3 + 8);
  if (t === ND_NS && unspec && (lla >= 0 || !isSolicitedNode(buf, l3 + 24))) return false;
  const flags = t === ND_NA ? buf[l4 + 4]! & (NA_F_ROUTER | NA_F_SOLICITED | NA_F_OVERRIDE) : 0;
  // A solicited advertisement is an answer to one asker: never sent to a group.
  if (t === ND_NA && buf[l3 + 24] === 0xff && (flags & NA_F_SOLICITED) !== 0) return false;
  v.type = t;
  v.flags = flags;
  v.l3Off = l3;
  v.l4Off = l4;
  v.l4Len = plen;
  v.srcOff = l3 + 8;
  v.dstOff = l3 + 24;
  v.targetOff = l4 + 8;
  v.llaOff = lla;
  v.unspecSrc = unspec;
  return true;
}

/** Reads the IPv6 address at buf[off..off+16) into out[0..4). */
export function readAddr6(buf: Uint8Array, off: number, out: Uint32Array): void {
  out[0] = rd32(buf, off); out[1] = rd32(buf, off + 4); out[2] = rd32(buf, off + 8); out[3] = rd32(buf, off + 12);
}

function writeAddr6(out: Uint8Array, off: number, a: Words6): void {
  wr32(out, off, a[0]!); wr32(out, off + 4, a[1]!); wr32(out, off + 8, a[2]!); wr32(out, off + 12, a[3]!);
}

function writeMac(out: Uint8Array, off: number, mac: Uint8Array): void {
  for (let k = 0; k < 6; k++) out[off + k] = mac[k]!;
}

/** The Ethernet group of an IPv6 multicast address (RFC 2464 7): 33:33 + its last four bytes. */
function writeMulticastMac(out: Uint8Array, off: number, w3: number): void {
  out[off] = 0x33; out[off + 1] = 0x33;
  wr32(out, off + 2, w3);
}

/** Ethernet + IPv6 headers of an NDP message of `plen` bytes; returns the ICMPv6 offset. */
function writeHeaders(out: Uint8Array, off: number, ethDst: Uint8Array | null, srcMac: Uint8Array,
  src: Words6 | null, dst: Words6, plen: number): number {
  if (ethDst === null) writeMulticastMac(out, off, dst[3]!);
  else writeMac(out, off, ethDst);
  writeMac(out, off + 6, srcMac);
  wr16(out, off + 12, ETH_P_IPV6);
  const l3 = off + 14;
  wr32(out, l3, 0x60000000);
  wr16(out, l3 + 4, plen);
  out[l3 + 6] = IPPROTO_ICMPV6;
  out[l3 + 7] = ND_HOP_LIMIT;
  if (src === null) out.fill(0, l3 + 8, l3 + 24);
  else writeAddr6(out, l3 + 8, src);
  writeAddr6(out, l3 + 24, dst);
  return l3 + 40;
}

const scratchDst = new Uint32Array(4);
const ALL_NODES: Words6 = [0xff020000, 0, 0, 1];

/**
 * A Neighbor Solicitation for `target` from `srcMac`/`src` (src null = :: and no source
 * link-layer option, as RFC 4861 requires of an unspecified source). `unicast` null: to
 * the target's solicited-node group; else to the target itself at that MAC (a re-probe
 * of a known neighbour). Returns the frame length.
 */
export function writeNs(out: Uint8Array, off: number, srcMac: Uint8Array, src: Words6 | null, target: Words6,
  unicast: Uint8Array | null = null): number {
  const d = scratchDst;
  if (unicast === null) {
    d[0] = 0xff020000; d[1] = 0; d[2] = 1; d[3] = (0xff000000 | (target[3]! & 0xffffff)) >>> 0;
  } else {
    d[0] = target[0]!; d[1] = target[1]!; d[2] = target[2]!; d[3] = target[3]!;
  }
  const plen = src === null ? 24 : 32;
  const l4 = writeHeaders(out, off, unicast, srcMac, src, d, plen);
  out[l4] = ND_NS; out[l4 + 1] = 0;
  wr16(out, l4 + 2, 0);
  wr32(out, l4 + 4, 0);
  writeAddr6(out, l4 + 8, target);
  if (src !== null) {
    out[l4 + 24] = ND_OPT_SLLA; out[l4 + 25] = 1;
    writeMac(out, l4 + 26, srcMac);
  }
  setL4Checksum(out, 6, off + 14, IPPROTO_ICMPV6, l4, plen);
  return l4 + plen - off;
}

/**
 * A Neighbor Advertisement that `target` is at `srcMac` (which is also the target
 * link-layer address option), from `src` to `dst` at `dstMac` — dst null: to all nodes
 * (ff02::1). Returns the frame length.
 */
export function writeNa(out: Uint8Array, off: number, srcMac: Uint8Array, dstMac: Uint8Array | null,
  src: Words6, dst: Words6 | null, target: Words6, flags: number): number {
  const l4 = writeHeaders(out, off, dst === null ? null : dstMac, srcMac, src, dst ?? ALL_NODES, 32);
  out[l4] = ND_NA; out[l4 + 1] = 0;
  wr16(out, l4 + 2, 0);
  wr32(out, l4 + 4, (flags & 0xff) << 24);
  writeAddr6(out, l4 + 8, target);
  out[l4 + 24] = ND_OPT_TLLA; out[l4 + 25] = 1;
  writeMac(out, l4 + 26, srcMac);
  setL4Checksum(out, 6, off + 14, IPPROTO_ICMPV6, l4, 32);
  return l4 + 32 - off;
}

/**
 * The unsolicited advertisement announcing that `ip` is at `mac` (RFC 4861 7.2.6: to all
 * nodes, Solicited clear, Override set), like `ndisc_send_unsol_na` after an address comes
 * up: neighbours that already know `ip` update their entry to `mac`.
 */
export function writeUnsolicitedNa(out: Uint8Array, off: number, mac: Uint8Array, ip: Words6): number {
  return writeNa(out, off, mac, null, ip, null, ip, NA_F_OVERRIDE);
}

/**
 * Turns the solicitation read into `v` (buffer `buf`, frame at `frameOff`) into our
 * advertisement for its target, in place: from the target at `mac` back to the asker
 * (to all nodes when the asker has no address yet — RFC 4861 7.2.4), Solicited and
 * Override set. Any VLAN tag stays. Returns the new frame length (86 bytes + tags).
 */
export function answerNs(buf: Uint8Array, frameOff: number, v: NdView, mac: Uint8Array): number {
  const l3 = v.l3Off;
  const l4 = l3 + 40;
  const toAll = v.unspecSrc;
  // Ethernet: back to the asker (its frame source) or to the all-nodes group, from us.
  if (toAll) writeMulticastMac(buf, frameOff, 1);
  else for (let k = 0; k < 6; k++) buf[frameOff + k] = buf[frameOff + 6 + k]!;
  writeMac(buf, frameOff + 6, mac);
  wr32(buf, l3, 0x60000000);
  wr16(buf, l3 + 4, 32);
  buf[l3 + 6] = IPPROTO_ICMPV6;
  buf[l3 + 7] = ND_HOP_LIMIT;
  // Destination first (it takes the old source), then the source (the target, which stays put).
  if (toAll) writeAddr6(buf, l3 + 24, ALL_NODES);
  else buf.copyWithin(l3 + 24, l3 + 8, l3 + 24);
  buf.copyWithin(l3 + 8, l4 + 8, l4 + 24);
  buf[l4] = ND_NA; buf[l4 + 1] = 0;
  wr16(buf, l4 + 2, 0);
  wr32(buf, l4 + 4, ((toAll ? NA_F_OVERRIDE : NA_F_SOLICITED | NA_F_OVERRIDE) << 24) >>> 0);
  buf[l4 + 24] = ND_OPT_TLLA; buf[l4 + 25] = 1;
  writeMac(buf, l4 + 26, mac);
  setL4Checksum(buf, 6, l3, IPPROTO_ICMPV6, l4, 32);
  return l4 + 32 - frameOff;
}

/**
 * Makes an advertisement we wrote (answerNs / writeNa) come from another of our MACs: the
 * Ethernet source and the target link-layer option change, so the checksum is redone.
 * For a director serving several interfaces, whose engine answers with one MAC.
 */
export function setNaSourceMac(buf: Uint8Array, frameOff: number, len: number, mac: Uint8Array, v: NdView): boolean {
  if (!readNd(buf, frameOff, len, v) || v.type !== ND_NA) return false;
  writeMac(buf, frameOff + 6, mac);
  if (v.llaOff >= 0) writeMac(buf, v.llaOff, mac);
  setL4Checksum(buf, 6, v.l3Off, IPPROTO_ICMPV6, v.l4Off, v.l4Len);
  return true;
}
