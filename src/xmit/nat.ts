/**
 * NAT (masquerading) rewrites, as the kernel's ip_vs_nat_xmit / handle_response do them with the
 * protocol handlers tcp/udp/sctp_{dnat,snat}_handler:
 * - inbound (client → real server): destination port := conn dport, destination address := RS;
 * - outbound (real server → client): source port := vport, source address := VIP.
 * IPv4 header checksum recomputed (ip_send_check). Transport checksums:
 * - complete checksum: RFC 1624 incremental update for the address and port change;
 * - CHECKSUM_PARTIAL (`partial`): only the pseudo-header part changes and the field stays a
 *   non-complemented pseudo-header sum (tcp/udp_partial_csum_update);
 * - UDP with checksum 0: a full checksum is computed (the kernel does not keep 0 — its
 *   udp_*nat_handler falls into the "full checksum calculation" branch), 0 → 0xFFFF;
 * - SCTP: CRC32c recomputed, only when the port really changes (or partial) — the CRC does not
 *   cover addresses.
 * Non-first fragments (no L4 header) only get the address change, like the kernel's IPv6
 * handlers (`iph->fragoffs` → return 1); the kernel reassembles IPv4 first.
 * Plain functions on the received frame; they also refresh `info.daddr/dport` or
 * `info.saddr/sport` so the PacketInfo keeps describing the frame. No allocation.
 */
import type { PacketInfo } from '../packet/info.js';
import * as checksum from '../packet/checksum.js';
import { sctpChecksumSet } from '../packet/crc32c.js';
import * as common from './common.js';
import type { XmitResult } from './common.js';

// Module-local copies of the imported functions and constants: an imported binding is a
// live cell that optimized code loads and checks (hole, or the expected function) at every
// use; a local const is folded. These run for every general-path NAT packet.
const csumFold = checksum.csumFold;
const csumUpdate16 = checksum.csumUpdate16;
const csumUpdate32 = checksum.csumUpdate32;
const csumUpdateAddr6 = checksum.csumUpdateAddr6;
const setL4Checksum = checksum.setL4Checksum;
const XMIT_ERROR = common.XMIT_ERROR;
const XMIT_FRAG_NEEDED = common.XMIT_FRAG_NEEDED;
const XMIT_FRAGMENT = common.XMIT_FRAGMENT;
const XMIT_OK = common.XMIT_OK;
const XMIT_TTL_EXCEEDED = common.XMIT_TTL_EXCEEDED;
const XMIT_DROP = common.XMIT_DROP;
const MTU_ICMP = common.MTU_ICMP;
const MTU_DROP = common.MTU_DROP;
const decTtl = common.decTtl;
const mtuCheck = common.mtuCheck;
const mtuLen = common.mtuLen;
const mtuCheckForward = common.mtuCheckForward;
const setEthAddrs = common.setEthAddrs;

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_SCTP = 132;

/**
 * Pseudo-header-only update of a CHECKSUM_PARTIAL field, which holds the folded pseudo-header sum
 * without complement (kernel tcp/udp_partial_csum_update: ~csum_fold(diff(old, new, P))):
 * P' = fold(P + ~old + new) over the address words. Exported for tests.
 */
export function partialCsumReplaceAddr(partial: number, af: number, oldA: Uint32Array, newA: Uint32Array): number {
  const n = af === 4 ? 1 : 4;
  let s = partial;
  for (let i = 0; i < n; i++) {
    const o = oldA[i]!, w = newA[i]!;
    s += (~o >>> 16 & 0xffff) + (~o & 0xffff) + (w >>> 16) + (w & 0xffff);
  }
  return csumFold(s);
}

/**
 * Rewrites one side (destination when `isDst`, else source) of the packet to newAddr:newPort.
 * Returns false when the packet cannot be rewritten correctly (truncated L4 header; an SCTP or
 * zero-checksum-UDP first fragment whose checksum needs data we do not have).
 */
function natRewrite(buf: Uint8Array, info: PacketInfo, isDst: boolean, newAddr: Uint32Array, newPort: number, partial: boolean): boolean {
  const af = info.af;
  const l3 = info.l3Off;
  const oldAddr = isDst ? info.daddr : info.saddr;
  const l4 = info.l4Off;
  const proto = info.proto;
  const isFragment = info.moreFrags || info.fragOff !== 0;

  // Transport header first: the incremental update needs the old address still in `info`.
  let fullUdp = false;
  if (l4 >= 0 && (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP)) {
    const portAt = l4 + (isDst ? 2 : 0);
    const oldPort = (buf[portAt]! << 8) | buf[portAt + 1]!;
    if (proto === IPPROTO_SCTP) {
      if (info.l4Len < 12) return false;
      // Only update csum if we really have to (sctp_*nat_handler)
      if (oldPort !== newPort || partial) {
        if (isFragment) return false;
        buf[portAt] = newPort >>> 8;
        buf[portAt + 1] = newPort & 0xff;
        sctpChecksumSet(buf, l4, info.l4Len);
      }
    } else {
      const at = proto === IPPROTO_TCP ? 16 : 6;
      if (info.l4Len < at + 2) return false;
      buf[portAt] = newPort >>> 8;
      buf[portAt + 1] = newPort & 0xff;
      const check = (buf[l4 + at]! << 8) | buf[l4 + at + 1]!;
      let c: number;
      if (partial) {
        // Pseudo-header only: the port lies in the data the NIC will sum.
        c = partialCsumReplaceAddr(check, af, oldAddr, newAddr);
      } else if (proto === IPPROTO_UDP && check === 0) {
        // The kernel computes a full checksum for a checksum-less UDP packet.
        c = 0;
        fullUdp = !isFragment;
      } else {
        // RFC 1624 for the address, then the port (one's-complement addition is associative:
        // same value as the kernel's single csum_fold over both differences)
        c = af === 4 ? csumUpdate32(check, oldAddr[0]!, newAddr[0]!) : csumUpdateAddr6(check, oldAddr, newAddr);
        c = csumUpdate16(c, oldPort, newPort);
        if (c === 0 && proto === IPPROTO_UDP) c = 0xffff; // CSUM_MANGLED_0
      }
      buf[l4 + at] = c >>> 8;
      buf[l4 + at + 1] = c & 0xff;
    }
    if (isDst) info.dport = newPort;
    else info.sport = newPort;
  }

  // Network header.
  if (af === 4) {
    const a = l3 + (isDst ? 16 : 12);
    const w = newAddr[0]!;
    buf[a] = w >>> 24; buf[a + 1] = (w >>> 16) & 0xff; buf[a + 2] = (w >>> 8) & 0xff; buf[a + 3] = w & 0xff;
    // Incremental (RFC 1624) rather than ip_send_check's full recompute: equal for any header
    // whose checksum was right, and a header with a wrong checksum stays wrong (the kernel would
    // have dropped it in ip_rcv; so will the receiver).
    const hc = csumUpdate32((buf[l3 + 10]! << 8) | buf[l3 + 11]!, oldAddr[0]!, w);
    buf[l3 + 10] = hc >>> 8; buf[l3 + 11] = hc & 0xff;
    oldAddr[0] = w;
  } else {
    let a = l3 + (isDst ? 24 : 8);
    for (let i = 0; i < 4; i++, a += 4) {
      const w = newAddr[i]!;
      buf[a] = w >>> 24; buf[a + 1] = (w >>> 16) & 0xff; buf[a + 2] = (w >>> 8) & 0xff; buf[a + 3] = w & 0xff;
      oldAddr[i] = w;
    }
  }
  if (fullUdp) setL4Checksum(buf, af === 6 ? 6 : 4, l3, IPPROTO_UDP, l4, info.l4Len);
  return true;
}

/**
 * Inbound NAT (client → RS): destination := rsAddr:rsPort. `partial` = the L4 checksum is
 * CHECKSUM_PARTIAL (pseudo-header sum). The engine completes partial checksums first
 * (packet/checksum.ts completePartialChecksum, DESIGN "Living beside the kernel") and calls with
 * partial=false, unless the frame leaves through a backend that passes the offload on
 * (virtio_net_hdr): then partial=true, as the kernel's own offload path, and the kernel or the
 * receiver completes the checksum (always so for GSO super-frames, which cannot be completed whole).
 */
export function natInbound(buf: Uint8Array, info: PacketInfo, rsAddr: Uint32Array, rsPort: number, partial: boolean): boolean {
  return natRewrite(buf, info, true, rsAddr, rsPort, partial);
}

/** Outbound NAT (RS → client): source := vAddr:vPort. Same checksum rules as natInbound. */
export function natOutbound(buf: Uint8Array, info: PacketInfo, vAddr: Uint32Array, vPort: number, partial: boolean): boolean {
  return natRewrite(buf, info, false, vAddr, vPort, partial);
}

/**
 * The whole NAT transmitter for a client packet (ip_vs_nat_xmit order): TTL decrement, MTU check
 * against `mtu` (the route MTU towards the RS), DNAT, Ethernet addresses from `l2` (RS MAC,
 * our MAC). On XMIT_OK/XMIT_FRAGMENT the frame stays where it was (`res.off/len`).
 * `relayedIcmp`: the packet is an ICMP error being relayed (no frag-needed is generated for it).
 */
export function xmitNatIn(
  buf: Uint8Array, info: PacketInfo, rsAddr: Uint32Array, rsPort: number, partial: boolean,
  l2: Uint8Array, mtu: number, res: XmitResult,
): number {
  res.off = info.frameOff;
  res.len = info.frameLen;
  res.mtu = mtu;
  if (!decTtl(buf, info)) return XMIT_TTL_EXCEEDED;
  const m = mtuCheck(info, mtu, false, false);
  if (m === MTU_ICMP) return XMIT_FRAG_NEEDED;
  if (m === MTU_DROP) return XMIT_DROP;
  if (!natRewrite(buf, info, true, rsAddr, rsPort, partial)) return XMIT_ERROR;
  setEthAddrs(buf, info.frameOff, l2);
  return mtuLen(info) > mtu ? XMIT_FRAGMENT : XMIT_OK;
}

/**
 * The NAT reply path (RS → client). The kernel forwards these through ip_forward before its
 * FORWARD hook: TTL check and MTU check (quoting the unchanged packet, to the RS) come first,
 * then the TTL decrement, then handle_response's SNAT.
 */
export function xmitNatOut(
  buf: Uint8Array, info: PacketInfo, vAddr: Uint32Array, vPort: number, partial: boolean,
  l2: Uint8Array, mtu: number, res: XmitResult,
): number {
  res.off = info.frameOff;
  res.len = info.frameLen;
  res.mtu = mtu;
  const l3 = info.l3Off;
  if ((info.af === 4 ? buf[l3 + 8]! : buf[l3 + 7]!) <= 1) return XMIT_TTL_EXCEEDED;
  if (mtuCheckForward(info, mtu) === MTU_ICMP) return XMIT_FRAG_NEEDED;
  decTtl(buf, info);
  if (!natRewrite(buf, info, false, vAddr, vPort, partial)) return XMIT_ERROR;
  setEthAddrs(buf, info.frameOff, l2);
  return mtuLen(info) > mtu ? XMIT_FRAGMENT : XMIT_OK;
}
