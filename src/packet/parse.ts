/**
 * Frame parser. `parseFrame(buf, off, len, info)` decodes the frame `buf[off, off+len)` into the
 * caller's reused `PacketInfo` (every field is reset first) and returns a `PARSE_*` code from
 * info.ts (`PARSE_OK` = 0). It understands Ethernet with at most one 802.1Q tag, Ethernet/IPv4
 * ARP, IPv4 (options skipped, fragments), IPv6 with extension headers (hop-by-hop, routing,
 * fragment, destination options, AH; it stops at ESP, no-next-header and anything unknown), TCP,
 * UDP, SCTP, ICMP and ICMPv6; for ICMP errors it also decodes the embedded IP header and ports
 * into the `inner*` fields (`innerL3Off` = -1 when the embedded header is missing or unusable —
 * that is not an error of the outer frame). Non-IP, non-ARP frames return `PARSE_NOT_IP` with
 * `ethType` set; unknown L4 protocols return `PARSE_OK` with `l4Off` at their header. L4 is
 * bounded by the IP length, so Ethernet padding is ignored. Codes follow ip_rcv's split: an IP
 * length beyond the received bytes is `PARSE_TRUNC_IP`, one below the header `PARSE_BAD_IP_LEN`;
 * an L4 header cut short is `PARSE_TRUNC_L4`, a TCP data offset < 20 or past the end
 * `PARSE_BAD_L4`. `resetInfo(info)` clears a PacketInfo; `isIcmp4Error(type)` says which ICMPv4
 * types quote a header (3, 4, 5, 11, 12 — IPVS relates only 3, 4 and 11 to connections).
 * Hot path: no allocation, never throws, every read is bounds-checked.
 */
import * as bytes from './bytes.js';
import * as consts from './consts.js';
import * as infoConsts from './info.js';
import type { PacketInfo } from './info.js';

// Module-local copies of the imported functions and constants: an imported binding is a
// live cell that optimized code loads and checks (hole, or the expected function) at every
// use, a local const is folded. Every frame of the general path is parsed here.
const rd16 = bytes.rd16;
const rd32 = bytes.rd32;
const ARP_HLEN = consts.ARP_HLEN;
const ETH_HLEN = consts.ETH_HLEN;
const ETH_P_8021Q = consts.ETH_P_8021Q;
const ETH_P_ARP = consts.ETH_P_ARP;
const ETH_P_IP = consts.ETH_P_IP;
const ETH_P_IPV6 = consts.ETH_P_IPV6;
const ICMP_HLEN = consts.ICMP_HLEN;
const IPPROTO_ICMP = consts.IPPROTO_ICMP;
const IPPROTO_ICMPV6 = consts.IPPROTO_ICMPV6;
const IPPROTO_SCTP = consts.IPPROTO_SCTP;
const IPPROTO_TCP = consts.IPPROTO_TCP;
const IPPROTO_UDP = consts.IPPROTO_UDP;
const IPV4_HLEN = consts.IPV4_HLEN;
const IPV6_HLEN = consts.IPV6_HLEN;
const IP_DF = consts.IP_DF;
const IP_MF = consts.IP_MF;
const IP_OFFMASK = consts.IP_OFFMASK;
const NEXTHDR_AUTH = consts.NEXTHDR_AUTH;
const NEXTHDR_DEST = consts.NEXTHDR_DEST;
const NEXTHDR_FRAGMENT = consts.NEXTHDR_FRAGMENT;
const NEXTHDR_HOP = consts.NEXTHDR_HOP;
const NEXTHDR_ROUTING = consts.NEXTHDR_ROUTING;
const SCTP_HLEN = consts.SCTP_HLEN;
const TCP_HLEN = consts.TCP_HLEN;
const UDP_HLEN = consts.UDP_HLEN;
const VLAN_HLEN = consts.VLAN_HLEN;
const PARSE_BAD_EXTHDR = infoConsts.PARSE_BAD_EXTHDR;
const PARSE_BAD_IHL = infoConsts.PARSE_BAD_IHL;
const PARSE_BAD_IP_LEN = infoConsts.PARSE_BAD_IP_LEN;
const PARSE_BAD_IP_VERSION = infoConsts.PARSE_BAD_IP_VERSION;
const PARSE_BAD_L4 = infoConsts.PARSE_BAD_L4;
const PARSE_NOT_IP = infoConsts.PARSE_NOT_IP;
const PARSE_OK = infoConsts.PARSE_OK;
const PARSE_TRUNC_ARP = infoConsts.PARSE_TRUNC_ARP;
const PARSE_TRUNC_ETH = infoConsts.PARSE_TRUNC_ETH;
const PARSE_TRUNC_IP = infoConsts.PARSE_TRUNC_IP;
const PARSE_TRUNC_L4 = infoConsts.PARSE_TRUNC_L4;
const PARSE_TRUNC_VLAN = infoConsts.PARSE_TRUNC_VLAN;

/** Clears every field of `info` to its "absent" value. */
export function resetInfo(info: PacketInfo): void {
  info.frameOff = 0;
  info.frameLen = 0;
  info.l3Off = 0;
  info.ethType = 0;
  info.vlanTci = -1;
  info.af = 0;
  info.l3HdrLen = 0;
  info.ipLen = 0;
  info.proto = 0;
  info.ttl = 0;
  info.df = false;
  info.fragOff = 0;
  info.moreFrags = false;
  info.isLaterFrag = false;
  info.fragHdrOff = -1;
  const s = info.saddr, d = info.daddr, is = info.innerSaddr, id = info.innerDaddr;
  s[0] = 0; s[1] = 0; s[2] = 0; s[3] = 0;
  d[0] = 0; d[1] = 0; d[2] = 0; d[3] = 0;
  is[0] = 0; is[1] = 0; is[2] = 0; is[3] = 0;
  id[0] = 0; id[1] = 0; id[2] = 0; id[3] = 0;
  info.l4Off = -1;
  info.l4Len = 0;
  info.sport = 0;
  info.dport = 0;
  info.tcpFlags = 0;
  info.sctpChunk = -1;
  info.icmpType = -1;
  info.icmpCode = -1;
  info.innerL3Off = -1;
  info.innerL3HdrLen = 0;
  info.innerProto = 0;
  info.innerL4Off = -1;
  info.innerSport = -1;
  info.innerDport = -1;
  info.arpOp = 0;
  info.arpSpa = 0;
  info.arpTpa = 0;
  info.gsoSegLen = 0;
}

export function parseFrame(buf: Uint8Array, off: number, len: number, info: PacketInfo): number {
  resetInfo(info);
  // Negated comparisons also reject NaN.
  if (!(off >= 0) || !(len >= 0)) return PARSE_TRUNC_ETH;
  let end = off + len;
  if (end > buf.length) end = buf.length;
  info.frameOff = off;
  info.frameLen = end > off ? end - off : 0;
  if (off + ETH_HLEN > end) return PARSE_TRUNC_ETH;

  let ethType = rd16(buf, off + 12);
  let l3 = off + ETH_HLEN;
  if (ethType === ETH_P_8021Q) {
    info.ethType = ethType;
    if (l3 + VLAN_HLEN > end) return PARSE_TRUNC_VLAN;
    info.vlanTci = rd16(buf, l3);
    ethType = rd16(buf, l3 + 2);
    l3 += VLAN_HLEN;
  }
  info.ethType = ethType;
  info.l3Off = l3;
  if (ethType === ETH_P_IP) return parseIpv4(buf, l3, end, info);
  if (ethType === ETH_P_IPV6) return parseIpv6(buf, l3, end, info);
  if (ethType === ETH_P_ARP) return parseArp(buf, l3, end, info);
  return PARSE_NOT_IP;
}

function parseArp(buf: Uint8Array, p: number, end: number, info: PacketInfo): number {
  if (p + 8 > end) return PARSE_TRUNC_ARP;
  // Only Ethernet (htype 1, hlen 6) / IPv4 (ptype 0x0800, plen 4) ARP carries addresses we use.
  if (rd16(buf, p) !== 1 || rd16(buf, p + 2) !== ETH_P_IP || buf[p + 4] !== 6 || buf[p + 5] !== 4) {
    return PARSE_NOT_IP;
  }
  if (p + ARP_HLEN > end) return PARSE_TRUNC_ARP;
  info.arpOp = rd16(buf, p + 6);
  info.arpSpa = rd32(buf, p + 14);
  info.arpTpa = rd32(buf, p + 24);
  return PARSE_OK;
}

function parseIpv4(buf: Uint8Array, p: number, end: number, info: PacketInfo): number {
  const avail = end - p;
  if (avail < 1) return PARSE_TRUNC_IP;
  const vihl = buf[p]!;
  if (vihl >>> 4 !== 4) return PARSE_BAD_IP_VERSION;
  info.af = 4;
  if (avail < IPV4_HLEN) return PARSE_TRUNC_IP;
  const hl = (vihl & 15) << 2;
  if (hl < IPV4_HLEN || hl > avail) return PARSE_BAD_IHL;
  info.l3HdrLen = hl;
  const tot = rd16(buf, p + 2);
  info.ipLen = tot;
  // Like ip_rcv: a length beyond the received bytes is a truncated packet, one shorter than the header is bad.
  if (tot > avail) return PARSE_TRUNC_IP;
  if (tot < hl) return PARSE_BAD_IP_LEN;
  const frag = rd16(buf, p + 6);
  info.df = (frag & IP_DF) !== 0;
  info.moreFrags = (frag & IP_MF) !== 0;
  info.fragOff = (frag & IP_OFFMASK) << 3;
  info.ttl = buf[p + 8]!;
  info.proto = buf[p + 9]!;
  info.saddr[0] = rd32(buf, p + 12);
  info.daddr[0] = rd32(buf, p + 16);
  if (info.fragOff !== 0) {
    info.isLaterFrag = true;
    return PARSE_OK;
  }
  info.l4Off = p + hl;
  info.l4Len = tot - hl;
  return parseL4(buf, p + tot, info);
}

function parseIpv6(buf: Uint8Array, p: number, end: number, info: PacketInfo): number {
  const avail = end - p;
  if (avail < 1) return PARSE_TRUNC_IP;
  if (buf[p]! >>> 4 !== 6) return PARSE_BAD_IP_VERSION;
  info.af = 6;
  if (avail < IPV6_HLEN) return PARSE_TRUNC_IP;
  // Jumbograms (payload length 0 + hop-by-hop jumbo option) are not supported: 0 means 0 here.
  const ipLen = IPV6_HLEN + rd16(buf, p + 4);
  info.ipLen = ipLen;
  info.l3HdrLen = IPV6_HLEN;
  if (ipLen > avail) return PARSE_TRUNC_IP;
  info.ttl = buf[p + 7]!;
  readAddr6(buf, p + 8, info.saddr);
  readAddr6(buf, p + 24, info.daddr);
  const ipEnd = p + ipLen;
  if (!walkIpv6Ext(buf, p + IPV6_HLEN, buf[p + 6]!, ipEnd)) {
    info.proto = wProto;
    return PARSE_BAD_EXTHDR;
  }
  info.proto = wProto;
  info.l3HdrLen = wPos - p;
  info.fragHdrOff = wFragHdr;
  info.fragOff = wFragOff;
  info.moreFrags = wMore;
  if (wLater) {
    info.isLaterFrag = true;
    return PARSE_OK;
  }
  info.l4Off = wPos;
  info.l4Len = ipEnd - wPos;
  return parseL4(buf, ipEnd, info);
}

function readAddr6(buf: Uint8Array, o: number, dst: Uint32Array): void {
  dst[0] = rd32(buf, o);
  dst[1] = rd32(buf, o + 4);
  dst[2] = rd32(buf, o + 8);
  dst[3] = rd32(buf, o + 12);
}

// Results of walkIpv6Ext, kept at module level so the walk allocates nothing.
let wPos = 0;
let wProto = 0;
let wFragHdr = -1;
let wFragOff = 0;
let wMore = false;
let wLater = false;

/**
 * Walks IPv6 extension headers starting at `pos` whose type is `nh`, never reading at or past
 * `end`. On success (true) wPos/wProto are the upper-layer header offset and protocol; for a
 * non-first fragment the walk stops after the fragment header with wProto = its next header
 * (as ipv6_find_hdr reports it). The chain length is bounded by `end` (each header >= 8 bytes).
 */
function walkIpv6Ext(buf: Uint8Array, pos: number, nh: number, end: number): boolean {
  const first = pos;
  wFragHdr = -1;
  wFragOff = 0;
  wMore = false;
  wLater = false;
  for (;;) {
    wPos = pos;
    wProto = nh;
    if (nh === NEXTHDR_HOP || nh === NEXTHDR_ROUTING || nh === NEXTHDR_DEST) {
      // Hop-by-hop options are only valid directly after the fixed header (RFC 8200 4.1).
      if (nh === NEXTHDR_HOP && pos !== first) return false;
      if (pos + 2 > end) return false;
      const hl = (buf[pos + 1]! + 1) << 3;
      if (pos + hl > end) return false;
      nh = buf[pos]!;
      pos += hl;
    } else if (nh === NEXTHDR_AUTH) {
      if (pos + 2 > end) return false;
      const hl = (buf[pos + 1]! + 2) << 2;
      if (pos + hl > end) return false;
      nh = buf[pos]!;
      pos += hl;
    } else if (nh === NEXTHDR_FRAGMENT) {
      if (pos + 8 > end) return false;
      const fo = rd16(buf, pos + 2);
      wFragHdr = pos;
      wFragOff = fo & 0xfff8;
      wMore = (fo & 1) !== 0;
      nh = buf[pos]!;
      pos += 8;
      if (wFragOff !== 0) {
        wLater = true;
        wPos = pos;
        wProto = nh;
        return true;
      }
    } else {
      // Upper layer, ESP (50), no next header (59) or unknown: stop here.
      return true;
    }
  }
}

function parseL4(buf: Uint8Array, ipEnd: number, info: PacketInfo): number {
  const l4 = info.l4Off;
  const n = info.l4Len;
  switch (info.proto) {
    case IPPROTO_TCP: {
      if (n < TCP_HLEN) return PARSE_TRUNC_L4;
      info.sport = rd16(buf, l4);
      info.dport = rd16(buf, l4 + 2);
      info.tcpFlags = buf[l4 + 13]!;
      const doff = (buf[l4 + 12]! >>> 4) << 2;
      if (doff < TCP_HLEN || doff > n) return PARSE_BAD_L4;
      return PARSE_OK;
    }
    case IPPROTO_UDP:
      if (n < UDP_HLEN) return PARSE_TRUNC_L4;
      info.sport = rd16(buf, l4);
      info.dport = rd16(buf, l4 + 2);
      return PARSE_OK;
    case IPPROTO_SCTP:
      if (n < SCTP_HLEN) return PARSE_TRUNC_L4;
      info.sport = rd16(buf, l4);
      info.dport = rd16(buf, l4 + 2);
      // The first chunk type counts only when its whole 4-byte chunk header is there.
      if (n >= SCTP_HLEN + 4) info.sctpChunk = buf[l4 + SCTP_HLEN]!;
      return PARSE_OK;
    case IPPROTO_ICMP:
      if (info.af !== 4) return PARSE_OK;
      if (n < ICMP_HLEN) return PARSE_TRUNC_L4;
      info.icmpType = buf[l4]!;
      info.icmpCode = buf[l4 + 1]!;
      if (isIcmp4Error(info.icmpType)) parseInner(buf, l4 + ICMP_HLEN, ipEnd, info);
      return PARSE_OK;
    case IPPROTO_ICMPV6:
      if (info.af !== 6) return PARSE_OK;
      if (n < ICMP_HLEN) return PARSE_TRUNC_L4;
      info.icmpType = buf[l4]!;
      info.icmpCode = buf[l4 + 1]!;
      // ICMPv6 error messages are exactly the types below 128 (RFC 4443 2.1).
      if (info.icmpType < 128) parseInner(buf, l4 + ICMP_HLEN, ipEnd, info);
      return PARSE_OK;
    default:
      return PARSE_OK;
  }
}

/** ICMPv4 messages that quote an IP header: unreachable, source quench, redirect, time exceeded, parameter problem. */
export function isIcmp4Error(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/**
 * Decodes the IP header quoted by an ICMP error at `p` (same family as the outer packet).
 * Leaves innerL3Off = -1 when the quoted header is truncated or inconsistent.
 */
function parseInner(buf: Uint8Array, p: number, end: number, info: PacketInfo): void {
  const avail = end - p;
  let l4: number;
  let proto: number;
  if (info.af === 4) {
    if (avail < IPV4_HLEN) return;
    const vihl = buf[p]!;
    if (vihl >>> 4 !== 4) return;
    const hl = (vihl & 15) << 2;
    if (hl < IPV4_HLEN || hl > avail) return;
    proto = buf[p + 9]!;
    info.innerL3Off = p;
    info.innerL3HdrLen = hl;
    info.innerProto = proto;
    info.innerSaddr[0] = rd32(buf, p + 12);
    info.innerDaddr[0] = rd32(buf, p + 16);
    // A quoted non-first fragment carries no L4 header.
    if ((rd16(buf, p + 6) & IP_OFFMASK) !== 0) return;
    l4 = p + hl;
  } else {
    if (avail < IPV6_HLEN) return;
    if (buf[p]! >>> 4 !== 6) return;
    if (!walkIpv6Ext(buf, p + IPV6_HLEN, buf[p + 6]!, end)) return;
    proto = wProto;
    info.innerL3Off = p;
    info.innerL3HdrLen = wPos - p;
    info.innerProto = proto;
    readAddr6(buf, p + 8, info.innerSaddr);
    readAddr6(buf, p + 24, info.innerDaddr);
    if (wLater) return;
    l4 = wPos;
  }
  if (l4 >= end) return;
  info.innerL4Off = l4;
  if ((proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP) && l4 + 4 <= end) {
    info.innerSport = rd16(buf, l4);
    info.innerDport = rd16(buf, l4 + 2);
  }
}
