/**
 * What every transmitter does (kernel ip_vs_xmit.c `decrement_ttl`, `ensure_mtu_is_adequate`,
 * `ip_send_check`, plus the link-layer rewrite the kernel leaves to neighbour output): TTL /
 * hop-limit decrement, the MTU check, Ethernet address rewrite, partial-checksum completion,
 * and the result codes and result record the transmitters share.
 * Hot path: every function works in place on the frame and allocates nothing.
 */
import type { PacketInfo } from '../packet/info.js';

/** Transmitter outcomes. */
export const XMIT_OK = 0;
/** Drop silently. */
export const XMIT_DROP = 1;
/** Drop and answer with ICMP time exceeded (11/0) / ICMPv6 time exceeded (3/0). */
export const XMIT_TTL_EXCEEDED = 2;
/** Drop and answer with ICMP frag-needed (3/4) / ICMPv6 packet too big (2); MTU in `XmitResult.mtu`. */
export const XMIT_FRAG_NEEDED = 3;
/** The packet could not be rewritten correctly (truncated headers, no headroom...): drop. */
export const XMIT_ERROR = 4;
/**
 * Rewritten and valid, but longer than `XmitResult.mtu` with fragmentation allowed (IPv4 without
 * DF, a relayed ICMP error, or a tunnel with pmtu_disc=0): the kernel fragments it on output
 * (`skb->ignore_df = 1`); the caller fragments (fragment.ts) or drops.
 */
export const XMIT_FRAGMENT = 5;
export const XMIT_NAMES = ['ok', 'drop', 'ttl-exceeded', 'frag-needed', 'error', 'fragment'] as const;

/** Where a transmitter left the frame. One instance per engine, refilled per packet. */
export class XmitResult {
  /** Frame offset and length after the rewrite (tunnels move the frame down into the headroom). */
  off = 0;
  len = 0;
  /** MTU to report in the ICMP error (XMIT_FRAG_NEEDED) or to fragment to (XMIT_FRAGMENT). */
  mtu = 0;
  /**
   * Set (> 1) only by userspace segmentation (gso.ts): the frame at off/len is `segs` frames,
   * `stride` bytes apart (FrameBatch FRAME_SEGMENTED). The reader resets it to 0.
   */
  segs = 0;
  stride = 0;
  /**
   * >= 0 only when a tunnel transmitter left the inner TCP/UDP checksum partial for the backend's
   * checksum offload to finish (virtio_net_hdr NEEDS_CSUM): where the checksummed range starts,
   * relative to the start of the frame (of every segment, when `segs` > 1). The reader resets it to -1.
   */
  csumStart = -1;
  /** With csumStart >= 0: where the checksum field is, from csumStart (virtio_net_hdr csum_offset). */
  csumOffset = 0;
  /**
   * Non-zero only when the transmitter left a super-frame for the kernel to segment (gue-gso.ts):
   * the virtio_net_hdr GSO type (GSO_UDP_L4) and gso_size of the frame (of every part, when
   * `segs` > 1); the checksum left partial is then the outer UDP one. The reader resets it to 0.
   */
  gsoType = 0;
  gsoSize = 0;
}

/**
 * The length MTU checks compare: the IP length, or for a GSO super-frame the IP length of each
 * of its segments (skb_gso_validate_network_len), since the frame is cut before it hits a wire.
 */
export function mtuLen(info: PacketInfo): number {
  return info.gsoSegLen > 0 ? info.gsoSegLen : info.ipLen;
}

/** Outcome of `mtuCheck`. */
export const MTU_OK = 0;
export const MTU_DROP = 1;
export const MTU_ICMP = 2;

/**
 * Decrements the IPv4 TTL (recomputing the header checksum, as ip_send_check does after every
 * IPVS transmit) or the IPv6 hop limit. Returns false, changing nothing, when the value is
 * <= 1: the packet must be dropped with ICMP time exceeded quoting it unchanged.
 */
export function decTtl(buf: Uint8Array, info: PacketInfo): boolean {
  const l3 = info.l3Off;
  if (info.af === 4) {
    const ttl = buf[l3 + 8]!;
    if (ttl <= 1) return false;
    buf[l3 + 8] = ttl - 1;
    // ip_decrease_ttl: the TTL is the high byte of a header word, so the stored checksum
    // grows by 0x0100 with an end-around carry (RFC 1624) instead of a full recompute.
    let check = ((buf[l3 + 10]! << 8) | buf[l3 + 11]!) + 0x0100;
    if (check >= 0xffff) check += 1; // exactly ip_decrease_ttl's end-around carry
    buf[l3 + 10] = (check >>> 8) & 0xff;
    buf[l3 + 11] = check & 0xff;
    info.ttl = ttl - 1;
    return true;
  }
  const hl = buf[l3 + 7]!;
  if (hl <= 1) return false;
  buf[l3 + 7] = hl - 1;
  info.ttl = hl - 1;
  return true;
}

/**
 * The kernel's ensure_mtu_is_adequate for a packet about to leave with `mtu`:
 * IPv4: DF set, longer than mtu, and not an ICMP error being relayed (`relayedIcmp`) → MTU_ICMP
 *   (frag-needed); `v4Exempt` (tunnel with pmtu_disc=0) skips the IPv4 check entirely.
 * IPv6: longer than mtu → MTU_ICMP (packet too big) for a first fragment / unfragmented packet
 *   that is not a relayed ICMP error, otherwise MTU_DROP (dropped without ICMP).
 * Length is the IP packet length (skb->len at L3), or a GSO super-frame's segment length (`mtuLen`).
 * (The kernel skips this check for GSO skbs and fragments the segments on output instead; ulvs
 * does not fragment, so an oversized segment gets the answer an oversized packet would.)
 */
export function mtuCheck(info: PacketInfo, mtu: number, relayedIcmp: boolean, v4Exempt: boolean): number {
  if (mtuLen(info) <= mtu) return MTU_OK;
  if (info.af === 4) {
    if (v4Exempt || !info.df || relayedIcmp) return MTU_OK;
    return MTU_ICMP;
  }
  // only send ICMP too big on the first fragment (kernel: !ipvsh->fragoffs && !icmp)
  return !info.isLaterFrag && info.fragOff === 0 && !relayedIcmp ? MTU_ICMP : MTU_DROP;
}

/**
 * The forwarding path's check (ip_forward's ip_exceeds_mtu / ip6_forward's ip6_pkt_too_big),
 * used for NAT replies, which the kernel routes through FORWARD before IPVS sees them:
 * IPv4 DF packets longer than mtu and all IPv6 packets longer than mtu → MTU_ICMP (ICMP errors
 * are not exempt there; icmp_send itself refuses to answer them).
 */
export function mtuCheckForward(info: PacketInfo, mtu: number): number {
  if (mtuLen(info) <= mtu) return MTU_OK;
  if (info.af === 4 && !info.df) return MTU_OK;
  return MTU_ICMP;
}

/** Writes destination and source MAC from a 12-byte template (dst[6] then src[6]). */
export function setEthAddrs(buf: Uint8Array, frameOff: number, l2: Uint8Array): void {
  // Written out: as a loop, V8 re-checks both arrays (map, length, base) and the stack
  // limit on every byte, about 29 instructions a byte, ~350 per forwarded frame.
  const o = frameOff;
  buf[o] = l2[0]!; buf[o + 1] = l2[1]!; buf[o + 2] = l2[2]!; buf[o + 3] = l2[3]!;
  buf[o + 4] = l2[4]!; buf[o + 5] = l2[5]!; buf[o + 6] = l2[6]!; buf[o + 7] = l2[7]!;
  buf[o + 8] = l2[8]!; buf[o + 9] = l2[9]!; buf[o + 10] = l2[10]!; buf[o + 11] = l2[11]!;
}

/** Writes destination and source MAC from two 6-byte arrays. */
export function setEthMacs(buf: Uint8Array, frameOff: number, dst: Uint8Array, src: Uint8Array): void {
  for (let i = 0; i < 6; i++) {
    buf[frameOff + i] = dst[i]!;
    buf[frameOff + 6 + i] = src[i]!;
  }
}

/** Builds a 12-byte L2 template from two MACs (control plane: once per destination). */
export function l2Template(dst: Uint8Array, src: Uint8Array): Uint8Array {
  const t = new Uint8Array(12);
  t.set(dst.subarray(0, 6), 0);
  t.set(src.subarray(0, 6), 6);
  return t;
}

/** Writes an IPv4 (af 4) or IPv6 address, host-order words, at buf[at]. */
export function writeAddr(buf: Uint8Array, at: number, af: number, a: Uint32Array): void {
  const n = af === 4 ? 1 : 4;
  for (let i = 0; i < n; i++, at += 4) {
    const w = a[i]!;
    buf[at] = w >>> 24; buf[at + 1] = (w >>> 16) & 0xff; buf[at + 2] = (w >>> 8) & 0xff; buf[at + 3] = w & 0xff;
  }
}

/**
 * Writes an Ethernet header ending right before `l3Off`: MACs from the template, an optional
 * 802.1Q tag (`vlanTci` >= 0) and `ethType`. Returns the frame start offset.
 */
export function writeEthHeader(buf: Uint8Array, l3Off: number, l2: Uint8Array, vlanTci: number, ethType: number): number {
  const start = l3Off - (vlanTci >= 0 ? 18 : 14);
  setEthAddrs(buf, start, l2);
  let p = start + 12;
  if (vlanTci >= 0) {
    buf[p] = 0x81; buf[p + 1] = 0x00;
    buf[p + 2] = (vlanTci >>> 8) & 0xff; buf[p + 3] = vlanTci & 0xff;
    p += 4;
  }
  buf[p] = ethType >>> 8;
  buf[p + 1] = ethType & 0xff;
  return start;
}

/** The DS field (IPv4 TOS byte / IPv6 traffic class) of the packet. */
export function ipDsfield(buf: Uint8Array, info: PacketInfo): number {
  const l3 = info.l3Off;
  if (info.af === 4) return buf[l3 + 1]!;
  return ((buf[l3]! & 0x0f) << 4) | (buf[l3 + 1]! >>> 4);
}

/**
 * Offset of the checksum field in a TCP/UDP header that a CHECKSUM_PARTIAL packet leaves to the
 * hardware (skb->csum_offset), or -1 for other protocols.
 */
export function partialCsumOffset(proto: number): number {
  if (proto === 6) return 16;
  if (proto === 17) return 6;
  return -1;
}
