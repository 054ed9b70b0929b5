/**
 * Binds the transmitters (xmit/) to one engine: next-hop MACs (cached per
 * destination, "decide once"), tunnel targets per destination, the egress MTU,
 * ICMP errors into the TxQueue, and turning transmitter outcomes into verdicts
 * and reasons. Everything per packet is allocation-free; per-destination caches
 * are rebuilt lazily after the table or the neighbour table changed.
 */
import * as batchConsts from '../io/batch.js';
import { type FrameBatch, type TxQueue, FRAME_CSUM_NOT_READY, FRAME_GSO } from '../io/batch.js';
import type { PacketInfo } from '../packet/info.js';
import * as common from '../xmit/common.js';
import { XmitResult } from '../xmit/common.js';
import * as nat from '../xmit/nat.js';
import { xmitDr } from '../xmit/dr.js';
import { TunnelEncap, newTunnelTarget, type TunnelTarget } from '../xmit/tunnel.js';
import { tunnelXmitGso } from '../xmit/gso.js';
import {
  IcmpErrorBuilder, xmitIcmpNatIn, xmitIcmpNatOut, ICMPERR_FRAG_NEEDED, ICMPERR_PORT_UNREACH, ICMPERR_TIME_EXCEEDED,
} from '../xmit/icmp.js';
import type { Dest } from '../svc/types.js';
import * as connTable from '../conn/table.js';
import type { Engine } from './engine.js';
import * as R from './reasons.js';

// Module-local copies of what the NAT transmit path uses per packet: an imported binding is a
// live cell that optimized code loads and checks at every use, a local const is folded.
const FRAME_SEGMENTED = batchConsts.FRAME_SEGMENTED;
const V_DROP = batchConsts.V_DROP;
const V_FORWARD = batchConsts.V_FORWARD;
const XMIT_OK = common.XMIT_OK;
const XMIT_TTL_EXCEEDED = common.XMIT_TTL_EXCEEDED;
const XMIT_FRAG_NEEDED = common.XMIT_FRAG_NEEDED;
const XMIT_FRAGMENT = common.XMIT_FRAGMENT;
const XMIT_DROP = common.XMIT_DROP;
const xmitNatIn = nat.xmitNatIn;
const xmitNatOut = nat.xmitNatOut;
const ADDR_C = connTable.ADDR_C;
const ADDR_D = connTable.ADDR_D;
const ADDR_V = connTable.ADDR_V;
const R_FWD_NAT_IN = R.R_FWD_NAT_IN;
const R_FWD_NAT_OUT = R.R_FWD_NAT_OUT;
const R_CANNOT_REWRITE = R.R_CANNOT_REWRITE;

/** A cached per-destination tunnel target whose VLAN tag is set per packet. */
type TunnelSlot = { -readonly [K in keyof TunnelTarget]: TunnelTarget[K] };

/** Per-dest next-hop cache entry states. */
const NH_UNKNOWN = 0;
const NH_OK = 1;
const NH_NONE = 2;
/** NH_OK for FastPath.run (destHopWords); an alias, so the uses here stay a local const. */
export const NEXT_HOP_OK = NH_OK;

export class Xmit {
  private readonly e: Engine;
  private readonly res = new XmitResult();
  private readonly icmp = new IcmpErrorBuilder();
  readonly tun: TunnelEncap;
  /** 12-byte L2 template scratch: [next hop MAC, our MAC]. */
  private readonly l2 = new Uint8Array(12);
  private readonly errL2 = new Uint8Array(12);
  private readonly a1 = new Uint32Array(4);
  private readonly a2 = new Uint32Array(4);
  private readonly saddr4 = new Uint32Array(4);
  // Per destination id: next-hop MAC (6 bytes each, where resolve writes it); tunnel targets.
  private destMac = new Uint8Array(0);
  /**
   * Per destination id, two words: the next hop's MAC bytes 0-3 (big-endian), then its bytes
   * 4-5 << 16 | the entry's state (NH_*). One array for the state and the MAC: the fast path
   * reads both for every inbound frame, and each typed array or DataView a loop reads costs
   * its own map, bounds and pointer checks per frame.
   */
  private hopWords = new Uint32Array(0);
  private tunTargets: (TunnelSlot | undefined)[] = [];
  private cacheTable = -1;
  private cacheNeigh = -1;
  private cacheMtu = -1;
  private cachePmtu = -1;

  constructor(engine: Engine) {
    this.e = engine;
    this.tun = new TunnelEncap(0x5eed1234);
    for (let i = 0; i < 6; i++) { this.l2[6 + i] = engine.mac[i]!; this.errL2[6 + i] = engine.mac[i]!; }
    this.saddr4[0] = engine.ip4;
  }

  /** Drops per-dest caches when the table or the neighbours changed (called once per batch). */
  refresh(tableVersion: number, neighVersion: number, maxDestId: number): void {
    const e = this.e;
    if (tableVersion === this.cacheTable && neighVersion === this.cacheNeigh && e.mtu === this.cacheMtu &&
        e.sysctls.pmtu_disc === this.cachePmtu && this.hopWords.length >>> 1 > maxDestId) return;
    this.cacheTable = tableVersion;
    this.cacheNeigh = neighVersion;
    this.cacheMtu = e.mtu;
    this.cachePmtu = e.sysctls.pmtu_disc;
    const n = Math.max(64, maxDestId + 1);
    this.destMac = new Uint8Array(n * 6);
    this.hopWords = new Uint32Array(n * 2);
    this.tunTargets = new Array<TunnelSlot | undefined>(n);
    this.tun.pmtuDisc = this.e.sysctls.pmtu_disc !== 0;
  }

  // ------------------------------------------------------------ next hops

  /** Writes the next-hop MAC for dest into this.l2[0..6]; false when unresolved. */
  private destHop(dest: Dest): boolean {
    const id = dest.id;
    const w = this.hopWords;
    const k = id * 2;
    if (k >= w.length) return this.resolveInto(dest.addr.af, dest, this.l2, 0);
    const m = this.destMac;
    const o = id * 6;
    let st = w[k + 1]! & 0xff;
    if (st === NH_UNKNOWN) {
      if (this.resolveInto(dest.addr.af, dest, m, o)) {
        st = NH_OK;
        w[k] = ((m[o]! << 24) | (m[o + 1]! << 16) | (m[o + 2]! << 8) | m[o + 3]!) >>> 0;
        w[k + 1] = ((m[o + 4]! << 24) | (m[o + 5]! << 16) | NH_OK) >>> 0;
      } else {
        st = NH_NONE;
        w[k + 1] = NH_NONE;
      }
    }
    if (st !== NH_OK) return false;
    const l2 = this.l2;
    l2[0] = m[o]!; l2[1] = m[o + 1]!; l2[2] = m[o + 2]!; l2[3] = m[o + 3]!; l2[4] = m[o + 4]!; l2[5] = m[o + 5]!;
    return true;
  }

  /**
   * Dest's next-hop MAC from the per-dest cache (fast path): writes its first 4 bytes at
   * out[off..off+4) and returns the last 2 as a number, or -1 when unresolved. The caller
   * stores those with the first half of the source MAC as one 32-bit word: each DataView
   * access costs about what a byte access does, and this stays small enough to be inlined.
   */
  destMacHead(dest: Dest, out: DataView, off: number): number {
    const k = dest.id * 2;
    const w = this.hopWords;
    // Already resolved: straight from the cache (what destHop would copy through l2).
    if (k < w.length) {
      const tail = w[k + 1]!;
      if ((tail & 0xff) === NH_OK) {
        out.setUint32(off, w[k]!);
        return tail >>> 16;
      }
    }
    return this.destMacResolve(dest, out, off);
  }

  /**
   * The cached tunnel target of `dest` (fast path), or undefined until the general path's
   * `tunnel` built it. Its MAC template is this dest's cached next hop (destMacHead) and our MAC:
   * both were made by the same destHop, and refresh drops them together.
   */
  tunnelTargetOf(dest: Dest): TunnelTarget | undefined {
    return dest.id < this.tunTargets.length ? this.tunTargets[dest.id] : undefined;
  }

  /**
   * The per-dest next-hop words destMacHead reads (at id * 2: MAC bytes 0-3; bytes 4-5 << 16 |
   * state, NH_OK when the MAC is cached), for FastPath.run to hold in a local for a batch: only
   * refresh, between batches, replaces the array.
   */
  get destHopWords(): Uint32Array {
    return this.hopWords;
  }

  /** destMacHead's first use of a dest (and dests beyond the cache). Kept apart so destMacHead stays small. */
  private destMacResolve(dest: Dest, out: DataView, off: number): number {
    if (!this.destHop(dest)) return -1;
    const l2 = this.l2;
    for (let k = 0; k < 4; k++) out.setUint8(off + k, l2[k]!);
    return (l2[4]! << 8) | l2[5]!;
  }

  private resolveInto(af: 4 | 6, dest: Dest, out: Uint8Array, off: number): boolean {
    const a = this.a1;
    a[0] = dest.addr.w0; a[1] = dest.addr.w1; a[2] = dest.addr.w2; a[3] = dest.addr.w3;
    return this.e.neigh.resolve(af, a, out, off);
  }

  /** The director has an IPv6 address (replay and tests may run without one). */
  private hasIp6(): boolean {
    const a = this.e.ip6;
    return (a[0]! | a[1]! | a[2]! | a[3]!) !== 0;
  }

  private addrHop(af: number, addr: Uint32Array): boolean {
    return this.e.neigh.resolve(af as 4 | 6, addr, this.l2, 0);
  }

  // ------------------------------------------------------------ transmitters

  /** `partial`: the frame's L4 checksum stays CHECKSUM_PARTIAL (the engine decided; see Engine.keepsPartial). */
  natIn(batch: FrameBatch, i: number, id: number, dest: Dest | undefined, info: PacketInfo, partial = false): number {
    const e = this.e;
    e.conns.getAddr(id, ADDR_D, this.a2);
    const ok = dest !== undefined ? this.destHop(dest) : this.addrHop(info.af, this.a2);
    if (!ok) { batch.verdict[i] = V_DROP; return R.R_NO_NEIGHBOUR; }
    const rc = xmitNatIn(batch.buf, info, this.a2, e.conns.dport[id]!, partial, this.l2, e.mtu, this.res);
    return this.finish(batch, i, info, rc, R_FWD_NAT_IN, true);
  }

  natOut(batch: FrameBatch, i: number, id: number, info: PacketInfo, partial = false): number {
    const e = this.e;
    if (!this.addrHop(info.af, info.daddr)) { batch.verdict[i] = V_DROP; return R.R_NO_NEIGHBOUR; }
    e.conns.getAddr(id, ADDR_V, this.a2);
    const rc = xmitNatOut(batch.buf, info, this.a2, e.conns.vport[id]!, partial, this.l2, e.mtu, this.res);
    return this.finish(batch, i, info, rc, R_FWD_NAT_OUT, false);
  }

  directRoute(batch: FrameBatch, i: number, id: number, dest: Dest | undefined, info: PacketInfo): number {
    const e = this.e;
    let ok: boolean;
    if (dest !== undefined) ok = this.destHop(dest);
    else { e.conns.getAddr(id, ADDR_D, this.a2); ok = this.addrHop(info.af, this.a2); }
    if (!ok) { batch.verdict[i] = V_DROP; return R.R_NO_NEIGHBOUR; }
    const relayed = info.icmpType >= 0 && info.innerL3Off >= 0;
    const rc = xmitDr(batch.buf, info, this.l2, e.mtu, relayed, this.res);
    return this.finish(batch, i, info, rc, relayed ? R.R_FWD_ICMP_IN : R.R_FWD_DR, true);
  }

  /** cache_bypass connections go to the packet's original destination. */
  bypass(batch: FrameBatch, i: number, info: PacketInfo): number {
    if (!this.addrHop(info.af, info.daddr)) { batch.verdict[i] = V_DROP; return R.R_NO_NEIGHBOUR; }
    const rc = xmitDr(batch.buf, info, this.l2, this.e.mtu, false, this.res);
    return this.finish(batch, i, info, rc, R.R_BYPASS, true);
  }

  /**
   * `partial`: the frame's checksum is a partial TCP/UDP sum at its transport header (engine
   * partialAtL4); it may leave partial when the batch's backend finishes it (batch.txOffload).
   */
  tunnel(batch: FrameBatch, i: number, _id: number, dest: Dest, info: PacketInfo, partial = false): number {
    let tgt = this.tunnelTargetOf(dest) as TunnelSlot | undefined;
    if (tgt === undefined) {
      // The outer IPv6 header needs a source address (the kernel's route lookup fails without one).
      if (dest.addr.af === 6 && !this.hasIp6()) { batch.verdict[i] = V_DROP; return R.R_NO_SOURCE_ADDR; }
      if (!this.destHop(dest)) { batch.verdict[i] = V_DROP; return R.R_NO_NEIGHBOUR; }
      const daddr = Uint32Array.of(dest.addr.w0, dest.addr.w1, dest.addr.w2, dest.addr.w3);
      const saddr = dest.addr.af === 4 ? Uint32Array.of(this.e.ip4, 0, 0, 0) : Uint32Array.from(this.e.ip6);
      tgt = newTunnelTarget(dest.addr.af, saddr, daddr, dest.tunType, dest.tunPort, dest.tunFlags, this.e.mtu,
        Uint8Array.from(this.l2), info.vlanTci) as TunnelSlot;
      if (dest.id < this.tunTargets.length) this.tunTargets[dest.id] = tgt;
    }
    // The outer frame leaves on the packet's own VLAN, like the NAT/DR frames rewritten in place:
    // the cached target must not keep the first packet's tag.
    tgt.vlanTci = info.vlanTci;
    const relayed = info.icmpType >= 0 && info.innerL3Off >= 0;
    const fl = batch.flags[i]!;
    const res = this.res;
    let rc: number;
    if ((fl & FRAME_GSO) !== 0 && !relayed) {
      // No virtio_net_hdr GSO type describes a tunnelled super-frame: cut it here (xmit/gso.ts).
      rc = tunnelXmitGso(batch.buf, info, tgt, this.tun, batch.gsoType[i]!, batch.gsoSize[i]!,
        batch.slotBase(i) + batch.slotSize, res, batch.txOffload);
    } else {
      rc = this.tun.xmit(batch.buf, info, tgt, partial && !relayed, relayed, res, batch.txOffload);
    }
    // Something is left for the kernel only where the transmitter says so: a checksum to finish
    // (res.csumStart, the same for every segment), and, for GUE remcsum super-frames, the
    // segmentation of each part (res.gsoType), whose partial checksum is the outer UDP one.
    let f = fl & ~(FRAME_GSO | FRAME_CSUM_NOT_READY);
    if (rc === XMIT_OK && res.csumStart >= 0) {
      f |= FRAME_CSUM_NOT_READY;
      batch.csumStart[i] = res.csumStart;
      batch.csumOffset[i] = res.csumOffset;
    }
    if (rc === XMIT_OK && res.gsoType !== 0) {
      f |= FRAME_GSO;
      batch.gsoType[i] = res.gsoType;
      batch.gsoSize[i] = res.gsoSize;
    }
    res.csumStart = -1;
    res.gsoType = 0;
    batch.flags[i] = f;
    return this.finish(batch, i, info, rc, relayed ? R.R_FWD_ICMP_IN : R.R_FWD_TUN, true, R.R_NO_HEADROOM);
  }

  icmpIn(batch: FrameBatch, i: number, id: number, dest: Dest | undefined, info: PacketInfo): number {
    const e = this.e;
    e.conns.getAddr(id, ADDR_D, this.a2);
    const ok = dest !== undefined ? this.destHop(dest) : this.addrHop(info.af, this.a2);
    if (!ok) { batch.verdict[i] = V_DROP; return R.R_NO_NEIGHBOUR; }
    const rc = xmitIcmpNatIn(batch.buf, info, this.a2, e.conns.dport[id]!, this.l2, e.mtu, this.res);
    return this.finish(batch, i, info, rc, R.R_FWD_ICMP_IN, true);
  }

  icmpOut(batch: FrameBatch, i: number, id: number, info: PacketInfo): number {
    const e = this.e;
    if (!this.addrHop(info.af, info.daddr)) { batch.verdict[i] = V_DROP; return R.R_NO_NEIGHBOUR; }
    e.conns.getAddr(id, ADDR_V, this.a2);
    const rc = xmitIcmpNatOut(batch.buf, info, this.a2, e.conns.vport[id]!, this.l2, e.mtu, this.res);
    return this.finish(batch, i, info, rc, R.R_FWD_ICMP_OUT, false);
  }

  /**
   * Maps a transmitter outcome to a verdict. `towardsServer`: the packet came from the
   * client side to a VIP, so ICMP errors about it are sourced from the VIP (the kernel
   * owns the VIP as a local address); replies forwarded from real servers get errors
   * from the director's own address. `errReason` names an XMIT_ERROR (cannot rewrite, or for
   * tunnels no headroom).
   */
  private finish(
    batch: FrameBatch, i: number, info: PacketInfo, rc: number, okReason: number, towardsServer: boolean,
    errReason: number = R_CANNOT_REWRITE,
  ): number {
    if (rc === XMIT_OK) {
      const res = this.res;
      batch.off[i] = res.off;
      batch.len[i] = res.len;
      batch.verdict[i] = V_FORWARD;
      if (res.segs > 1) {
        batch.flags[i] = batch.flags[i]! | FRAME_SEGMENTED;
        batch.segs[i] = res.segs;
        batch.segStride[i] = res.stride;
        res.segs = 0;
      }
      return okReason;
    }
    batch.verdict[i] = V_DROP;
    if (rc === XMIT_TTL_EXCEEDED) {
      this.sendError(batch, i, info, ICMPERR_TIME_EXCEEDED, 0, towardsServer);
      return R.R_TTL_EXCEEDED;
    }
    if (rc === XMIT_FRAG_NEEDED) {
      this.sendError(batch, i, info, ICMPERR_FRAG_NEEDED, this.res.mtu, towardsServer);
      return R.R_FRAG_NEEDED;
    }
    // ulvs does not fragment (documented); XMIT_DROP is the MTU drop without ICMP (an IPv6
    // non-first fragment or relayed error over the MTU, a tunnel MTU below 68 / 1280).
    if (rc === XMIT_FRAGMENT || rc === XMIT_DROP) return R.R_TOO_BIG;
    // XMIT_ERROR: a tunnel without headroom for its outer headers, or a packet NAT cannot rewrite.
    return errReason;
  }

  /** ip_vs_leave's ICMP port unreachable (sourced from the VIP). */
  icmpUnreachablePort(batch: FrameBatch, _i: number, info: PacketInfo, tx: TxQueue, cause: number): void {
    this.emitError(batch, info, ICMPERR_PORT_UNREACH, 0, info.daddr, tx, cause);
  }

  private sendError(batch: FrameBatch, i: number, info: PacketInfo, kind: number, mtu: number, fromVip: boolean): void {
    const tx = this.e.currentTx;
    if (tx === null) return;
    void i;
    // Like icmp6_send finding no source address: without an IPv6 address of its own the director stays silent.
    if (!fromVip && info.af === 6 && !this.hasIp6()) return;
    const src = fromVip ? info.daddr : info.af === 4 ? this.saddr4 : this.e.ip6;
    this.emitError(batch, info, kind, mtu, src, tx, this.e.currentCause);
  }

  private emitError(batch: FrameBatch, info: PacketInfo, kind: number, mtu: number, saddr: Uint32Array, tx: TxQueue, cause: number): void {
    const off = tx.reserve();
    if (off < 0) return;
    // Back to whoever sent us the frame: its source MAC is the next hop.
    const b = batch.buf;
    const f = info.frameOff;
    const l2 = this.errL2;
    for (let k = 0; k < 6; k++) l2[k] = b[f + 6 + k]!;
    const len = this.icmp.build(b, info, kind, mtu, saddr, l2, info.vlanTci, tx.buf, off);
    if (len > 0) tx.commit(len, this.e.ifindex, cause);
  }

  // ------------------------------------------------------------ ARP

  /** Turns an ARP request for one of our addresses into the reply, in place. */
  arpReply(buf: Uint8Array, frameOff: number, info: PacketInfo): void {
    const mac = this.e.mac;
    const a = info.l3Off;
    // Ethernet: back to the requester, from us.
    for (let k = 0; k < 6; k++) { buf[frameOff + k] = buf[frameOff + 6 + k]!; buf[frameOff + 6 + k] = mac[k]!; }
    buf[a + 6] = 0; buf[a + 7] = 2; // op = reply
    for (let k = 0; k < 6; k++) buf[a + 18 + k] = buf[a + 8 + k]!; // tha = requester's sha
    for (let k = 0; k < 4; k++) {
      const t = buf[a + 24 + k]!; // requested address
      buf[a + 24 + k] = buf[a + 14 + k]!; // tpa = requester's spa
      buf[a + 14 + k] = t; // spa = requested address
    }
    for (let k = 0; k < 6; k++) buf[a + 8 + k] = mac[k]!; // sha = us
  }
}

void ADDR_C;
