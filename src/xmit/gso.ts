/**
 * Userspace segmentation of GSO super-frames, for the one transmitter that cannot hand them on
 * whole: tunnelling. NAT and DR keep a super-frame whole and let the kernel (or the receiver)
 * cut it, since virtio_net_hdr describes TCPv4/TCPv6/UDP-L4 segmentation. An IPIP, GUE or GRE
 * packet around such a frame needs an encapsulation GSO type (SKB_GSO_IPXIP4, _UDP_TUNNEL, _GRE)
 * that AF_PACKET's virtio_net_hdr cannot express, so the frame is cut here, as tcp_gso_segment /
 * __udp_gso_segment and inet_gso_segment would, and every segment is encapsulated on its own.
 *
 * In place, inside the frame's own slot: segment k (outer Ethernet + outer headers + the inner
 * IP and transport headers + payload chunk k) is written at e0 + k * stride, where e0 puts
 * segment 0's inner IP header where the frame's already is, and stride leaves SEG_GAP bytes
 * after each segment for the backend's per-frame header. Every segment's payload lies at or
 * after its place in the super-frame, and segment k >= 1 starts after the end of chunk k - 1, so
 * working from the last segment to the first never overwrites bytes still to be read; the inner
 * headers of segment 0 (the template for all the others) are rewritten last. The frame grows by
 * (segments - 1) * (outer + inner header bytes + SEG_GAP), which the slot must hold (batch
 * VNET_SLOT_SIZE).
 *
 * Per segment (the kernel's rules): IPv4 total length, ID + k, header checksum; IPv6 payload
 * length; TCP sequence number + k * gso_size, FIN and PSH only on the last segment, CWR only on
 * the first; UDP length; the transport checksum computed in full, or left partial when the
 * backend finishes it (see tunnelXmitGso). No allocation.
 */
import type { PacketInfo } from '../packet/info.js';
import { setL4Checksum, setPartialL4Checksum } from '../packet/checksum.js';
import { GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, SEG_GAP } from '../io/batch.js';
import { type TunnelEncap, type TunnelTarget, encapHeaderLen, innerPartialMayStay, tunnelMtu } from './tunnel.js';
import { gueUdpGsoApplies, gueXmitUdpGso } from './gue-gso.js';
import { SegmentTemplate } from './gso-segment.js';
import {
  MTU_DROP, MTU_ICMP, XMIT_DROP, XMIT_ERROR, XMIT_FRAG_NEEDED, XMIT_FRAGMENT, XMIT_OK, XMIT_TTL_EXCEEDED,
  decTtl, mtuCheck, partialCsumOffset, type XmitResult,
} from './common.js';

const TCP = 6;
const UDP = 17;

/**
 * Transport header length of a GSO frame of `gsoType` described by `info` (TCP data offset, or
 * UDP's 8), or -1 when the frame is not what its type says (wrong protocol, no L4 header, a
 * fragment, a header past the end).
 */
export function gsoL4HeaderLen(buf: Uint8Array, info: PacketInfo, gsoType: number): number {
  const t = gsoType & 0x7f;
  const l4 = info.l4Off;
  if (l4 < 0 || info.isLaterFrag || info.moreFrags) return -1;
  if (t === GSO_TCPV4 || t === GSO_TCPV6) {
    if (info.proto !== TCP || (t === GSO_TCPV4) !== (info.af === 4) || info.l4Len < 20) return -1;
    const thl = (buf[l4 + 12]! >>> 4) << 2;
    return thl >= 20 && thl <= info.l4Len ? thl : -1;
  }
  if (t === GSO_UDP_L4) return info.proto === UDP && info.l4Len >= 8 ? 8 : -1;
  return -1;
}

/** This module's segment-header writer (no allocation per frame). */
const segTemplate = new SegmentTemplate();

/**
 * The tunnel transmitter for a GSO super-frame (TunnelEncap.xmit's steps, per segment): TTL
 * decrement, tunnel MTU and the MTU check on the segment length, segmentation and encapsulation.
 * Whether the transport checksum was partial or not does not matter: it is computed anew for
 * every segment, or with `offload` (the backend finishes partial checksums) left partial for it
 * to finish, as the kernel leaves the segments of a CHECKSUM_PARTIAL skb: summing 1,400 payload
 * bytes per segment in JavaScript is most of what segmentation costs. The frame may grow up to
 * `slotEnd` (exclusive). On XMIT_OK, res.off/len span all segments and res.segs / res.stride
 * say how to send them, and res.csumStart >= 0 when the segments' checksums are partial; `info`
 * then describes segment 0's inner packet. A frame that holds one segment only is sent as an
 * ordinary packet. With GUE remote checksum offload and `offload`, the kernel can cut the
 * segments itself: the frame leaves as UDP GSO frames instead (gue-gso.ts).
 */
export function tunnelXmitGso(
  buf: Uint8Array, info: PacketInfo, tgt: TunnelTarget, tun: TunnelEncap,
  gsoType: number, gsoSize: number, slotEnd: number, res: XmitResult, offload = false,
): number {
  res.off = info.frameOff;
  res.len = info.frameLen;
  res.mtu = 0;
  res.segs = 0;
  res.csumStart = -1;
  const thl = gsoL4HeaderLen(buf, info, gsoType);
  if (thl < 0 || gsoSize === 0) return XMIT_ERROR;
  const l3 = info.l3Off;
  const l4rel = info.l4Off - l3;
  const hdrs = l4rel + thl;
  const payload = info.ipLen - hdrs;
  const n = payload > 0 ? Math.ceil(payload / gsoSize) : 1;
  if (n <= 1) {
    // Not really a super-frame: the ordinary tunnel path, with a whole checksum first (what the
    // field of a GSO frame holds is only defined when it is partial: compute it either way).
    info.gsoSegLen = 0;
    setL4Checksum(buf, info.af as 4 | 6, l3, info.proto, info.l4Off, info.l4Len);
    return tun.xmit(buf, info, tgt, false, false, res);
  }
  if (!decTtl(buf, info)) return XMIT_TTL_EXCEEDED;
  const udpGso = gueUdpGsoApplies(info, tgt, offload);
  // With remote checksum offload the GUE header carries its 8-byte option (tunnelMtu's `partial`).
  const mtu = tunnelMtu(tgt, udpGso);
  if (mtu < 0) return XMIT_DROP;
  res.mtu = mtu;
  const segIpMax = hdrs + gsoSize;
  info.gsoSegLen = segIpMax;
  const m = mtuCheck(info, mtu, false, !tun.pmtuDisc);
  if (m === MTU_ICMP) return XMIT_FRAG_NEEDED;
  if (m === MTU_DROP) return XMIT_DROP;
  // Allowed to fragment (no DF): ulvs does not fragment (README), so it is too big like any packet.
  if (segIpMax > mtu) return XMIT_FRAGMENT;
  const lastPay = payload - (n - 1) * gsoSize;
  if (udpGso) return gueXmitUdpGso(buf, info, tgt, tun, hdrs, thl, gsoSize, n, lastPay, slotEnd, res);

  const pre = (tgt.vlanTci >= 0 ? 18 : 14) + (tgt.af === 4 ? 20 : 40) + encapHeaderLen(tgt, false);
  const stride = pre + segIpMax + SEG_GAP;
  const e0 = l3 - pre;
  const end = e0 + (n - 1) * stride + pre + hdrs + lastPay;
  if (e0 < 0 || end > slotEnd || end > buf.length || stride > 0xffff) return XMIT_ERROR;

  const af = info.af as 4 | 6;
  const proto = info.proto;
  segTemplate.read(buf, info, thl, gsoSize);
  const partial = offload && innerPartialMayStay(info, tgt);
  for (let k = n - 1; k >= 0; k--) {
    const l3k = e0 + k * stride + pre;
    const l4k = l3k + l4rel;
    const pay = k === n - 1 ? lastPay : gsoSize;
    const segIp = hdrs + pay;
    segTemplate.build(buf, l3k, k, n, pay);
    // Partial: the folded pseudo-header sum, what the sender's stack leaves for the NIC.
    if (partial) setPartialL4Checksum(buf, af, l3k, proto, l4k, thl + pay);
    else setL4Checksum(buf, af, l3k, proto, l4k, thl + pay);
    info.l3Off = l3k;
    info.ipLen = segIp;
    info.l4Off = l4k;
    info.l4Len = thl + pay;
    info.gsoSegLen = 0;
    const r = tun.encap(buf, info, tgt, false, res);
    if (r !== XMIT_OK) return r; // cannot happen: the room in front of e0 was checked above
  }
  res.off = e0;
  res.len = end - e0;
  res.segs = n;
  res.stride = stride;
  res.csumStart = partial ? pre + l4rel : -1;
  res.csumOffset = partial ? partialCsumOffset(proto) : 0;
  return XMIT_OK;
}
