/**
 * `ulvs tun-decap`: a userspace tunnel endpoint for real servers whose kernel has no
 * ipip/gre/fou modules (like this lab's). It captures IPIP (proto 4), SIT (IPv6 in
 * IPv4/IPv6, proto 41), GRE (proto 47) and GUE (UDP on the given ports) packets
 * addressed to this host with AF_PACKET, strips the outer headers, and writes the
 * inner packet into a TUN device, so the local stack accepts it for the VIP (which
 * sits on lo, as in DR mode) and answers the client directly.
 *
 * The kernel sees the outer packets too (AF_PACKET taps them before IP input) and,
 * lacking a handler, would answer each with an ICMP protocol/port unreachable. An
 * nftables table (`netdev ulvs_tundecap_<pid>`) drops exactly those outer packets at the
 * captured interfaces' ingress, after the taps and before IP input; it is removed on stop.
 *
 * The inner packets go to the TUN device through a TunWriter (tun-gro.ts): a partial
 * checksum (a director with checksum offload leaves the inner one partial) stays partial,
 * and consecutive TCP segments of a flow are merged into one super-frame, as GRO would.
 *
 * Semantics follow the kernel's tunnel receive paths: the inner packet is delivered
 * unchanged (TTL not decremented, like ip_tunnel_rcv), the GRE checksum is verified
 * when present, GRE routing/version != 0 are refused, GUE control messages are
 * ignored, and GUE remote checksum offload (private flag REMCSUM) is completed like
 * fou's remcsum_adjust: ~fold(sum from start to end) stored at offset, both relative
 * to the inner packet. Outer fragments are not reassembled (counted and dropped).
 * When the outer UDP checksum arrived partial (the sender is on this machine, e.g. a
 * director on a veth with offload), nothing was summed on the way and nothing needs
 * verifying: the remote checksum is then passed on partial (skb_remcsum_adjust_partial),
 * for the stack to finish, instead of summing the inner packet here.
 *
 * A director with `--tun-type gue --tun-remcsum` sends a TCP/UDP super-frame as one UDP GSO
 * super-frame (gso type UDP_L4): outer headers once, then chunks of gso_size bytes, each a
 * whole GUE packet's UDP payload once segmented. AF_PACKET hands it over whole; each chunk is
 * decapsulated as its own GUE packet (reasons counted per chunk) and the inner segments merge
 * again in the TunWriter. Other GSO super-frames are refused (unsupported).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { AfPacketIo } from '../io/afpacket.js';
import { FRAME_CSUM_NOT_READY, FRAME_CSUM_VALID, FRAME_GSO, GSO_ECN, GSO_UDP_L4, type FrameBatch } from '../io/batch.js';
import { TunDevice } from '../io/tundev.js';
import { TunWriter } from './tun-gro.js';
import { interfaceAddresses, listInterfaces, interfaceInfo } from '../io/afpacket-netdev.js';
import { rd16, rd32 } from '../packet/bytes.js';
import { csumAdd, csumFinish, csumFold, ipv4HeaderChecksumOk, pseudoSumAt } from '../packet/checksum.js';
import { parseIp4, parseIp6 } from '../util/ip.js';

export const DECAP_OK = 0;
export const DECAP_NOT_TUNNEL = 1;
export const DECAP_NOT_LOCAL = 2;
export const DECAP_BAD_OUTER = 3;
export const DECAP_OUTER_FRAGMENT = 4;
export const DECAP_BAD_CHECKSUM = 5;
export const DECAP_BAD_INNER = 6;
export const DECAP_GUE_CONTROL = 7;
export const DECAP_UNSUPPORTED = 8;
/** A GSO super-frame whose description does not fit it (gso_size 0, a partial checksum elsewhere than the outer UDP one). */
export const DECAP_BAD_GSO = 9;
export const DECAP_REASON_NAMES = [
  'ok', 'not-tunnel', 'not-local', 'bad-outer', 'outer-fragment', 'bad-checksum', 'bad-inner', 'gue-control',
  'unsupported', 'bad-gso',
] as const;

/** What kind of tunnel the last decapsulated packet came through. */
export const KIND_IPIP = 1; // IPv4 in IPv4/IPv6 (protocol 4)
export const KIND_SIT = 2; // IPv6 in IPv4/IPv6 (protocol 41)
export const KIND_GRE = 3;
export const KIND_GUE = 4;

export interface DecapConfig {
  /** Accept protocol 4 and 41 (default true). */
  ipip?: boolean;
  /** Accept GRE (default true). */
  gre?: boolean;
  /** UDP destination ports carrying GUE (default none). */
  guePorts?: number[];
  /** Outer destinations accepted (text); empty = any destination. */
  localAddrs?: string[];
}

const GRE_CSUM = 0x8000;
const GRE_ROUTING = 0x4000;
const GRE_KEY = 0x2000;
const GRE_SEQ = 0x1000;
const GRE_VERSION = 0x0007;
const GUE_FLAG_PRIV = 0x0001;
const GUE_PFLAG_REMCSUM = 0x80000000;

/**
 * Pure outer-header stripping over a frame in a buffer: `decap` returns a DECAP_*
 * code and, on DECAP_OK, leaves the inner IP packet's position in innerOff/innerLen
 * and its partial checksum, if any, in csumStart/csumOffset.
 *
 * A UDP GSO super-frame of GUE packets (gso type UDP_L4: one outer header, then chunks of
 * gso_size bytes, each the UDP payload of one packet once segmented) goes through `decapGso`,
 * which checks the outer headers once, then `decapChunk(buf, k)` for k < chunks, which
 * decapsulates chunk k as the GUE packet the kernel would have cut from it.
 *
 * Allocation-free; the only write is the GUE remote-checksum completion.
 */
export class Decapsulator {
  innerOff = 0;
  innerLen = 0;
  /** 4 or 6. */
  innerAf = 0;
  kind = 0;
  /**
   * The inner packet's checksum is partial (-1: it is not): it covers the inner packet from
   * csumStart on and is stored at csumStart + csumOffset (virtio_net_hdr style, relative to the
   * inner packet), for whoever finishes it (the TUN device's vnet header).
   */
  csumStart = -1;
  csumOffset = 0;
  /** After decapGso returned DECAP_OK: how many chunks the super-frame holds (decapChunk's k < chunks). */
  chunks = 0;
  private readonly ipip: boolean;
  private readonly gre: boolean;
  private readonly guePorts: Uint8Array = new Uint8Array(65536);
  private readonly anyGue: boolean;
  private readonly local4: Uint32Array;
  private readonly local6: Uint32Array;
  private readonly anyDst: boolean;
  /** What parseOuter found: outer IP and transport header offsets, the end of the IP payload, protocol, family. */
  private l3 = 0;
  private l4 = 0;
  private l4End = 0;
  private proto = 0;
  private af: 4 | 6 = 4;
  /** The super-frame decapGso accepted: first chunk, chunk size, end of the UDP payload, outer checksum partial. */
  private chunkBase = 0;
  private chunkSize = 0;
  private chunkLimit = 0;
  private chunkPartial = false;

  constructor(cfg: DecapConfig = {}) {
    this.ipip = cfg.ipip ?? true;
    this.gre = cfg.gre ?? true;
    for (const p of cfg.guePorts ?? []) {
      if (!(Number.isInteger(p) && p > 0 && p < 65536)) throw new RangeError(`bad GUE port ${p}`);
      this.guePorts[p] = 1;
    }
    this.anyGue = (cfg.guePorts ?? []).length > 0;
    const v4: number[] = [];
    const v6: number[] = [];
    for (const a of cfg.localAddrs ?? []) {
      const x4 = parseIp4(a);
      if (x4 !== null) { v4.push(x4); continue; }
      const x6 = parseIp6(a);
      if (x6 === null) throw new RangeError(`bad local address ${a}`);
      v6.push(...x6);
    }
    this.local4 = Uint32Array.from(v4);
    this.local6 = Uint32Array.from(v6);
    this.anyDst = v4.length === 0 && v6.length === 0;
  }

  /**
   * Decapsulates one tunnel packet. `csumNotReady`: the frame's checksum is partial
   * (FRAME_CSUM_NOT_READY), `csumStart`/`csumOffset` saying where (relative to the frame start;
   * -1: not told). A partial checksum inside the inner packet stays partial (csumStart/csumOffset
   * afterwards); one in the outer headers (a GUE UDP checksum) leaves with them.
   */
  decap(buf: Uint8Array, off: number, len: number, csumNotReady: boolean, csumStart = -1, csumOffset = 0): number {
    this.csumStart = -1;
    this.chunks = 0;
    const r = this.parseOuter(buf, off, len);
    if (r !== DECAP_OK) return r;
    const proto = this.proto;
    const l4 = this.l4;
    const l4End = this.l4End;
    let res: number;
    if (proto === 4 || proto === 41) {
      this.kind = proto === 4 ? KIND_IPIP : KIND_SIT;
      res = this.inner(buf, l4, l4End, proto === 4 ? 4 : 6, -1, 0, false);
    } else if (proto === 47) {
      if (l4 + 4 > l4End) return DECAP_BAD_OUTER;
      const flags = rd16(buf, l4);
      if ((flags & (GRE_VERSION | GRE_ROUTING)) !== 0) return DECAP_UNSUPPORTED;
      const ptype = rd16(buf, l4 + 2);
      let hl = 4;
      if (flags & GRE_CSUM) hl += 4;
      if (flags & GRE_KEY) hl += 4;
      if (flags & GRE_SEQ) hl += 4;
      if (l4 + hl > l4End) return DECAP_BAD_OUTER;
      // The GRE checksum covers the GRE header and payload (RFC 2784).
      if ((flags & GRE_CSUM) !== 0 && csumFold(csumAdd(buf, l4, l4End - l4, 0)) !== 0xffff) return DECAP_BAD_CHECKSUM;
      let innerAf: number;
      if (ptype === 0x0800) innerAf = 4;
      else if (ptype === 0x86dd) innerAf = 6;
      else return DECAP_UNSUPPORTED;
      this.kind = KIND_GRE;
      res = this.inner(buf, l4 + hl, l4End, innerAf, -1, 0, false);
    } else {
      // UDP: GUE on a configured port.
      if (l4 + 8 > l4End) return DECAP_BAD_OUTER;
      if (this.guePorts[rd16(buf, l4 + 2)] === 0) return DECAP_NOT_TUNNEL;
      const ulen = rd16(buf, l4 + 4);
      if (ulen < 12 || l4 + ulen > l4End) return DECAP_BAD_OUTER;
      // A partial checksum (frame from a local stack with offload) is not verifiable; 0 = none sent.
      if (rd16(buf, l4 + 6) !== 0 && !csumNotReady &&
          csumFold(csumAdd(buf, l4, ulen, pseudoSumAt(buf, this.af, this.l3, 17, ulen))) !== 0xffff) return DECAP_BAD_CHECKSUM;
      res = this.gue(buf, l4 + 8, l4 + ulen, csumNotReady);
    }
    if (res === DECAP_OK && this.csumStart < 0 && csumNotReady && csumStart >= 0) {
      const cs = csumStart - (this.innerOff - off);
      if (cs >= 0) {
        this.csumStart = cs;
        this.csumOffset = csumOffset;
      }
    }
    return res;
  }

  /**
   * The outer headers of a GSO super-frame (`flags`: its FRAME_* bits; `csumStart`/`csumOffset`
   * relative to the frame start; `gsoType`/`gsoSize` from its virtio_net_hdr). Only a UDP_L4
   * super-frame to a GUE port is taken (DECAP_OK, `chunks` set for decapChunk): no virtio GSO
   * type describes IPIP or GRE around a TCP super-frame, and one that describes the outer packet
   * of either would be cut into pieces that are no tunnel packets (DECAP_UNSUPPORTED).
   * The same outer checks as decap's: local destination, no fragment, IPv4 header checksum, lengths.
   */
  decapGso(buf: Uint8Array, off: number, len: number, flags: number, csumStart: number, csumOffset: number,
    gsoType: number, gsoSize: number): number {
    this.csumStart = -1;
    this.chunks = 0;
    const r = this.parseOuter(buf, off, len);
    if (r !== DECAP_OK) return r;
    if (this.proto !== 17) return DECAP_UNSUPPORTED;
    const l4 = this.l4;
    if (l4 + 8 > this.l4End) return DECAP_BAD_OUTER;
    if (this.guePorts[rd16(buf, l4 + 2)] === 0) return DECAP_NOT_TUNNEL;
    if ((gsoType & ~GSO_ECN) !== GSO_UDP_L4) return DECAP_UNSUPPORTED;
    const ulen = rd16(buf, l4 + 4);
    if (ulen < 12 || l4 + ulen > this.l4End) return DECAP_BAD_OUTER;
    const partial = (flags & FRAME_CSUM_NOT_READY) !== 0;
    if (partial) {
      // UDP segmentation finishes the outer UDP checksum per segment: it must be the partial one.
      if (csumStart !== l4 - off || csumOffset !== 6) return DECAP_BAD_GSO;
    } else if ((flags & FRAME_CSUM_VALID) === 0 && rd16(buf, l4 + 6) !== 0) {
      // A complete checksum over the whole super-frame is no segment's: nothing to verify it against.
      return DECAP_UNSUPPORTED;
    }
    if (gsoSize === 0) return DECAP_BAD_GSO;
    this.chunkBase = l4 + 8;
    this.chunkSize = gsoSize;
    this.chunkLimit = l4 + ulen;
    this.chunkPartial = partial;
    this.chunks = Math.ceil((ulen - 8) / gsoSize);
    return DECAP_OK;
  }

  /**
   * Chunk k (< chunks) of the super-frame decapGso accepted, as the GUE packet segmentation
   * makes of it: gso_size bytes of UDP payload (the last chunk: what is left), decapsulated like
   * decap's GUE payload. The inner packet must fit its chunk. DECAP_OK or this chunk's reason.
   */
  decapChunk(buf: Uint8Array, k: number): number {
    if (!(k >= 0 && k < this.chunks)) throw new RangeError(`no chunk ${k} (${this.chunks} chunks)`);
    this.csumStart = -1;
    const g = this.chunkBase + k * this.chunkSize;
    const end = Math.min(g + this.chunkSize, this.chunkLimit);
    return this.gue(buf, g, end, this.chunkPartial);
  }

  /** Ethernet (VLAN tags skipped) and outer IPv4/IPv6: sets l3, l4, l4End, proto, af. */
  private parseOuter(buf: Uint8Array, off: number, len: number): number {
    const end = off + len;
    if (len < 14) return DECAP_NOT_TUNNEL;
    let p = off + 12;
    let et = rd16(buf, p);
    p += 2;
    while (et === 0x8100 || et === 0x88a8) {
      if (p + 4 > end) return DECAP_NOT_TUNNEL;
      et = rd16(buf, p + 2);
      p += 4;
    }
    const l3 = p;
    if (et === 0x0800) {
      if (end - l3 < 20 || buf[l3]! >>> 4 !== 4) return DECAP_BAD_OUTER;
      const ihl = (buf[l3]! & 15) << 2;
      const tot = rd16(buf, l3 + 2);
      if (ihl < 20 || tot < ihl || l3 + tot > end) return DECAP_BAD_OUTER;
      const proto = buf[l3 + 9]!;
      if (!this.wants(proto)) return DECAP_NOT_TUNNEL;
      if (!this.anyDst && !this.isLocal4(rd32(buf, l3 + 16))) return DECAP_NOT_LOCAL;
      if ((rd16(buf, l3 + 6) & 0x3fff) !== 0) return DECAP_OUTER_FRAGMENT;
      if (!ipv4HeaderChecksumOk(buf, l3, ihl)) return DECAP_BAD_CHECKSUM;
      this.af = 4;
      this.proto = proto;
      this.l4 = l3 + ihl;
      this.l4End = l3 + tot;
    } else if (et === 0x86dd) {
      if (end - l3 < 40 || buf[l3]! >>> 4 !== 6) return DECAP_BAD_OUTER;
      const l4End = l3 + 40 + rd16(buf, l3 + 4);
      if (l4End > end) return DECAP_BAD_OUTER;
      let nh = buf[l3 + 6]!;
      let l4 = l3 + 40;
      // Hop-by-hop, routing and destination options: skip (8-byte units, length excludes the first 8).
      while (nh === 0 || nh === 43 || nh === 60) {
        if (l4 + 8 > l4End) return DECAP_BAD_OUTER;
        const next = buf[l4]!;
        l4 += (buf[l4 + 1]! + 1) << 3;
        nh = next;
      }
      if (l4 > l4End) return DECAP_BAD_OUTER;
      if (nh === 44) return DECAP_OUTER_FRAGMENT;
      if (!this.wants(nh)) return DECAP_NOT_TUNNEL;
      if (!this.anyDst && !this.isLocal6(buf, l3 + 24)) return DECAP_NOT_LOCAL;
      this.af = 6;
      this.proto = nh;
      this.l4 = l4;
      this.l4End = l4End;
    } else {
      return DECAP_NOT_TUNNEL;
    }
    this.l3 = l3;
    return DECAP_OK;
  }

  /**
   * A GUE payload (UDP payload of one GUE packet) at buf[g, end). `partial`: the outer UDP
   * checksum is partial, so a remote checksum stays partial (see inner).
   */
  private gue(buf: Uint8Array, g: number, end: number, partial: boolean): number {
    if (g + 4 > end) return DECAP_BAD_OUTER;
    const b0 = buf[g]!;
    const ver = b0 >>> 6;
    let inner: number;
    let innerAf: number;
    let remStart = -1;
    let remOffset = 0;
    if (ver === 1) {
      // GUE version 1: the payload is a bare IP packet, told apart by its version nibble.
      inner = g;
      innerAf = buf[g]! >>> 4;
    } else if (ver === 0) {
      if ((b0 & 0x20) !== 0) return DECAP_GUE_CONTROL;
      const hlen = (b0 & 0x1f) << 2;
      const gp = buf[g + 1]!;
      const flags = rd16(buf, g + 2);
      inner = g + 4 + hlen;
      if (inner > end) return DECAP_BAD_OUTER;
      if ((flags & ~GUE_FLAG_PRIV) !== 0) return DECAP_UNSUPPORTED;
      if ((flags & GUE_FLAG_PRIV) !== 0) {
        if (hlen < 4) return DECAP_BAD_OUTER;
        const pflags = rd32(buf, g + 4);
        if ((pflags & GUE_PFLAG_REMCSUM) !== 0) {
          if (hlen < 8) return DECAP_BAD_OUTER;
          remStart = rd16(buf, g + 8);
          remOffset = rd16(buf, g + 10);
        }
      }
      if (gp === 4) innerAf = 4;
      else if (gp === 41) innerAf = 6;
      else return DECAP_UNSUPPORTED;
    } else {
      return DECAP_UNSUPPORTED;
    }
    this.kind = KIND_GUE;
    return this.inner(buf, inner, end, innerAf, remStart, remOffset, partial);
  }

  /**
   * The inner packet at `inner`, within buf[inner, end): its own length field decides (outer
   * padding is not part of it). `remStart` >= 0: a GUE remote checksum (start, and the checksum
   * field at `remOffset`, both relative to the inner packet) to finish or, `partial`, to pass on.
   */
  private inner(buf: Uint8Array, inner: number, end: number, innerAf: number, remStart: number, remOffset: number,
    partial: boolean): number {
    const avail = end - inner;
    let innerLen: number;
    if (innerAf === 4) {
      if (avail < 20 || buf[inner]! >>> 4 !== 4) return DECAP_BAD_INNER;
      innerLen = rd16(buf, inner + 2);
      if (innerLen < ((buf[inner]! & 15) << 2) || innerLen < 20 || innerLen > avail) return DECAP_BAD_INNER;
    } else if (innerAf === 6) {
      if (avail < 40 || buf[inner]! >>> 4 !== 6) return DECAP_BAD_INNER;
      innerLen = 40 + rd16(buf, inner + 4);
      if (innerLen > avail) return DECAP_BAD_INNER;
    } else {
      return DECAP_BAD_INNER;
    }
    if (remStart >= 0) {
      if (remStart >= innerLen || remOffset + 2 > innerLen || remOffset < remStart) return DECAP_BAD_INNER;
      if (partial) {
        // The outer checksum is partial: the packet comes from a stack on this machine (e.g. a
        // director on a veth with offload) and crossed no wire, so there is nothing to verify.
        // The inner checksum stays partial for the stack to finish, as skb_remcsum_adjust_partial
        // leaves it, instead of being summed here over up to 64 KiB.
        this.csumStart = remStart;
        this.csumOffset = remOffset - remStart;
      } else {
        // fou remcsum_adjust: the field holds the pseudo-header sum; the sum from start to the end completes it.
        const c = csumFinish(csumAdd(buf, inner + remStart, innerLen - remStart, 0));
        buf[inner + remOffset] = c >>> 8;
        buf[inner + remOffset + 1] = c & 0xff;
      }
    }
    this.innerOff = inner;
    this.innerLen = innerLen;
    this.innerAf = innerAf;
    return DECAP_OK;
  }

  private wants(proto: number): boolean {
    if (proto === 4 || proto === 41) return this.ipip;
    if (proto === 47) return this.gre;
    return proto === 17 && this.anyGue;
  }

  private isLocal4(a: number): boolean {
    const l = this.local4;
    for (let i = 0; i < l.length; i++) if (l[i] === a) return true;
    return false;
  }

  private isLocal6(buf: Uint8Array, o: number): boolean {
    const l = this.local6;
    const w0 = rd32(buf, o), w1 = rd32(buf, o + 4), w2 = rd32(buf, o + 8), w3 = rd32(buf, o + 12);
    for (let i = 0; i < l.length; i += 4) {
      if (l[i] === w0 && l[i + 1] === w1 && l[i + 2] === w2 && l[i + 3] === w3) return true;
    }
    return false;
  }
}

export interface TunDecapOptions extends DecapConfig {
  /** Interfaces to capture on; default every non-loopback interface that is up. */
  interfaces?: string[];
  /** TUN device name (default "ulvstun0"). */
  tunName?: string;
  /** Install the nftables drop for the outer packets (default true). */
  nft?: boolean;
  /** Accept any outer destination instead of this host's addresses (default false). */
  anyDst?: boolean;
  /** Frames per receive batch (default 64). */
  batchSize?: number;
  /** Merge consecutive TCP segments into super-frames before writing them (tun-gro.ts; default true). */
  merge?: boolean;
  log?: (line: string) => void;
}

export interface TunDecapStats {
  frames: number;
  /** Inner packets handed to the TUN device (merged or not). */
  injected: number;
  /** Writes the kernel refused. */
  injectErrors: number;
  /**
   * Count per DECAP_* reason: one per frame, but one per chunk for the chunks of a GUE UDP GSO
   * super-frame whose outer headers were accepted (each is a tunnel packet of its own).
   */
  reasons: number[];
  /** GUE UDP GSO super-frames whose outer headers were accepted, and the chunks they held. */
  gsoFrames: number;
  gsoChunks: number;
}

/**
 * The per-frame work of TunDecap, apart from the devices: decapsulates the frames of a receive
 * batch and hands the inner packets to a TunWriter (whose sink may be a recorder), counting.
 */
export class TunDecapCore {
  readonly stats: TunDecapStats = {
    frames: 0, injected: 0, injectErrors: 0, reasons: new Array(DECAP_REASON_NAMES.length).fill(0), gsoFrames: 0, gsoChunks: 0,
  };

  constructor(private readonly dec: Decapsulator, readonly writer: TunWriter) {}

  /** Frame i of `b`: its inner packet, or each chunk's for a GUE UDP GSO super-frame, to the writer. */
  frame(b: FrameBatch, i: number): void {
    const dec = this.dec;
    const st = this.stats;
    const writer = this.writer;
    const buf = b.buf;
    const off = b.off[i]!;
    const fl = b.flags[i]!;
    st.frames++;
    if ((fl & FRAME_GSO) !== 0) {
      const r = dec.decapGso(buf, off, b.len[i]!, fl, b.csumStart[i]!, b.csumOffset[i]!, b.gsoType[i]!, b.gsoSize[i]!);
      if (r !== DECAP_OK) {
        st.reasons[r]++;
        return;
      }
      const n = dec.chunks;
      st.gsoFrames++;
      st.gsoChunks += n;
      // In order, so consecutive TCP segments merge again. The writer may overwrite the 10 bytes
      // in front of an inner packet (its vnet header): this chunk's GUE header, or the end of the
      // chunk before, both done with (the writer copies what it keeps).
      for (let k = 0; k < n; k++) {
        const rc = dec.decapChunk(buf, k);
        st.reasons[rc]++;
        if (rc !== DECAP_OK) continue;
        // The frame's CSUM_VALID (if any) speaks of the outer UDP checksum, not the inner one.
        writer.push(buf, dec.innerOff, dec.innerLen, dec.csumStart, dec.csumOffset, false);
        st.injected++;
      }
      return;
    }
    const r = dec.decap(buf, off, b.len[i]!, (fl & FRAME_CSUM_NOT_READY) !== 0, b.csumStart[i]!, b.csumOffset[i]!);
    st.reasons[r]++;
    if (r !== DECAP_OK) return;
    // CSUM_VALID speaks of the first transport checksum: the inner one only behind IPIP/SIT.
    const verified = (fl & FRAME_CSUM_VALID) !== 0 && (dec.kind === KIND_IPIP || dec.kind === KIND_SIT);
    writer.push(buf, dec.innerOff, dec.innerLen, dec.csumStart, dec.csumOffset, verified);
    st.injected++;
  }

  /** End of a receive batch: writes what the writer holds (GRO flushes at the end of a NAPI poll). */
  flush(): void {
    this.writer.flush();
    this.stats.injectErrors = this.writer.stats.writeErrors;
  }

  /** One line of `name=value` counts (reasons only when not 0), as `ulvs tun-decap` prints them. */
  statsText(): string {
    const st = this.stats;
    const parts = DECAP_REASON_NAMES.map((n, i) => `${n}=${st.reasons[i]}`).filter((s) => !s.endsWith('=0'));
    const w = this.writer.stats;
    return `frames=${st.frames} injected=${st.injected} inject-errors=${st.injectErrors} ${parts.join(' ')}`
      + ` writes=${w.writes} super-frames=${w.superFrames} merged=${w.mergedSegments}`
      + ` gso-frames=${st.gsoFrames} gso-chunks=${st.gsoChunks}`;
  }
}

const TABLE_PREFIX = 'ulvs_tundecap_';

function nft(args: string[], input?: string): { ok: boolean; out: string } {
  const r = spawnSync('nft', args, { input, encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

/** Removes tables left by tun-decap processes that no longer run (netdev; inet from older versions). */
function sweepStaleTables(): void {
  const r = nft(['list', 'tables']);
  if (!r.ok) return;
  for (const m of r.out.matchAll(/table (inet|netdev) (ulvs_tundecap_(\d+))/g)) {
    const pid = Number(m[3]);
    let alive = true;
    try { process.kill(pid, 0); } catch (e) { alive = (e as NodeJS.ErrnoException).code === 'EPERM'; }
    if (!alive || pid === process.pid) nft(['delete', 'table', m[1]!, m[2]!]);
  }
}

function readSysctl(path: string): string | null {
  try { return readFileSync(path, 'utf8').trim(); } catch { return null; }
}

export class TunDecap {
  readonly stats: TunDecapStats;
  readonly interfaces: string[];
  readonly tun: TunDevice;
  readonly table: string | null;
  private readonly io: AfPacketIo;
  private readonly batch: FrameBatch;
  private readonly core: TunDecapCore;
  private unwatch: (() => void) | null = null;
  private restoreAllRpFilter: string | null = null;
  private stopped = false;

  /** Opens the TUN device and the captures and installs the nftables drop. Runs in this process's netns. */
  constructor(opts: TunDecapOptions = {}) {
    const log = opts.log ?? (() => undefined);
    const tunName = opts.tunName ?? 'ulvstun0';
    const ifaces = opts.interfaces ?? listInterfaces()
      .map((i) => interfaceInfo(i.name))
      .filter((i) => !i.loopback && i.up && i.name !== tunName && i.hwType === 1)
      .map((i) => i.name);
    if (ifaces.length === 0) throw new Error('tun-decap: no interface to capture on');
    this.interfaces = ifaces;
    const localAddrs = opts.anyDst ? [] : (opts.localAddrs ?? interfaceAddresses().map((a) => a.local));
    if (!opts.anyDst && localAddrs.length === 0) throw new Error('tun-decap: this host has no address to accept tunnels for');
    // The vnet header lets a partial checksum (a director with checksum offload leaves the inner
    // one partial) and merged super-frames reach the stack as they are.
    this.tun = TunDevice.open(tunName, { vnetHdr: true });
    this.core = new TunDecapCore(new Decapsulator({ ...opts, localAddrs }), new TunWriter(this.tun, opts.merge ?? true));
    this.stats = this.core.stats;
    try {
      // The inner source (the client) is not routed via the TUN device: strict rp_filter would drop it.
      const base = '/proc/sys/net/ipv4/conf';
      writeFileSync(`${base}/${this.tun.name}/rp_filter`, '0');
      const all = readSysctl(`${base}/all/rp_filter`);
      if (all === '1') {
        // The kernel uses max(all, dev): loose mode (2) accepts any source routable somewhere.
        writeFileSync(`${base}/all/rp_filter`, '2');
        this.restoreAllRpFilter = all;
      }
      // With the vnet header each frame says where a partial checksum starts (csum_start).
      this.io = AfPacketIo.open(ifaces, { batchSize: opts.batchSize ?? 64, vnetHdr: true });
      this.batch = this.io.createBatch();
      this.table = opts.nft === false ? null : this.installNft(ifaces, opts, localAddrs);
    } catch (e) {
      this.tun.close();
      throw e;
    }
    log(`tun-decap: ${this.tun.name} <- ${ifaces.join(',')}${this.table ? ` (nft table ${this.table})` : ''}`);
  }

  /**
   * The drop sits in a netdev table on each interface's ingress hook, which runs after the packet
   * sockets' taps (so the capture still sees the frames) but before IP input: the outer packets
   * cost no route lookup and no trip through the IP stack. That per-packet cost was charged to
   * whoever sent them over the veth, i.e. the director (7 % of its time in a TUN bulk transfer).
   */
  private installNft(ifaces: string[], opts: TunDecapOptions, localAddrs: string[]): string {
    sweepStaleTables();
    const table = `${TABLE_PREFIX}${process.pid}`;
    const protos: number[] = [];
    if (opts.ipip ?? true) protos.push(4, 41);
    if (opts.gre ?? true) protos.push(47);
    const l4 = protos.length ? `meta l4proto { ${protos.join(', ')} } ` : '';
    const gue = (opts.guePorts ?? []).length ? `udp dport { ${opts.guePorts!.join(', ')} } ` : '';
    // Only packets for this host (the decapsulator's own rule), unless any destination is accepted.
    const dsts: string[] = [];
    if (opts.anyDst) dsts.push('');
    const v4 = localAddrs.filter((a) => parseIp4(a) !== null);
    const v6 = localAddrs.filter((a) => parseIp4(a) === null);
    if (!opts.anyDst && v4.length) dsts.push(`ip daddr { ${v4.join(', ')} } `);
    if (!opts.anyDst && v6.length) dsts.push(`ip6 daddr { ${v6.join(', ')} } `);
    const rules: string[] = [];
    for (const to of dsts) {
      if (l4) rules.push(`${to}${l4}counter drop`);
      if (gue) rules.push(`${to}${gue}counter drop`);
    }
    const chains = ifaces.map((dev, k) => `  chain in${k} {\n    type filter hook ingress device ${JSON.stringify(dev)} priority -500; policy accept;\n${rules.map((r) => `    ${r}\n`).join('')}  }\n`);
    const text = `table netdev ${table} {\n${chains.join('')}}\n`;
    const r = nft(['-f', '-'], text);
    if (!r.ok) throw new Error(`tun-decap: nft failed: ${r.out.trim()}\n${text}`);
    return table;
  }

  /** Processes everything queued now (at most `maxBatches` batches); returns frames handled. */
  poll(maxBatches = 16): number {
    const b = this.batch;
    const core = this.core;
    let total = 0;
    for (let k = 0; k < maxBatches; k++) {
      const n = this.io.recv(b);
      if (n === 0) break;
      total += n;
      for (let i = 0; i < n; i++) core.frame(b, i);
      core.flush();
    }
    return total;
  }

  /** Runs from the Node event loop until stop(). */
  run(): void {
    if (this.unwatch || this.stopped) return;
    this.unwatch = this.io.watch(() => { this.poll(); });
    this.poll();
  }

  /** Blocks (poll) up to `timeoutMs` for frames, then handles them; for loops outside an event loop. */
  waitAndPoll(timeoutMs: number): number {
    return this.io.wait(timeoutMs) ? this.poll() : 0;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.unwatch) this.unwatch();
    this.io.close();
    this.tun.close();
    if (this.table) nft(['delete', 'table', 'netdev', this.table]);
    if (this.restoreAllRpFilter !== null) {
      try { writeFileSync('/proc/sys/net/ipv4/conf/all/rp_filter', this.restoreAllRpFilter); } catch { /* best effort */ }
    }
  }

  statsText(): string {
    return this.core.statsText();
  }
}

export const TUN_DECAP_USAGE = `usage: ulvs tun-decap [--iface IF]... [--tun NAME] [--gue-port PORT]... [--no-ipip] [--no-gre] [--no-nft] [--any-dst] [--no-merge]
  Decapsulates IPIP/SIT/GRE/GUE packets sent to this host (as IPVS -i tunnelling does) into a TUN
  device, for real servers without the kernel tunnel modules. Put the VIP on lo (as for DR) and
  set arp_ignore=1 / arp_announce=2. Consecutive TCP segments of a flow are merged into one
  write, as GRO would (--no-merge: one write per packet). A GUE UDP GSO super-frame (what a
  director with --tun-type gue --tun-remcsum sends for a TCP super-frame) is split into its GUE
  packets here. SIGUSR1 prints the counters; runs until SIGINT/SIGTERM, then prints them.`;

/** Parses the command line of `ulvs tun-decap`; throws with the usage on errors. */
export function parseTunDecapArgs(argv: string[]): TunDecapOptions {
  const o: TunDecapOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${TUN_DECAP_USAGE}`);
      return v;
    };
    switch (a) {
      case '--iface': case '-i': (o.interfaces ??= []).push(val()); break;
      case '--tun': o.tunName = val(); break;
      case '--gue-port': {
        const p = Number(val());
        if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`bad --gue-port\n${TUN_DECAP_USAGE}`);
        (o.guePorts ??= []).push(p);
        break;
      }
      case '--no-ipip': o.ipip = false; break;
      case '--no-gre': o.gre = false; break;
      case '--no-nft': o.nft = false; break;
      case '--any-dst': o.anyDst = true; break;
      case '--no-merge': o.merge = false; break;
      case '-h': case '--help': throw new Error(TUN_DECAP_USAGE);
      default: throw new Error(`unknown option ${a}\n${TUN_DECAP_USAGE}`);
    }
  }
  return o;
}

/** Entry point of `ulvs tun-decap`: runs until a signal; returns the exit code. */
export function tunDecapMain(argv: string[]): Promise<number> {
  let opts: TunDecapOptions;
  try {
    opts = parseTunDecapArgs(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return Promise.resolve(2);
  }
  let td: TunDecap;
  try {
    td = new TunDecap({ ...opts, log: (l) => process.stderr.write(`${l}\n`) });
  } catch (e) {
    process.stderr.write(`ulvs tun-decap: ${(e as Error).message}\n`);
    return Promise.resolve(1);
  }
  td.run();
  process.stdout.write(`ready tun=${td.tun.name} ifaces=${td.interfaces.join(',')}\n`);
  return new Promise((resolve) => {
    const finish = () => {
      td.stop();
      process.stdout.write(`stats ${td.statsText()}\n`);
      resolve(0);
    };
    process.once('SIGINT', finish);
    process.once('SIGTERM', finish);
    process.on('SIGUSR1', () => process.stdout.write(`stats ${td.statsText()}\n`));
  });
}
