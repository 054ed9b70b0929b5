/**
 * The TUN side of `ulvs tun-decap`: writes decapsulated IP packets into a TUN device opened with
 * IFF_VNET_HDR, merging consecutive TCP segments of one flow into one super-frame the way the
 * kernel's GRO does (tcp_gro_receive / inet_gro_receive rules), so the local stack takes a
 * bulk transfer in one write per up to 64 KiB instead of one per segment. Each write is a
 * syscall plus a pass through the receive stack: that, not the decapsulation, is what limited
 * a tunnelled bulk transfer in the lab (0.9 Gbit/s with one write per segment).
 *
 * Merged, like GRO: IPv4 TCP without IP options or fragmentation, payload-carrying, no
 * SYN/RST/URG/CWR; same addresses, ports, TOS, TTL, DF, ACK number, window, flags (but PSH/FIN)
 * and options as the first segment of the super-frame; contiguous sequence numbers; payloads
 * of the first segment's size (the gso_size), only the last may be shorter; IPv4 ID + 1 per
 * segment unless DF is set. PSH, FIN, or a short segment end a super-frame after joining it.
 * UDP datagrams of one flow and one size are merged too, into a GSO UDP_L4 super-frame (at
 * most 64 of them; the kernel refuses more than UDP_MAX_SEGMENTS): the receiving socket gets
 * them one by one again (udp_rcv_segment, unless it asked for UDP_GRO), but the device write,
 * IP input and routing are paid once. The kernel's own GRO merges UDP only for sockets that ask;
 * here the point is the write per packet, which a kernel tunnel endpoint does not pay.
 * Only segments whose checksum needs no verifying are merged: partial ones (the sender's stack
 * left the sum to offload, TP_STATUS_CSUMNOTREADY) and ones the kernel verified
 * (TP_STATUS_CSUM_VALID). The super-frame goes out with a partial checksum (NEEDS_CSUM) and
 * GSO type TCPV4, as a GRO-merged packet would reach the stack. Anything else is written alone,
 * after the flow's pending super-frame, so no flow is reordered.
 *
 * flush() must be called when a receive batch is done (GRO flushes at the end of a NAPI poll).
 */
import type { TunDevice } from '../io/tundev.js';

/** Where the packets go: a TunDevice (structurally), or a recorder in tests. */
export type PacketSink = Pick<TunDevice, 'vnetHdr' | 'write'>;
import { VNET_HDR_LEN, VIRTIO_NET_HDR_F_NEEDS_CSUM } from '../io/afpacket-libc.js';
import { GSO_TCPV4, GSO_UDP_L4 } from '../io/batch.js';
import { rd16, rd32 } from '../packet/bytes.js';
import { setIpv4HeaderChecksum, setPartialL4Checksum } from '../packet/checksum.js';
import {
  IPPROTO_TCP as TCP, IPPROTO_UDP as UDP, TCP_CWR, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG,
} from '../packet/consts.js';

/** Flags that keep a segment from being merged at all. */
const NO_MERGE = TCP_SYN | TCP_RST | TCP_URG | TCP_CWR;
/** Flags that end a super-frame after the segment carrying them joined it. */
const LAST = TCP_PSH | TCP_FIN;
/** The largest IPv4 packet. */
const IP_MAX = 65535;
/** Datagrams per UDP super-frame: UDP_MAX_SEGMENTS is 64 in older kernels, 128 in newer ones. */
const UDP_MAX_SEGS = 64;

export interface TunWriterStats {
  /** Packets handed to push(). */
  packets: number;
  /** Writes to the device, and writes the kernel refused. */
  writes: number;
  writeErrors: number;
  /** Writes that carried a super-frame of two or more segments, and the segments they carried. */
  superFrames: number;
  mergedSegments: number;
}

export class TunWriter {
  readonly stats: TunWriterStats = { packets: 0, writes: 0, writeErrors: 0, superFrames: 0, mergedSegments: 0 };
  /** The super-frame being built: virtio_net_hdr, then the IP packet. */
  private readonly stage = new Uint8Array(VNET_HDR_LEN + IP_MAX);
  /** Segments in the stage (0 = none open), and their protocol (TCP or UDP). */
  private segs = 0;
  private proto = 0;
  /** Bytes of IP packet in the stage. */
  private ipLen = 0;
  /** Transport header length (UDP: 8) and payload bytes per segment (gso_size) of the open super-frame. */
  private thl = 0;
  private mss = 0;
  /** The next sequence number and IPv4 ID expected, and whether DF is set. */
  private nextSeq = 0;
  private nextId = 0;
  private df = false;
  /** Checksum of the staged first segment is partial (matters only while it stays alone). */
  private firstPartial = false;

  /** `merge` false: every packet is written alone (still with a virtio_net_hdr when the device has one). */
  constructor(private readonly tun: PacketSink, private readonly merge = true) {
    if (!tun.vnetHdr && merge) throw new Error('TunWriter: merging needs a TUN device with IFF_VNET_HDR');
  }

  /**
   * Writes (or stages) the IP packet at buf[off, off + len). `csumStart` >= 0: its checksum is
   * partial, covering from packet offset csumStart, stored at csumStart + csumOffset (the
   * sender's virtio_net_hdr fields, made relative to this packet); `verified`: the kernel
   * already verified it. With a vnet header, the VNET_HDR_LEN bytes before `off` are
   * overwritten (the outer headers were there).
   */
  push(buf: Uint8Array, off: number, len: number, csumStart: number, csumOffset: number, verified: boolean): void {
    this.stats.packets++;
    const partial = csumStart >= 0;
    const proto = len >= 28 && buf[off] === 0x45 ? buf[off + 9]! : 0;
    // A partial checksum is merged only where a super-frame's will be: the TCP/UDP checksum
    // field after 20 bytes of IPv4.
    const mergeable = this.merge && (partial ? csumStart === 20 && csumOffset === (proto === TCP ? 16 : 6) : verified);
    const seg = !mergeable ? -1 : proto === TCP ? this.tcpPayload(buf, off, len) : proto === UDP ? this.udpPayload(buf, off, len) : -1;
    if (seg < 0) {
      this.flush();
      this.writeAlone(buf, off, len, csumStart, csumOffset);
      return;
    }
    if (proto === UDP) {
      if (this.segs > 0 && this.proto === UDP && this.joinsUdp(buf, off, seg)) {
        this.append(buf, off, len, seg);
        if (seg < this.mss || this.segs === UDP_MAX_SEGS) this.flush();
        return;
      }
      this.flush();
      this.start(buf, off, len, seg, partial, UDP);
      return;
    }
    const l4 = off + 20;
    const flags = buf[l4 + 13]!;
    if (this.segs > 0 && this.proto === TCP && this.joins(buf, off, seg)) {
      this.append(buf, off, len, seg);
      if ((flags & LAST) !== 0 || seg < this.mss) this.flush();
      return;
    }
    this.flush();
    if ((flags & LAST) !== 0) {
      // Would end the super-frame it starts: nothing to merge it with.
      this.writeAlone(buf, off, len, csumStart, csumOffset);
      return;
    }
    this.start(buf, off, len, seg, partial, TCP);
  }

  /** Writes the open super-frame, if any. */
  flush(): void {
    const n = this.segs;
    if (n === 0) return;
    this.segs = 0;
    const s = this.stage;
    const ip = VNET_HDR_LEN;
    const tcp = this.proto === TCP;
    const co = tcp ? 16 : 6; // tcphdr.check, udphdr.check
    if (n === 1) {
      this.writeAlone(s, ip, this.ipLen, this.firstPartial ? 20 : -1, co);
      return;
    }
    const total = this.ipLen;
    s[ip + 2] = total >>> 8; s[ip + 3] = total & 0xff;
    setIpv4HeaderChecksum(s, ip, 20);
    const l4Len = total - 20;
    // UDP: the length field says the merged length, the one the pseudo-header sum below holds
    // (__udp_gso_segment swaps it for each datagram's).
    if (!tcp) { s[ip + 24] = l4Len >>> 8; s[ip + 25] = l4Len & 0xff; }
    // Partial: the folded pseudo-header sum over the merged length; the stack trusts it as
    // verified (CHECKSUM_PARTIAL), which is what it does for a GRO-merged packet.
    setPartialL4Checksum(s, 4, ip, this.proto, ip + 20, l4Len);
    const hl = 20 + this.thl;
    s[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    s[1] = tcp ? GSO_TCPV4 : GSO_UDP_L4;
    s[2] = hl & 0xff; s[3] = hl >>> 8;
    s[4] = this.mss & 0xff; s[5] = this.mss >>> 8;
    s[6] = 20; s[7] = 0; // csum_start: the transport header
    s[8] = co; s[9] = 0;
    this.stats.superFrames++;
    this.stats.mergedSegments += n;
    this.write(s, 0, VNET_HDR_LEN + total);
  }

  /**
   * Payload length of a mergeable TCP segment (IPv4 without options or fragmentation, length
   * fields consistent, payload present, no SYN/RST/URG/CWR), else -1.
   */
  private tcpPayload(buf: Uint8Array, off: number, len: number): number {
    if (len < 40 || buf[off] !== 0x45 || buf[off + 9] !== 6) return -1;
    if (rd16(buf, off + 2) !== len || (rd16(buf, off + 6) & 0x3fff) !== 0) return -1;
    const thl = (buf[off + 32]! >>> 4) << 2;
    if (thl < 20 || 20 + thl >= len) return -1;
    if ((buf[off + 33]! & NO_MERGE) !== 0) return -1;
    return len - 20 - thl;
  }

  /** Payload length of a mergeable UDP datagram (IPv4 without options or fragmentation, lengths consistent, payload present), else -1. */
  private udpPayload(buf: Uint8Array, off: number, len: number): number {
    if (rd16(buf, off + 2) !== len || (rd16(buf, off + 6) & 0x3fff) !== 0 || rd16(buf, off + 24) !== len - 20) return -1;
    return len > 28 ? len - 28 : -1;
  }

  /** Whether the datagram at `off` (payload `seg` bytes) continues the open UDP super-frame. */
  private joinsUdp(buf: Uint8Array, off: number, seg: number): boolean {
    if (seg > this.mss || this.ipLen + seg > IP_MAX) return false;
    return this.sameIpFlow(buf, off);
  }

  /** Same IPv4 TOS, TTL, DF (and the next ID without DF), addresses and ports as the open super-frame. */
  private sameIpFlow(buf: Uint8Array, off: number): boolean {
    const s = this.stage;
    const f = VNET_HDR_LEN;
    const df = (buf[off + 6]! & 0x40) !== 0;
    if (df !== this.df || (!df && rd16(buf, off + 4) !== this.nextId)) return false;
    if (buf[off + 1] !== s[f + 1] || buf[off + 8] !== s[f + 8]) return false;
    if (rd32(buf, off + 12) !== rd32(s, f + 12) || rd32(buf, off + 16) !== rd32(s, f + 16)) return false;
    return rd32(buf, off + 20) === rd32(s, f + 20);
  }

  /** Whether the segment at `off` (payload `seg` bytes) continues the open super-frame. */
  private joins(buf: Uint8Array, off: number, seg: number): boolean {
    const s = this.stage;
    const f = VNET_HDR_LEN;
    const l4 = off + 20;
    const thl = (buf[l4 + 12]! >>> 4) << 2;
    if (thl !== this.thl || seg > this.mss || this.ipLen + seg > IP_MAX) return false;
    if (rd32(buf, l4 + 4) !== this.nextSeq) return false;
    // TOS, TTL, DF and ID, addresses, ports; the ACK number.
    if (!this.sameIpFlow(buf, off) || rd32(buf, l4 + 8) !== rd32(s, f + 28)) return false;
    // Data offset, flags but PSH/FIN (CWR never gets here), window; then the options.
    if (((rd32(buf, l4 + 12) ^ rd32(s, f + 32)) & ~((LAST) << 16)) !== 0) return false;
    for (let k = 20; k < thl; k += 4) if (rd32(buf, l4 + k) !== rd32(s, f + 20 + k)) return false;
    return true;
  }

  private start(buf: Uint8Array, off: number, len: number, seg: number, partial: boolean, proto: number): void {
    this.stage.set(buf.subarray(off, off + len), VNET_HDR_LEN);
    this.segs = 1;
    this.proto = proto;
    this.ipLen = len;
    this.thl = len - 20 - seg;
    this.mss = seg;
    this.nextSeq = (rd32(buf, off + 24) + seg) >>> 0;
    this.df = (buf[off + 6]! & 0x40) !== 0;
    this.nextId = (rd16(buf, off + 4) + 1) & 0xffff;
    this.firstPartial = partial;
  }

  private append(buf: Uint8Array, off: number, len: number, seg: number): void {
    const s = this.stage;
    s.set(buf.subarray(off + len - seg, off + len), VNET_HDR_LEN + this.ipLen);
    this.ipLen += seg;
    this.segs++;
    this.nextSeq = (this.nextSeq + seg) >>> 0;
    this.nextId = (this.nextId + 1) & 0xffff;
    // tcp_gro_receive: the merged header keeps the first segment's flags plus PSH/FIN of any.
    if (this.proto === TCP) s[VNET_HDR_LEN + 33] = s[VNET_HDR_LEN + 33]! | (buf[off + 33]! & LAST);
  }

  /**
   * One packet, one write: a virtio_net_hdr asking for the checksum to be finished when it is
   * partial (csumStart >= 0). Without a vnet header on the device, a partial checksum cannot be
   * passed on: the packet is written as it is, and the stack drops it as corrupt.
   */
  private writeAlone(buf: Uint8Array, off: number, len: number, csumStart: number, csumOffset: number): void {
    if (!this.tun.vnetHdr) {
      this.write(buf, off, len);
      return;
    }
    const h = off - VNET_HDR_LEN;
    const partial = csumStart >= 0;
    const cs = partial ? csumStart : 0;
    const co = partial ? csumOffset : 0;
    buf[h] = partial ? VIRTIO_NET_HDR_F_NEEDS_CSUM : 0;
    buf[h + 1] = 0;
    const hl = partial ? cs + co + 2 : 0;
    buf[h + 2] = hl & 0xff; buf[h + 3] = hl >>> 8;
    buf[h + 4] = 0; buf[h + 5] = 0;
    buf[h + 6] = cs & 0xff; buf[h + 7] = cs >>> 8;
    buf[h + 8] = co; buf[h + 9] = 0;
    this.write(buf, h, len + VNET_HDR_LEN);
  }

  private write(buf: Uint8Array, off: number, len: number): void {
    if (this.tun.write(buf, off, len)) this.stats.writes++;
    else this.stats.writeErrors++;
  }
}
