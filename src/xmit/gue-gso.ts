/**
 * GUE with remote checksum offload (--tun-type gue --tun-remcsum) for a GSO super-frame, kept
 * (nearly) whole: the one tunnel whose segments the kernel can cut from a frame that AF_PACKET's
 * virtio_net_hdr describes.
 *
 * No virtio GSO type describes an IPIP, GRE or GUE packet around a TCP super-frame (gso.ts cuts
 * those into separately sent segments, ~45 per 64 KiB frame, each crossing the kernel alone). But a
 * run of GUE packets to one real server differs only in what follows the outer UDP header, which
 * is exactly a UDP GSO super-frame (gso_type UDP_L4): outer Ethernet + IP + UDP once, then
 * "chunks" of gso_size bytes, each of which __udp_gso_segment (or a NIC with UDP segmentation)
 * turns into the payload of one outer UDP packet, copying the outer headers and fixing their
 * lengths, IDs and UDP checksums. So each chunk is built here as a complete GUE payload: the GUE
 * header and its remote-checksum option, then the inner IP and TCP/UDP headers of that segment
 * (the kernel's tcp_gso_segment rules, as in gso.ts) and its slice of the payload.
 *
 * Remote checksum offload is what makes this possible: a UDP GSO frame can carry one partial
 * checksum only (the outer UDP one, which the kernel computes per segment). The inner checksum
 * of each segment is left as its pseudo-header sum and described in the GUE option (csum start
 * and offset); the receiver completes it from the outer checksum's coverage (fou's
 * remcsum_adjust), as it would for the kernel IPVS's own GUE remcsum packets. Without remcsum the
 * inner checksums would have to be summed here over every payload byte, which costs more than
 * sending the segments one by one.
 *
 * A super-frame's outer IPv4 total length (and IPv6 payload length) is 16 bits, and the chunks
 * add GUE and inner headers, so one 64 KiB frame may need two outer super-frames ("parts"): they
 * are laid out `stride` bytes apart like gso.ts's segments (FRAME_SEGMENTED), each a UDP GSO
 * frame of its own. In place, last chunk first: chunk k's headers start after the end of chunk
 * k - 1's payload in the original frame, so nothing still to be read is overwritten; chunk 0's
 * inner headers, the template of all others, stay where they are and are rewritten last. The frame
 * grows by (chunks - 1) * (12 + inner headers) + (parts - 1) * (outer headers + SEG_GAP), less
 * than gso.ts's per-segment layout needs, so a slot that holds that holds this.
 *
 * Every segment the kernel cuts from a part is the packet tunnel.ts builds for a partial packet to
 * a GUE remcsum target (test/core/gso.test.ts cuts them as __udp_gso_segment does and checks),
 * but for the outer IPv4 ID: one per segment, numbered from the part's. No allocation.
 */
import type { PacketInfo } from '../packet/info.js';
import { setPartialL4Checksum } from '../packet/checksum.js';
import { SegmentTemplate } from './gso-segment.js';
import { GSO_UDP_L4, SEG_GAP } from '../io/batch.js';
import { TUN_GUE, TUN_F_REMCSUM } from '../svc/types.js';
import {
  type TunnelEncap, type TunnelTarget, ecnEncapsulate, writeGueHeader, writeOuterIp, writeUdpHeader, writeUdpPseudoSum,
} from './tunnel.js';
import {
  XMIT_ERROR, XMIT_OK, ipDsfield, partialCsumOffset, writeEthHeader, type XmitResult,
} from './common.js';

/** GUE header (4) + private flags word (4) + remote checksum option (4): GUE_LEN_PRIV + GUE_PLEN_REMCSUM. */
const GUE_REMCSUM_HDR = 12;
/** Largest IPv4 total length / IPv6 payload length. */
const IP_LEN_MAX = 0xffff;
/** This module's segment-header writer (no allocation per frame). */
const segTemplate = new SegmentTemplate();

/**
 * Whether a super-frame to `tgt` leaves as UDP GSO frames (gueXmitUdpGso): GUE with --tun-remcsum,
 * a TCP or UDP inner checksum to describe, and a backend that hands the frame's virtio_net_hdr to
 * the kernel (`offload`).
 */
export function gueUdpGsoApplies(info: PacketInfo, tgt: TunnelTarget, offload: boolean): boolean {
  return offload && tgt.type === TUN_GUE && (tgt.flags & TUN_F_REMCSUM) !== 0 && partialCsumOffset(info.proto) >= 0;
}

/**
 * Encapsulates the super-frame described by `info` (TTL already decremented, MTU checked against
 * tunnelMtu(tgt, true)) as GUE remcsum chunks of `hdrs` header bytes (inner IP + TCP/UDP header,
 * `thl` of them transport) and `gsoSize` payload bytes, `n` >= 2 of them, the last carrying
 * `lastPay`. On XMIT_OK: res.off/len span the parts; res.segs/stride say how to send more than
 * one; each part is a UDP GSO frame (res.gsoType, res.gsoSize: the chunk size) whose outer UDP
 * checksum is partial from res.csumStart (offset 6); `info` describes chunk 0's inner packet.
 * XMIT_ERROR when the slot (up to `slotEnd`) or the headroom cannot hold the result.
 */
export function gueXmitUdpGso(
  buf: Uint8Array, info: PacketInfo, tgt: TunnelTarget, tun: TunnelEncap,
  hdrs: number, thl: number, gsoSize: number, n: number, lastPay: number, slotEnd: number, res: XmitResult,
): number {
  const l3 = info.l3Off;
  const l4rel = info.l4Off - l3;
  const eth = tgt.vlanTci >= 0 ? 18 : 14;
  const outerIp = tgt.af === 4 ? 20 : 40;
  const udpAt = eth + outerIp;
  const pre = udpAt + 8;
  const chunk = GUE_REMCSUM_HDR + hdrs + gsoSize;
  // Chunks per part: the outer length field, and the stride (a 16-bit batch field), must hold it.
  const room = Math.min(IP_LEN_MAX - (tgt.af === 4 ? 20 : 0) - 8, 0xffff - pre - SEG_GAP);
  const perPart = Math.floor(room / chunk);
  if (perPart < 1) return XMIT_ERROR;
  const parts = Math.ceil(n / perPart);
  const stride = pre + perPart * chunk + SEG_GAP;
  const e0 = l3 - GUE_REMCSUM_HDR - pre;
  const lastPartChunks = n - (parts - 1) * perPart;
  const end = e0 + (parts - 1) * stride + pre + (lastPartChunks - 1) * chunk + GUE_REMCSUM_HDR + hdrs + lastPay;
  if (e0 < 0 || end > slotEnd || end > buf.length) return XMIT_ERROR;

  const af = info.af as 4 | 6;
  const proto = info.proto;
  const innerProto = af === 4 ? 4 : 41;
  const csumAt = l4rel + partialCsumOffset(proto);
  // Read from the inner packet before any of it is rewritten.
  segTemplate.read(buf, info, thl, gsoSize);
  const ds = ecnEncapsulate(ipDsfield(buf, info));
  const ttl = buf[af === 4 ? l3 + 8 : l3 + 7]!;
  const df = tun.pmtuDisc && af === 4 && info.df;
  const sport = tun.sourcePort(info);

  for (let k = n - 1; k >= 0; k--) {
    const part = Math.floor(k / perPart);
    const j = k - part * perPart;
    const g = e0 + part * stride + pre + j * chunk;
    const l3k = g + GUE_REMCSUM_HDR;
    const l4k = l3k + l4rel;
    const pay = k === n - 1 ? lastPay : gsoSize;
    const segIp = hdrs + pay;
    segTemplate.build(buf, l3k, k, n, pay);
    // The pseudo-header sum only: the receiver completes it (remote checksum offload).
    setPartialL4Checksum(buf, af, l3k, proto, l4k, thl + pay);
    writeGueHeader(buf, g, innerProto, l4rel, csumAt);
    if (j === 0) {
      const chunks = part === parts - 1 ? lastPartChunks : perPart;
      const last = part === parts - 1 ? lastPay : gsoSize;
      writeOuter(buf, e0 + part * stride, tgt, tun, chunks, (chunks - 1) * chunk + GUE_REMCSUM_HDR + hdrs + last, ds, ttl, df, sport);
    }
    if (k === 0) {
      info.ipLen = segIp;
      info.l4Len = thl + pay;
      info.gsoSegLen = 0;
    }
  }
  res.off = e0;
  res.len = end - e0;
  res.segs = parts > 1 ? parts : 0;
  res.stride = parts > 1 ? stride : 0;
  res.csumStart = udpAt;
  res.csumOffset = 6;
  res.gsoType = GSO_UDP_L4;
  res.gsoSize = chunk;
  return XMIT_OK;
}

/**
 * The outer Ethernet, IP and UDP headers of one part at `start`: `chunks` segments to be, `ulen`
 * UDP payload bytes in all. The UDP checksum field holds the pseudo-header sum over the whole
 * part, as udp4_hwcsum leaves it for a GSO frame (__udp_gso_segment swaps in each segment's
 * length). IPv4 IDs: one per segment to be, the kernel numbering them from the first.
 */
function writeOuter(
  buf: Uint8Array, start: number, tgt: TunnelTarget, tun: TunnelEncap, chunks: number, ulen: number,
  ds: number, ttl: number, df: boolean, sport: number,
): void {
  const outer = start + (tgt.vlanTci >= 0 ? 18 : 14);
  const u = outer + (tgt.af === 4 ? 20 : 40);
  const udpLen = 8 + ulen;
  writeOuterIp(buf, outer, tgt, 17, udpLen, ds, ttl, df ? 0 : tun.reserveIpIds(chunks), df);
  // Only the UDP header: each chunk carries its own GUE header (written by the caller).
  writeUdpHeader(buf, u, sport, tgt.port, udpLen);
  writeUdpPseudoSum(buf, u, tgt, udpLen);
  writeEthHeader(buf, outer, tgt.l2, tgt.vlanTci, tgt.af === 4 ? 0x0800 : 0x86dd);
}
