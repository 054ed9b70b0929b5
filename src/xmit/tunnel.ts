/**
 * Tunnel transmitter (kernel ip_vs_tunnel_xmit / _v6 with ipvs_gue_encap / ipvs_gre_encap):
 * the client's IP packet, TTL decremented, is wrapped in an outer IPv4 or IPv6 header towards
 * the real server — IPIP (IPv4 in IPv4 = protocol 4, IPv6 in IPv4 = 41; IPv6 outer likewise),
 * GUE (UDP to --tun-port + 4-byte GUE header, protocol 17) or GRE (protocol 47, 4 bytes, 8 with
 * the checksum). Outer headers are written into the headroom in front of the inner IP packet, so
 * the payload never moves; the Ethernet header is rebuilt in front of them.
 *
 * Outer IPv4 (c.3): IHL 5; TOS = inner DS field with the ECN encapsulation rule (CE → ECT(0));
 * TTL = inner TTL after the decrement; DF copied from an IPv4 inner header only with
 * pmtu_disc = 1; ID 0 when DF is set (ip_select_ident does that for DF packets without a
 * connected socket), else from our counter; checksum. Outer IPv6: traffic class as above,
 * flow label 0, hop limit = inner TTL.
 * Hot path: one TunnelEncap per engine, no allocation per packet.
 */
import type { PacketInfo } from '../packet/info.js';
import { TUN_GRE, TUN_GUE, TUN_F_CSUM, TUN_F_REMCSUM } from '../svc/types.js';
import {
  completePartialChecksum, csumAdd, csumFinish, csumFold, pseudoSum, setIpv4HeaderChecksum,
} from '../packet/checksum.js';
import {
  MTU_DROP, MTU_ICMP, XMIT_DROP, XMIT_ERROR, XMIT_FRAG_NEEDED, XMIT_FRAGMENT, XMIT_OK,
  XMIT_TTL_EXCEEDED, decTtl, ipDsfield, mtuCheck, partialCsumOffset, writeAddr, writeEthHeader, type XmitResult,
} from './common.js';

/** Per-destination tunnel parameters, built once by the control plane ("decide once"). */
export interface TunnelTarget {
  /** Family of the real server (the outer header). */
  readonly af: 4 | 6;
  /** Our source address towards the RS (the route's preferred source), IPv4 in word 0. */
  readonly saddr: Uint32Array;
  /** The real server. */
  readonly daddr: Uint32Array;
  /** TUN_IPIP, TUN_GUE or TUN_GRE. */
  readonly type: number;
  /** GUE destination port (--tun-port). */
  readonly port: number;
  /** TUN_F_NOCSUM (0), TUN_F_CSUM, TUN_F_REMCSUM. */
  readonly flags: number;
  /** MTU of the route to the RS (before the tunnel overhead). */
  readonly routeMtu: number;
  /** 12-byte MAC template: next hop towards the RS, our MAC. */
  readonly l2: Uint8Array;
  /** 802.1Q TCI of the outgoing frame, -1 for none. */
  readonly vlanTci: number;
}

export function newTunnelTarget(
  af: 4 | 6, saddr: Uint32Array, daddr: Uint32Array, type: number, port: number, flags: number,
  routeMtu: number, l2: Uint8Array, vlanTci = -1,
): TunnelTarget {
  return { af, saddr, daddr, type, port, flags, routeMtu, l2, vlanTci };
}

/** GUE private-flags field + remote checksum offload option (GUE_LEN_PRIV + GUE_PLEN_REMCSUM). */
const GUE_REMCSUM_OPTLEN = 8;

/** Length of the UDP+GUE or GRE header for this target (0 for IPIP). */
export function encapHeaderLen(tgt: TunnelTarget, partial: boolean): number {
  if (tgt.type === TUN_GUE) {
    return 8 + 4 + ((tgt.flags & TUN_F_REMCSUM) !== 0 && partial ? GUE_REMCSUM_OPTLEN : 0);
  }
  if (tgt.type === TUN_GRE) return (tgt.flags & TUN_F_CSUM) !== 0 ? 8 : 4;
  return 0;
}

/**
 * The MTU left for the inner packet (c.3): route MTU − outer IP header (20/40) − UDP+GUE
 * (+8 with remcsum on a CHECKSUM_PARTIAL packet) or GRE (4/8). Returns -1 when it is below 68
 * (IPv4 outer) or 1280 (IPv6 outer): the kernel drops the packet then.
 */
export function tunnelMtu(tgt: TunnelTarget, partial: boolean): number {
  const mtu = tgt.routeMtu - (tgt.af === 4 ? 20 : 40) - encapHeaderLen(tgt, partial);
  return mtu < (tgt.af === 4 ? 68 : 1280) ? -1 : mtu;
}

/** INET_ECN_encapsulate(ds, ds): DSCP copied, ECN copied except CE, which becomes ECT(0). */
export function ecnEncapsulate(ds: number): number {
  return (ds & 3) === 3 ? (ds & 0xfc) | 2 : ds;
}

/**
 * The outer header carries a checksum over the inner packet (GRE or GUE with --tun-csum): the
 * inner packet must be complete before that sum is taken.
 */
export function outerSumsInner(tgt: TunnelTarget): boolean {
  return (tgt.type === TUN_GRE || tgt.type === TUN_GUE) && (tgt.flags & TUN_F_CSUM) !== 0;
}

/**
 * A partial inner checksum may leave partial, for the backend's checksum offload (virtio_net_hdr
 * NEEDS_CSUM, csum_start at the inner transport header) to finish: TCP or UDP (a CRC32c cannot
 * be described that way), and no outer checksum that would have to cover the finished value.
 */
export function innerPartialMayStay(info: PacketInfo, tgt: TunnelTarget): boolean {
  return info.l4Off >= 0 && (info.proto === 6 || info.proto === 17) && !outerSumsInner(tgt);
}

/** GUE remote checksum offload applies: --tun-remcsum and a partial TCP/UDP/SCTP checksum to describe. */
function useRemcsum(info: PacketInfo, tgt: TunnelTarget, partial: boolean): boolean {
  return partial && tgt.type === TUN_GUE && (tgt.flags & TUN_F_REMCSUM) !== 0 &&
    info.l4Off >= 0 && partialCsumOffset(info.proto) >= 0;
}

/** The outer UDP checksum at buf[udp] over `ulen` bytes, in full (udp_set_csum without offload). */
function finishUdpChecksum(buf: Uint8Array, udp: number, tgt: TunnelTarget, ulen: number): void {
  buf[udp + 6] = 0; buf[udp + 7] = 0;
  let c = csumFinish(csumAdd(buf, udp, ulen, pseudoSum(tgt.af, tgt.saddr, tgt.daddr, 17, ulen)));
  if (c === 0) c = 0xffff;
  buf[udp + 6] = c >>> 8; buf[udp + 7] = c & 0xff;
}

/** The outer UDP checksum field left partial: the folded pseudo-header sum, for the backend to finish. */
export function writeUdpPseudoSum(buf: Uint8Array, udp: number, tgt: TunnelTarget, ulen: number): void {
  const c = csumFold(pseudoSum(tgt.af, tgt.saddr, tgt.daddr, 17, ulen));
  buf[udp + 6] = c >>> 8; buf[udp + 7] = c & 0xff;
}

/**
 * The outer IPv4 or IPv6 header at buf[outer] (c.3), `payloadLen` bytes of protocol `proto`
 * behind it: DS field `ds` (ecnEncapsulate'd), TTL / hop limit `ttl`; IPv4: ID `id`, DF as `df`,
 * header checksum. Shared by every tunnel transmitter (tunnel.ts encap, gue-gso.ts).
 */
export function writeOuterIp(
  buf: Uint8Array, outer: number, tgt: TunnelTarget, proto: number, payloadLen: number,
  ds: number, ttl: number, id: number, df: boolean,
): void {
  if (tgt.af === 4) {
    const total = 20 + payloadLen;
    buf[outer] = 0x45;
    buf[outer + 1] = ds;
    buf[outer + 2] = total >>> 8; buf[outer + 3] = total & 0xff;
    buf[outer + 4] = id >>> 8; buf[outer + 5] = id & 0xff;
    buf[outer + 6] = df ? 0x40 : 0; buf[outer + 7] = 0;
    buf[outer + 8] = ttl;
    buf[outer + 9] = proto;
    writeAddr(buf, outer + 12, 4, tgt.saddr);
    writeAddr(buf, outer + 16, 4, tgt.daddr);
    setIpv4HeaderChecksum(buf, outer);
  } else {
    buf[outer] = 0x60 | (ds >>> 4);
    buf[outer + 1] = (ds & 0x0f) << 4;
    buf[outer + 2] = 0; buf[outer + 3] = 0;
    buf[outer + 4] = payloadLen >>> 8; buf[outer + 5] = payloadLen & 0xff;
    buf[outer + 6] = proto;
    buf[outer + 7] = ttl;
    writeAddr(buf, outer + 8, 6, tgt.saddr);
    writeAddr(buf, outer + 24, 6, tgt.daddr);
  }
}

/** A UDP header at buf[u]: ports, length `ulen`, checksum 0 (set after, if any). */
export function writeUdpHeader(buf: Uint8Array, u: number, sport: number, dport: number, ulen: number): void {
  buf[u] = sport >>> 8; buf[u + 1] = sport & 0xff;
  buf[u + 2] = dport >>> 8; buf[u + 3] = dport & 0xff;
  buf[u + 4] = ulen >>> 8; buf[u + 5] = ulen & 0xff;
  buf[u + 6] = 0; buf[u + 7] = 0;
}

/**
 * A GUE header at buf[g] (ipvs_gue_encap): version 0, the inner protocol (4 or 41); with
 * `remStart` >= 0 the private flag and the remote checksum option: csum start and the checksum
 * field's place, both relative to the inner IP header (the end of the GUE header).
 */
export function writeGueHeader(buf: Uint8Array, g: number, innerProto: number, remStart: number, remAt: number): void {
  const remcsum = remStart >= 0;
  // version 0, control 0, hlen = option words; proto/ctype = inner protocol
  buf[g] = remcsum ? GUE_REMCSUM_OPTLEN >>> 2 : 0;
  buf[g + 1] = innerProto;
  buf[g + 2] = 0;
  buf[g + 3] = remcsum ? 1 : 0; // GUE_FLAG_PRIV
  if (remcsum) {
    buf[g + 4] = 0x80; buf[g + 5] = 0; buf[g + 6] = 0; buf[g + 7] = 0; // GUE_PFLAG_REMCSUM
    buf[g + 8] = remStart >>> 8; buf[g + 9] = remStart & 0xff;
    buf[g + 10] = remAt >>> 8; buf[g + 11] = remAt & 0xff;
  }
}

function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

export class TunnelEncap {
  /** sysctl pmtu_disc (default 1): copy DF to the outer header and enforce frag-needed. */
  pmtuDisc = true;
  /** Local ephemeral port range for the GUE source port (net.ipv4.ip_local_port_range). */
  portMin = 32768;
  portMax = 60999;
  /** Seed of the flow hash behind the GUE source port (the kernel's is random per boot). */
  hashSeed: number;
  private ipId: number;

  constructor(hashSeed = (Math.random() * 0x100000000) >>> 0, firstId = 0) {
    this.hashSeed = hashSeed | 0;
    this.ipId = firstId & 0xffff;
  }

  /** The IP ID of the next outer IPv4 header without DF (a counter, like ip_select_ident's). */
  nextIpId(): number {
    const id = this.ipId;
    this.ipId = (id + 1) & 0xffff;
    return id;
  }

  /**
   * `count` consecutive IP IDs (the segments of a GSO frame, numbered from the first by the
   * kernel's segmentation); returns the first.
   */
  reserveIpIds(count: number): number {
    const id = this.ipId;
    this.ipId = (id + count) & 0xffff;
    return id;
  }

  /**
   * Flow hash of the inner packet (addresses, protocol, and ports unless it is a fragment, so
   * all fragments of a datagram hash alike, like the kernel's flow dissector).
   */
  flowHash(info: PacketInfo): number {
    let h = this.hashSeed ^ info.proto;
    const n = info.af === 4 ? 1 : 4;
    for (let i = 0; i < n; i++) h = mix(h, info.saddr[i]!);
    for (let i = 0; i < n; i++) h = mix(h, info.daddr[i]!);
    if (info.l4Off >= 0 && !info.moreFrags && info.fragOff === 0) h = mix(h, (info.sport << 16) | info.dport);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
  }

  /** udp_flow_src_port: hash folded into [portMin, portMax) exactly like the kernel's arithmetic. */
  sourcePort(info: PacketInfo): number {
    let h = this.flowHash(info);
    h = (h ^ (h << 16)) >>> 0;
    return Math.floor((h * (this.portMax - this.portMin)) / 4294967296) + this.portMin;
  }

  /**
   * Wraps the (already TTL-decremented) IP packet described by `info` for `tgt`. `partial`: its
   * L4 checksum is CHECKSUM_PARTIAL — kept partial and described in the GUE remote-checksum
   * option when the target uses --tun-remcsum (GUE), completed here otherwise (no offload after
   * us) unless `offload` says the backend finishes partial checksums (then res.csumStart tells
   * where it starts, see innerPartialMayStay). With `offload`, an outer GUE UDP checksum
   * (--tun-csum, --tun-remcsum) is left partial for the backend too (res.csumStart at the outer
   * UDP header), as udp_set_csum leaves it for a device that can finish it: no sum over the
   * whole packet here. Writes the new frame position to res.off/res.len
   * and returns XMIT_OK, or XMIT_ERROR when the headroom is too small. `info` keeps describing the
   * inner packet.
   */
  encap(buf: Uint8Array, info: PacketInfo, tgt: TunnelTarget, partial: boolean, res: XmitResult, offload = false): number {
    const l3 = info.l3Off;
    const innerLen = info.ipLen;
    const innerAf = info.af;
    const remcsum = useRemcsum(info, tgt, partial);
    const stays = partial && !remcsum && offload && innerPartialMayStay(info, tgt);
    if (partial && !remcsum && !stays) completePartialChecksum(buf, info);
    const encLen = encapHeaderLen(tgt, remcsum);
    const outerLen = tgt.af === 4 ? 20 : 40;
    const outer = l3 - encLen - outerLen;
    const ethStart = outer - (tgt.vlanTci >= 0 ? 18 : 14);
    if (ethStart < 0) return XMIT_ERROR;

    const ds = ecnEncapsulate(ipDsfield(buf, info));
    const ttl = buf[innerAf === 4 ? l3 + 8 : l3 + 7]!;
    // Copy DF, reset fragment offset and MF (only with pmtu_disc; an IPv6 inner gives DF 0)
    const df = this.pmtuDisc && innerAf === 4 && info.df;
    const innerProto = innerAf === 4 ? 4 : 41;
    let proto = innerProto;

    const e = l3 - encLen;
    if (tgt.type === TUN_GUE) {
      // csum_start relative to the end of the GUE header (= inner IP header), then start + csum_offset
      const start = remcsum ? info.l4Off - l3 : -1;
      writeUdpHeader(buf, e, this.sourcePort(info), tgt.port, encLen + innerLen);
      writeGueHeader(buf, e + 8, innerProto, start, start + partialCsumOffset(info.proto));
      proto = 17;
    } else if (tgt.type === TUN_GRE) {
      const csum = (tgt.flags & TUN_F_CSUM) !== 0;
      buf[e] = csum ? 0x80 : 0; // C bit, version 0
      buf[e + 1] = 0;
      const ptype = innerAf === 4 ? 0x0800 : 0x86dd;
      buf[e + 2] = ptype >>> 8; buf[e + 3] = ptype & 0xff;
      if (csum) {
        buf[e + 4] = 0; buf[e + 5] = 0; buf[e + 6] = 0; buf[e + 7] = 0;
        const c = csumFinish(csumAdd(buf, e, encLen + innerLen, 0));
        buf[e + 4] = c >>> 8; buf[e + 5] = c & 0xff;
      }
      proto = 47;
    }

    writeOuterIp(buf, outer, tgt, proto, encLen + innerLen, ds, ttl, df ? 0 : this.nextIpId(), df);
    writeEthHeader(buf, outer, tgt.l2, tgt.vlanTci, tgt.af === 4 ? 0x0800 : 0x86dd);
    res.off = ethStart;
    res.len = l3 + innerLen - ethStart;
    res.csumStart = -1;
    if (stays) {
      res.csumStart = info.l4Off - ethStart;
      res.csumOffset = partialCsumOffset(info.proto);
    }
    // The outer UDP checksum needs the outer addresses: computed last (udp_set_csum / udp6_set_csum).
    // Never together with `stays`: an outer checksum either covers the finished inner one
    // (--tun-csum) or describes it (remcsum).
    if (tgt.type === TUN_GUE && (tgt.flags & (TUN_F_CSUM | TUN_F_REMCSUM)) !== 0) {
      if (offload) {
        writeUdpPseudoSum(buf, e, tgt, encLen + innerLen);
        res.csumStart = e - ethStart;
        res.csumOffset = 6;
      } else {
        finishUdpChecksum(buf, e, tgt, encLen + innerLen);
      }
    }
    return XMIT_OK;
  }

  /**
   * The whole tunnel transmitter: TTL decrement of the inner packet, the tunnel MTU (drop below
   * 68/1280), the MTU check (IPv4 inner exempt with pmtu_disc = 0; `relayedIcmp` for an ICMP
   * error relayed to a TUN conn), encapsulation. Returns XMIT_FRAGMENT (res.mtu = route MTU)
   * when the outer packet is longer than the route MTU and must be fragmented.
   */
  xmit(
    buf: Uint8Array, info: PacketInfo, tgt: TunnelTarget, partial: boolean, relayedIcmp: boolean, res: XmitResult,
    offload = false,
  ): number {
    res.off = info.frameOff;
    res.len = info.frameLen;
    res.mtu = 0;
    res.csumStart = -1;
    if (!decTtl(buf, info)) return XMIT_TTL_EXCEEDED;
    const mtu = tunnelMtu(tgt, useRemcsum(info, tgt, partial));
    if (mtu < 0) return XMIT_DROP;
    res.mtu = mtu;
    const m = mtuCheck(info, mtu, relayedIcmp, !this.pmtuDisc);
    if (m === MTU_ICMP) return XMIT_FRAG_NEEDED;
    if (m === MTU_DROP) return XMIT_DROP;
    const r = this.encap(buf, info, tgt, partial, res, offload);
    if (r !== XMIT_OK) return r;
    const outerIpLen = res.len - (tgt.vlanTci >= 0 ? 18 : 14);
    if (outerIpLen > tgt.routeMtu) {
      // Fragments carry no offload: a partial checksum is finished before the packet is cut.
      if (res.csumStart >= 0) {
        const udp = res.off + res.csumStart;
        if (udp < info.l3Off) finishUdpChecksum(buf, udp, tgt, info.l3Off + info.ipLen - udp);
        else completePartialChecksum(buf, info);
      }
      res.csumStart = -1;
      res.mtu = tgt.routeMtu;
      return XMIT_FRAGMENT;
    }
    return XMIT_OK;
  }
}
