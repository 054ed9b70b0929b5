/**
 * ICMP for the transmitters:
 * 1. NAT of ICMP errors that belong to a NAT connection (kernel ip_vs_nat_icmp / _v6):
 *    inbound (client side → RS): outer daddr := RS, quoted saddr := RS, quoted sport := dport;
 *    outbound (RS → client side): outer saddr := VIP, quoted daddr := VIP, quoted dport := vport.
 *    IPv4: both IP header checksums and the ICMP checksum are recomputed; ICMPv6: the checksum
 *    with its pseudo-header. The quoted transport checksum is left as it is (the kernel does too).
 * 2. Building ICMP errors the director originates (icmp_send / icmp6_send): port unreachable,
 *    frag-needed / packet too big, time exceeded — into a separate output buffer, with the
 *    kernel's eligibility rules and quoting limits.
 * Hot path: no allocation (the builder is one object per engine).
 */
import type { PacketInfo } from '../packet/info.js';
import {
  MTU_DROP, MTU_ICMP, XMIT_DROP, XMIT_ERROR, XMIT_FRAG_NEEDED, XMIT_FRAGMENT, XMIT_OK,
  XMIT_TTL_EXCEEDED, decTtl, mtuCheck, mtuCheckForward, setEthAddrs, writeAddr, writeEthHeader, type XmitResult,
} from './common.js';
import { csumAdd, csumFinish, pseudoSumAt, setIpv4HeaderChecksum } from '../packet/checksum.js';

function copyAddr(dst: Uint32Array, src: Uint32Array): void {
  dst[0] = src[0]!; dst[1] = src[1]!; dst[2] = src[2]!; dst[3] = src[3]!;
}

/** Recomputes the ICMP (IPv4) or ICMPv6 (with pseudo-header) checksum of the message at info.l4Off. */
export function icmpSetCsum(buf: Uint8Array, info: PacketInfo): void {
  const l4 = info.l4Off;
  const len = info.l3Off + info.ipLen - l4;
  buf[l4 + 2] = 0;
  buf[l4 + 3] = 0;
  const init = info.af === 4 ? 0 : pseudoSumAt(buf, 6, info.l3Off, 58, len);
  const c = csumFinish(csumAdd(buf, l4, len, init));
  buf[l4 + 2] = c >>> 8;
  buf[l4 + 3] = c & 0xff;
}

/**
 * Shared body of the two ICMP NAT directions. `inbound`: outer daddr / quoted saddr / quoted
 * sport; else outer saddr / quoted daddr / quoted dport. Requires a parsed ICMP error with a
 * quoted header (info.innerL3Off >= 0). Ports are only rewritten for a quoted TCP/UDP/SCTP
 * header that carries them (not for a quoted non-first fragment: kernel checks `!fragoffs` for
 * IPv6; for IPv4 it reassembles first).
 */
function natIcmp(buf: Uint8Array, info: PacketInfo, inbound: boolean, addr: Uint32Array, port: number): boolean {
  const af = info.af;
  const l3 = info.l3Off;
  const c3 = info.innerL3Off;
  if (info.l4Off < 0 || c3 < 0) return false;
  const end = l3 + info.ipLen;
  if (af === 4) {
    writeAddr(buf, l3 + (inbound ? 16 : 12), 4, addr);
    setIpv4HeaderChecksum(buf, l3);
    writeAddr(buf, c3 + (inbound ? 12 : 16), 4, addr);
    setIpv4HeaderChecksum(buf, c3);
  } else {
    writeAddr(buf, l3 + (inbound ? 24 : 8), 6, addr);
    writeAddr(buf, c3 + (inbound ? 8 : 24), 6, addr);
  }
  if (inbound) { copyAddr(info.daddr, addr); copyAddr(info.innerSaddr, addr); }
  else { copyAddr(info.saddr, addr); copyAddr(info.innerDaddr, addr); }
  const p = info.innerProto;
  const c4 = info.innerL4Off;
  if ((p === 6 || p === 17 || p === 132) && c4 >= 0 && c4 + 4 <= end) {
    const at = c4 + (inbound ? 0 : 2);
    buf[at] = port >>> 8;
    buf[at + 1] = port & 0xff;
    if (inbound) info.innerSport = port;
    else info.innerDport = port;
  }
  icmpSetCsum(buf, info);
  return true;
}

/** ICMP error from the client side about a NAT conn: outer daddr, quoted saddr := RS, quoted sport := dport. */
export function natIcmpInbound(buf: Uint8Array, info: PacketInfo, rsAddr: Uint32Array, rsPort: number): boolean {
  return natIcmp(buf, info, true, rsAddr, rsPort);
}

/** ICMP error from a NAT real server: outer saddr, quoted daddr := VIP, quoted dport := vport. */
export function natIcmpOutbound(buf: Uint8Array, info: PacketInfo, vAddr: Uint32Array, vPort: number): boolean {
  return natIcmp(buf, info, false, vAddr, vPort);
}

/**
 * ip_vs_icmp_xmit for a NAT conn: TTL decrement, MTU check as a relayed ICMP error (never
 * frag-needed; IPv6 too-big is dropped), the inbound ICMP NAT, Ethernet addresses.
 * (For DR/TUN conns the kernel passes the ICMP error unchanged to the conn's transmitter:
 * call xmitDr / TunnelEncap.xmit with relayedIcmp = true.)
 */
export function xmitIcmpNatIn(
  buf: Uint8Array, info: PacketInfo, rsAddr: Uint32Array, rsPort: number,
  l2: Uint8Array, mtu: number, res: XmitResult,
): number {
  res.off = info.frameOff;
  res.len = info.frameLen;
  res.mtu = mtu;
  if (!decTtl(buf, info)) return XMIT_TTL_EXCEEDED;
  const m = mtuCheck(info, mtu, true, false);
  if (m === MTU_ICMP) return XMIT_FRAG_NEEDED;
  if (m === MTU_DROP) return XMIT_DROP;
  if (!natIcmp(buf, info, true, rsAddr, rsPort)) return XMIT_ERROR;
  setEthAddrs(buf, info.frameOff, l2);
  return info.ipLen > mtu ? XMIT_FRAGMENT : XMIT_OK;
}

/** The reply direction (handle_response_icmp after ip_forward): TTL/MTU checks of forwarding, then NAT. */
export function xmitIcmpNatOut(
  buf: Uint8Array, info: PacketInfo, vAddr: Uint32Array, vPort: number,
  l2: Uint8Array, mtu: number, res: XmitResult,
): number {
  res.off = info.frameOff;
  res.len = info.frameLen;
  res.mtu = mtu;
  const l3 = info.l3Off;
  if ((info.af === 4 ? buf[l3 + 8]! : buf[l3 + 7]!) <= 1) return XMIT_TTL_EXCEEDED;
  if (mtuCheckForward(info, mtu) === MTU_ICMP) return XMIT_FRAG_NEEDED;
  decTtl(buf, info);
  if (!natIcmp(buf, info, false, vAddr, vPort)) return XMIT_ERROR;
  setEthAddrs(buf, info.frameOff, l2);
  return info.ipLen > mtu ? XMIT_FRAGMENT : XMIT_OK;
}

// ---------------------------------------------------------------------------------------------
// Originating ICMP errors.

/** Kinds of error the director sends; the builder maps them to the family's type/code. */
export const ICMPERR_PORT_UNREACH = 0; // 3/3, ICMPv6 1/4 (ip_vs_leave, nat_icmp_send)
export const ICMPERR_FRAG_NEEDED = 1; // 3/4 + next-hop MTU, ICMPv6 2/0 packet too big + MTU
export const ICMPERR_TIME_EXCEEDED = 2; // 11/0, ICMPv6 3/0

/** RFC 1812 / kernel icmp_send: an IPv4 error message is at most 576 bytes. */
export const ICMP4_MAX_LEN = 576;
/** icmp6_send: quote at most IPV6_MIN_MTU - 40 - 8 bytes, so the message fits 1280. */
export const ICMP6_MAX_LEN = 1280;

function isIcmp4ErrorType(t: number): boolean {
  // icmp_pointers[].error: unreachable, source quench, redirect, time exceeded, parameter problem
  return t === 3 || t === 4 || t === 5 || t === 11 || t === 12;
}

/**
 * icmp_send's refusals for an IPv4 packet: link-layer broadcast/multicast destination, IP
 * multicast or limited-broadcast destination, a non-first fragment, and an ICMP error (or an
 * unknown ICMP type > 18, or an ICMP header too short to tell). Also refused: a source that
 * cannot be answered (0.0.0.0, multicast, broadcast) — the kernel drops those as martians
 * before IPVS sees them. A subnet-directed broadcast destination is not known here (the
 * caller's address plan decides).
 */
export function icmp4ErrorAllowed(buf: Uint8Array, info: PacketInfo): boolean {
  if (info.af !== 4) return false;
  if ((buf[info.frameOff]! & 1) !== 0) return false;
  const d = info.daddr[0]!;
  if ((d >>> 28) === 0xe || d === 0xffffffff) return false;
  const s = info.saddr[0]!;
  if (s === 0 || (s >>> 28) === 0xe || s === 0xffffffff) return false;
  if (info.fragOff !== 0 || info.isLaterFrag) return false;
  if (info.proto === 1) {
    const l4 = info.l3Off + info.l3HdrLen;
    if (l4 >= info.l3Off + info.ipLen) return false;
    const t = buf[l4]!;
    // Assume any unknown ICMP type is an error (icmp_send)
    if (t > 18 || isIcmp4ErrorType(t)) return false;
  }
  return true;
}

/**
 * icmp6_send's refusals: a multicast destination or link-layer broadcast/multicast frame is
 * answered only with Packet Too Big; an unspecified or multicast source never; an ICMPv6 error
 * (or an ICMPv6 header too short to tell, unless in a non-first fragment) never. Unlike IPv4,
 * non-first fragments are answered (RFC 8200); IPVS itself only sends Packet Too Big for first
 * fragments (mtuCheck).
 */
export function icmp6ErrorAllowed(buf: Uint8Array, info: PacketInfo, type: number): boolean {
  if (info.af !== 6) return false;
  const d0 = info.daddr[0]!;
  if ((d0 >>> 24 === 0xff || (buf[info.frameOff]! & 1) !== 0) && type !== 2) return false;
  const s = info.saddr;
  if (s[0]! >>> 24 === 0xff) return false;
  if (s[0] === 0 && s[1] === 0 && s[2] === 0 && s[3] === 0) return false;
  if (info.proto === 58) {
    const p = info.l3Off + info.l3HdrLen;
    if (p >= info.l3Off + info.ipLen) return info.fragOff !== 0;
    if (buf[p]! < 128) return false;
  }
  return true;
}

/** Builds ICMP error frames. One per engine; keeps the IPv4 ID counter. */
export class IcmpErrorBuilder {
  /** TTL / hop limit of generated errors (sysctl ip_default_ttl / hop_limit default 64). */
  ttl = 64;
  /** MTU of the route back to the client: IPv4 errors are limited to min(mtu, 576) bytes. */
  routeMtu4 = 1500;
  private ipId = 0;

  constructor(firstId = 0) {
    this.ipId = firstId & 0xffff;
  }

  /**
   * Writes an Ethernet + IP + ICMP error about the packet in `src` (described by `info`) into
   * `out` at `outOff`. `kind` is an ICMPERR_*; `mtu` is reported for ICMPERR_FRAG_NEEDED.
   * `saddr` is the source address of the error (IPv4 in word 0): the kernel uses the offending
   * packet's destination when that is a local address (the VIP — pass `info.daddr`), else an
   * address of the outgoing interface. `l2` = 12-byte MAC template (client-side next hop, our
   * MAC), `vlanTci` >= 0 adds an 802.1Q tag. Returns the frame length, or 0 when no error may be
   * sent (see icmp4ErrorAllowed / icmp6ErrorAllowed) or `out` is too small.
   * The quote is the offending IP packet as it is now (the engine calls this before changing it,
   * or after decTtl for frag-needed as the kernel does), cut so the IP message is at most 576
   * (IPv4) / 1280 (IPv6) bytes. IP options of the offending packet are not echoed.
   */
  build(
    src: Uint8Array, info: PacketInfo, kind: number, mtu: number, saddr: Uint32Array,
    l2: Uint8Array, vlanTci: number, out: Uint8Array, outOff: number,
  ): number {
    return info.af === 4
      ? this.build4(src, info, kind, mtu, saddr, l2, vlanTci, out, outOff)
      : info.af === 6 ? this.build6(src, info, kind, mtu, saddr, l2, vlanTci, out, outOff) : 0;
  }

  private build4(
    src: Uint8Array, info: PacketInfo, kind: number, mtu: number, saddr: Uint32Array,
    l2: Uint8Array, vlanTci: number, out: Uint8Array, outOff: number,
  ): number {
    if (!icmp4ErrorAllowed(src, info)) return 0;
    // RFC says return as much as we can without exceeding 576 bytes (icmp_send)
    let room = this.routeMtu4 < ICMP4_MAX_LEN ? this.routeMtu4 : ICMP4_MAX_LEN;
    room -= 20 + 8;
    if (room <= 20) return 0;
    const quote = info.ipLen < room ? info.ipLen : room;
    const l2len = vlanTci >= 0 ? 18 : 14;
    const total = 20 + 8 + quote;
    if (outOff < 0 || outOff + l2len + total > out.length) return 0;
    const l3 = outOff + l2len;
    writeEthHeader(out, l3, l2, vlanTci, 0x0800);
    const sl3 = info.l3Off;
    out[l3] = 0x45;
    // tos = RT_TOS(iph->tos) | IPTOS_PREC_INTERNETCONTROL for errors
    out[l3 + 1] = (src[sl3 + 1]! & 0x1e) | 0xc0;
    out[l3 + 2] = total >>> 8; out[l3 + 3] = total & 0xff;
    const id = this.ipId;
    this.ipId = (id + 1) & 0xffff;
    out[l3 + 4] = id >>> 8; out[l3 + 5] = id & 0xff;
    out[l3 + 6] = 0; out[l3 + 7] = 0; // the ICMP socket uses IP_PMTUDISC_DONT: no DF
    out[l3 + 8] = this.ttl;
    out[l3 + 9] = 1;
    writeAddr(out, l3 + 12, 4, saddr);
    for (let i = 0; i < 4; i++) out[l3 + 16 + i] = src[sl3 + 12 + i]!;
    setIpv4HeaderChecksum(out, l3);
    const ic = l3 + 20;
    let type = 3, code = 3, rest = 0;
    if (kind === ICMPERR_FRAG_NEEDED) { code = 4; rest = mtu & 0xffff; }
    else if (kind === ICMPERR_TIME_EXCEEDED) { type = 11; code = 0; }
    out[ic] = type; out[ic + 1] = code; out[ic + 2] = 0; out[ic + 3] = 0;
    // un.gateway = htonl(info): the next-hop MTU lands in the low 16 bits (RFC 1191)
    out[ic + 4] = 0; out[ic + 5] = 0; out[ic + 6] = rest >>> 8; out[ic + 7] = rest & 0xff;
    for (let i = 0; i < quote; i++) out[ic + 8 + i] = src[sl3 + i]!;
    const c = csumFinish(csumAdd(out, ic, 8 + quote, 0));
    out[ic + 2] = c >>> 8; out[ic + 3] = c & 0xff;
    return l2len + total;
  }

  private build6(
    src: Uint8Array, info: PacketInfo, kind: number, mtu: number, saddr: Uint32Array,
    l2: Uint8Array, vlanTci: number, out: Uint8Array, outOff: number,
  ): number {
    let type = 1, code = 4, rest = 0;
    if (kind === ICMPERR_FRAG_NEEDED) { type = 2; code = 0; rest = mtu >>> 0; }
    else if (kind === ICMPERR_TIME_EXCEEDED) { type = 3; code = 0; }
    if (!icmp6ErrorAllowed(src, info, type)) return 0;
    const maxQuote = ICMP6_MAX_LEN - 40 - 8;
    const quote = info.ipLen < maxQuote ? info.ipLen : maxQuote;
    const l2len = vlanTci >= 0 ? 18 : 14;
    const plen = 8 + quote;
    if (outOff < 0 || outOff + l2len + 40 + plen > out.length) return 0;
    const l3 = outOff + l2len;
    writeEthHeader(out, l3, l2, vlanTci, 0x86dd);
    // Traffic class 0 (icmpv6 socket tclass); flow label 0 (the kernel may put an automatic flow label here)
    out[l3] = 0x60; out[l3 + 1] = 0; out[l3 + 2] = 0; out[l3 + 3] = 0;
    out[l3 + 4] = plen >>> 8; out[l3 + 5] = plen & 0xff;
    out[l3 + 6] = 58;
    out[l3 + 7] = this.ttl;
    writeAddr(out, l3 + 8, 6, saddr);
    const sl3 = info.l3Off;
    for (let i = 0; i < 16; i++) out[l3 + 24 + i] = src[sl3 + 8 + i]!;
    const ic = l3 + 40;
    out[ic] = type; out[ic + 1] = code; out[ic + 2] = 0; out[ic + 3] = 0;
    out[ic + 4] = rest >>> 24; out[ic + 5] = (rest >>> 16) & 0xff; out[ic + 6] = (rest >>> 8) & 0xff; out[ic + 7] = rest & 0xff;
    for (let i = 0; i < quote; i++) out[ic + 8 + i] = src[sl3 + i]!;
    const c = csumFinish(csumAdd(out, ic, plen, pseudoSumAt(out, 6, l3, 58, plen)));
    out[ic + 2] = c >>> 8; out[ic + 3] = c & 0xff;
    return l2len + 40 + plen;
  }
}
