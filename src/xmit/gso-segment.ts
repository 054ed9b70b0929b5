/**
 * Segment headers of a GSO super-frame cut in userspace (gso.ts, gue-gso.ts): what the
 * kernel's segmentation writes into each segment's copy of the super-frame's headers.
 */
import type { PacketInfo } from '../packet/info.js';
import { setIpv4HeaderChecksum } from '../packet/checksum.js';

const TCP = 6;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;
/**
 * The per-segment header rules of tcp_gso_segment / __udp_gso_segment / inet_gso_segment,
 * read once from a super-frame's own headers (`read`), then applied to each segment's copy of
 * them (`build`): IPv4 total length, ID + k and header checksum, or the IPv6 payload length;
 * TCP sequence number + k * gso_size, FIN and PSH on the last segment only, CWR on the first
 * only; or the UDP length. The transport checksum is left to the caller. One instance per
 * module, reused: no allocation per frame.
 */
export class SegmentTemplate {
  private l3 = 0;
  private af = 4;
  private proto = TCP;
  private ihl = 20;
  private l4rel = 20;
  private thl = 20;
  private gsoSize = 0;
  private id0 = 0;
  private seq0 = 0;
  private flags0 = 0;

  /** Reads the super-frame's headers (info: its parse; thl: transport header length). */
  read(buf: Uint8Array, info: PacketInfo, thl: number, gsoSize: number): void {
    const l3 = info.l3Off;
    const l4 = info.l4Off;
    this.l3 = l3;
    this.af = info.af;
    this.proto = info.proto;
    this.ihl = info.l3HdrLen;
    this.l4rel = l4 - l3;
    this.thl = thl;
    this.gsoSize = gsoSize;
    this.id0 = info.af === 4 ? (buf[l3 + 4]! << 8) | buf[l3 + 5]! : 0;
    const tcp = info.proto === TCP;
    this.seq0 = tcp ? ((buf[l4 + 4]! << 24) | (buf[l4 + 5]! << 16) | (buf[l4 + 6]! << 8) | buf[l4 + 7]!) >>> 0 : 0;
    this.flags0 = tcp ? buf[l4 + 13]! : 0;
  }

  /**
   * Builds segment k of n at l3k (its inner IP header), carrying `pay` payload bytes: for k >= 1
   * its slice of the payload, then a copy of the super-frame's headers, moved there first.
   * Segment k's place must not overlap the super-frame's bytes of segments < k (build the last
   * segment first); segment 0 stays where the super-frame is, its headers fixed last.
   */
  build(buf: Uint8Array, l3k: number, k: number, n: number, pay: number): void {
    if (k > 0) {
      const l3 = this.l3;
      const p0 = l3 + this.l4rel + this.thl;
      // Payload first (its source may lie under this segment's headers), then the template headers.
      const from = p0 + k * this.gsoSize;
      buf.copyWithin(l3k + this.l4rel + this.thl, from, from + pay);
      buf.copyWithin(l3k, l3, p0);
    }
    this.write(buf, l3k, k, n, pay);
  }

  /** Fixes the headers at l3k for segment k of n, carrying `pay` payload bytes. */
  private write(buf: Uint8Array, l3k: number, k: number, n: number, pay: number): void {
    const l4k = l3k + this.l4rel;
    const segIp = this.l4rel + this.thl + pay;
    if (this.af === 4) {
      buf[l3k + 2] = segIp >>> 8; buf[l3k + 3] = segIp & 0xff;
      const id = (this.id0 + k) & 0xffff;
      buf[l3k + 4] = id >>> 8; buf[l3k + 5] = id & 0xff;
      setIpv4HeaderChecksum(buf, l3k, this.ihl);
    } else {
      const plen = segIp - 40;
      buf[l3k + 4] = plen >>> 8; buf[l3k + 5] = plen & 0xff;
    }
    if (this.proto === TCP) {
      const seq = (this.seq0 + k * this.gsoSize) >>> 0;
      buf[l4k + 4] = seq >>> 24; buf[l4k + 5] = (seq >>> 16) & 0xff; buf[l4k + 6] = (seq >>> 8) & 0xff; buf[l4k + 7] = seq & 0xff;
      let f = this.flags0;
      if (k < n - 1) f &= ~(TCP_FIN | TCP_PSH);
      if (k > 0) f &= ~TCP_CWR;
      buf[l4k + 13] = f;
    } else {
      const ulen = this.thl + pay;
      buf[l4k + 4] = ulen >>> 8; buf[l4k + 5] = ulen & 0xff;
    }
  }
}
