/**
 * The established-connection fast path: IPv4 TCP (ACK without SYN/FIN/RST, in
 * ESTABLISHED) and UDP packets of existing NAT or direct-routing connections, and
 * client packets of IPIP tunnel connections to IPv4 real servers,
 * without IP options, fragments or VLAN tags, and with complete checksums — or
 * partial ones when the batch leaves with its offload state (vnet hdr), which
 * then stay partial (see Engine.keepsPartial). For these the
 * general path's outcome is known in advance — no state change, no scheduling, no
 * ICMP — so this does the same work with fewer steps: one bounds-checked header
 * read, one hash probe, incremental checksums, per-destination cached MACs.
 * Anything else returns -1 and takes the general path (engine.ts), which stays
 * the reference: test/core/fastpath.test.ts checks both produce identical bytes,
 * counters and connection state.
 *
 * Memory, not instructions, is what costs at 100k+ flows: each packet needs its
 * connection's hash record and hot record (conn/table.ts), two cache lines that
 * are almost never cached. `prepare(batch)` therefore walks the whole batch
 * first, loading every frame's hash slots, then every hit's hot record, so the
 * misses of different frames overlap instead of stalling one after another.
 */
import * as batchConsts from '../io/batch.js';
import type { FrameBatch } from '../io/batch.js';
import * as connFlags from '../conn/flags.js';
import * as svcTypes from '../svc/types.js';
import type { Engine } from './engine.js';
import { ecnEncapsulate } from '../xmit/tunnel.js';
import * as connTable from '../conn/table.js';
import * as reasons from './reasons.js';

// Module-local copies of the imported constants: an imported binding is a live
// cell that optimized code loads and checks for the hole (TDZ) at every use,
// while a local const holding a number is folded into the instruction.
const FRAME_CSUM_NOT_READY = batchConsts.FRAME_CSUM_NOT_READY;
const FRAME_GSO = batchConsts.FRAME_GSO;
const V_FORWARD = batchConsts.V_FORWARD;
const CONN_F_MASQ = connFlags.CONN_F_MASQ;
const CONN_F_DROUTE = connFlags.CONN_F_DROUTE;
const CONN_F_TUNNEL = connFlags.CONN_F_TUNNEL;
const TCP_S_ESTABLISHED = connFlags.TCP_S_ESTABLISHED;
const UDP_S_NORMAL = connFlags.UDP_S_NORMAL;
const DEST_F_AVAILABLE = svcTypes.DEST_F_AVAILABLE;
const TUN_IPIP = svcTypes.TUN_IPIP;
const ST_INPKTS = svcTypes.ST_INPKTS;
const ST_INBYTES = svcTypes.ST_INBYTES;
const ST_OUTPKTS = svcTypes.ST_OUTPKTS;
const ST_OUTBYTES = svcTypes.ST_OUTBYTES;
const R_FWD_DR = reasons.R_FWD_DR;
const R_FWD_NAT_IN = reasons.R_FWD_NAT_IN;
const R_FWD_NAT_OUT = reasons.R_FWD_NAT_OUT;
const R_FWD_TUN = reasons.R_FWD_TUN;

const TCP = 6;
const UDP = 17;
// TCP flags that change state or need the general path: FIN, SYN, RST.
const TCP_STATEFUL = 0x07;
const TCP_ACK = 0x10;
// The same for the home-slot hash (a function: folded, it inlines with no identity check).
const homeHash = connTable.homeHash;
const REC = connTable.REC;

export class FastPath {
  private readonly e: Engine;
  /** Set false to force every frame through the general path (tests compare the two). */
  enabled = true;
  /** Frames forwarded by the fast path (a plain counter: cheaper than asking later). */
  hits = 0;

  // Per-frame scratch of prepare(): the home record position of the key the frame most
  // likely has, and which lookup that key is for (1: client → VIP, 0: reply). tryForward
  // starts its lookup there instead of mixing the hash again.
  private homes = new Int32Array(0);
  private inGuess = new Uint8Array(0);
  /** The batch homes/inGuess describe (tryForward ignores them for any other). */
  private prepared: FrameBatch | null = null;
  /** Folds the prefetch loads so the compiler keeps them. */
  private sink = 0;
  private readonly addr = new Uint32Array(4);
  /** Big-endian 16/32-bit access to the batch arena (one read instead of two or four). */
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private viewOf: Uint8Array | null = null;
  /** One view per arena ever seen (a backend may alternate between a few). */
  private readonly views = new WeakMap<Uint8Array, DataView<ArrayBufferLike>>();
  /** Our MAC (Engine.mac) as a 16-bit and a 32-bit word, read by prepare() for the batch. */
  private macHi = 0;
  private macLo = 0;

  constructor(engine: Engine) {
    this.e = engine;
  }

  /** The DataView over `buf`, made once per arena. */
  private viewFor(buf: Uint8Array): DataView<ArrayBufferLike> {
    if (buf === this.viewOf) return this.view;
    let v = this.views.get(buf);
    if (v === undefined) {
      v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      this.views.set(buf, v);
    }
    this.view = v;
    this.viewOf = buf;
    return v;
  }

  /**
   * Loads, for every IPv4 TCP/UDP frame of the batch, the hash slot its lookup
   * will probe — as a client packet when it goes to a VIP, else as a reply — then
   * the hot record of the entry found there, so the per-frame work that follows
   * hits the cache. Loads only: a wrong guess (fwmark services, other traffic)
   * costs a useless load, nothing observable changes, whatever the frames are.
   */
  prepare(batch: FrameBatch): void {
    const n = batch.count;
    if (this.homes.length < n) {
      this.homes = new Int32Array(batch.capacity);
      this.inGuess = new Uint8Array(batch.capacity);
    }
    this.prepared = batch;
    const mac = this.e.mac;
    this.macHi = (mac[0]! << 8) | mac[1]!;
    this.macLo = ((mac[2]! << 24) | (mac[3]! << 16) | (mac[4]! << 8) | mac[5]!) >>> 0;
    const inGuess = this.inGuess;
    const e = this.e;
    const conns = e.conns;
    // Built by Engine.refresh, which runs right before this.
    const vips = e.vip4;
    const buf = batch.buf;
    const dv = this.viewFor(buf);
    const end = buf.length | 0;
    const homes = this.homes;
    // The batch's offsets in a local: read through `batch`, they would be reloaded (and their
    // map checked) on every iteration, after the stores into homes and inGuess.
    const offs = batch.off;
    // The hash seed and mask and the VIP set's slots and mask in locals too: as fields they
    // were reloaded and checked every iteration (the seed, often a heap number, converted
    // each time); `| 0` makes them int32 once, before the loop.
    const seed = conns.seed | 0;
    const mask = conns.slotMask | 0;
    const vs = vips.slots;
    const vmask = vips.mask | 0;
    for (let i = 0; i < n; i++) {
      // -1: nothing to load. Stored once, at the end (typed-array stores cost a dozen
      // instructions each here).
      let home = -1;
      // Offsets are int32 arithmetic throughout (`| 0`: no overflow checks; arena offsets are
      // far below 2^31, and an out-of-range index only fails the bound or DataView check).
      const o = offs[i]! | 0;
      // EtherType 0x0800, then version 4 / IHL 5.
      // No length check: a short frame gives at worst a wrong guess, and tryForward drops
      // it (len < 42) before using its home. The bound keeps the reads in the arena.
      if (((o + 42) | 0) <= end && (dv.getUint32((o + 12) | 0) >>> 8) === 0x080045) {
        const l3 = (o + 14) | 0;
        // TTL, protocol and checksum: a DataView read, so the loop touches no other view.
        const proto = (dv.getUint32((l3 + 8) | 0) >>> 16) & 0xff;
        if (proto === TCP || proto === UDP) {
          const ports = dv.getUint32((l3 + 20) | 0);
          const daddr = dv.getUint32((l3 + 16) | 0);
          // Client packets are hashed by their source, replies by their destination (the client).
          // vips.has(daddr), probed inline (Ip4Set: 0 never a member, 0 marks an empty slot).
          let vip = false;
          if (daddr !== 0) {
            let k = (Math.imul(daddr, 0x9e3779b1) >>> 16) & vmask;
            for (;;) {
              const v = vs[k]!;
              if (v === daddr) {
                vip = true;
                break;
              }
              if (v === 0) break;
              k = (k + 1) & vmask;
            }
          }
          if (vip) {
            home = Math.imul(homeHash(seed, mask, 4, proto, dv.getUint32((l3 + 12) | 0), ports >>> 16), REC);
            inGuess[i] = 1;
          } else {
            home = Math.imul(homeHash(seed, mask, 4, proto, daddr, ports & 0xffff), REC);
            inGuess[i] = 0;
          }
        }
      }
      homes[i] = home;
    }
    // Tight loops with nothing but the loads, so many misses are in flight at once:
    // first the slots, then (their lines arriving) the hot record of the entry found
    // there. A record of another key only wastes a load.
    this.sink ^= conns.touchHomes(homes, n);
  }

  /** Forwards frame i if it is an eligible established packet; returns its reason, or -1. */
  tryForward(batch: FrameBatch, i: number): number {
    const partial = (batch.flags[i]! & FRAME_CSUM_NOT_READY) !== 0;
    // `!== true` is one pointer compare; `!this.enabled` is V8's generic truthiness test
    // (the field holds a tagged value), a dozen instructions.
    if (this.enabled !== true || (partial && !batch.txOffload)) return -1;
    const buf = batch.buf;
    const dv = buf === this.viewOf ? this.view : this.viewFor(buf);
    const o = batch.off[i]!;
    const len = batch.len[i]!;
    if (len < 42 || o + len > buf.length) return -1;
    const l3 = o + 14;
    if ((dv.getUint32(o + 12) >>> 8) !== 0x080045) return -1; // IPv4 without options
    const totLen = dv.getUint16(l3 + 2);
    if (totLen < 28 || totLen > len - 14) return -1;
    // Fragment bits, TTL and protocol in one read.
    const w = dv.getUint32(l3 + 6);
    if ((w & 0x3fff0000) !== 0) return -1; // fragment
    if ((w & 0xff00) <= 0x0100) return -1; // TTL expiry: general path sends the ICMP
    const proto = w & 0xff;
    const l4 = l3 + 20;
    let csumAt: number;
    if (proto === TCP) {
      if (totLen < 40) return -1;
      // Data offset and flags in one read.
      const offFlags = dv.getUint16(l4 + 12);
      const doff = offFlags >>> 12;
      if (doff < 5 || 20 + (doff << 2) > totLen) return -1;
      if ((offFlags & TCP_STATEFUL) !== 0 || (offFlags & TCP_ACK) === 0) return -1;
      csumAt = l4 + 16;
    } else if (proto === UDP) {
      const ulen = dv.getUint16(l4 + 4);
      if (ulen < 8 || ulen > totLen - 20) return -1;
      if (dv.getUint16(l4 + 6) === 0) return -1; // zero checksum: the kernel computes a full one
      csumAt = l4 + 6;
    } else {
      return -1;
    }
    // A partial checksum must be the one at this transport header (csum_start 34 = 14 + 20).
    if (partial && (batch.csumStart[i] !== 34 || batch.csumOffset[i] !== csumAt - l4)) return -1;
    const e = this.e;
    if (totLen > e.mtu || e.sysctls.secure_tcp >= 2) return -1;
    const saddr = dv.getUint32(l3 + 12);
    const daddr = dv.getUint32(l3 + 16);
    const ports = dv.getUint32(l4);
    const sport = ports >>> 16;
    const dport = ports & 0xffff;
    const conns = e.conns;
    // Inbound lookup first, then the reply lookup, as the general path does; the one the
    // prepare() guess was for starts from the home it already computed (same bytes, same key).
    const home = batch === this.prepared && i < this.homes.length ? this.homes[i]! : -1;
    const guessIn = home >= 0 && this.inGuess[i] === 1;
    let r = guessIn ? conns.findIn4At(home, proto, saddr, sport, daddr, dport)
      : conns.findIn4(proto, saddr, sport, daddr, dport);
    let inbound = true;
    if (r < 0) {
      r = home >= 0 && !guessIn ? conns.findOut4At(home, proto, saddr, sport, daddr, dport)
        : conns.findOut4(proto, saddr, sport, daddr, dport);
      if (r < 0) return -1;
      inbound = false;
    }
    const id = conns.recId(r);
    // ONE_PACKET conns are never hashed, so no lookup finds them.
    const method = conns.fwdMethodOf(id);
    if (conns.dafOf(id) !== 4) return -1;
    if (inbound ? method !== CONN_F_MASQ && method !== CONN_F_DROUTE && method !== CONN_F_TUNNEL
      : method !== CONN_F_MASQ) return -1;
    // The state machine would keep the state and re-arm the same timeout: check that.
    const state = conns.stateOf(id);
    const timeout = conns.timeoutOf(id);
    if (proto === TCP) {
      if (state !== TCP_S_ESTABLISHED || timeout !== conns.timeouts.tcp[TCP_S_ESTABLISHED]) return -1;
    } else if (state !== UDP_S_NORMAL || timeout !== conns.timeouts.udp[UDP_S_NORMAL]) {
      return -1;
    }
    const dest = e.table.destById(conns.destIdOf(id));
    if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) return -1;

    // Next hop before any change, so a miss leaves the frame untouched for the general path.
    // Then the source MAC, ours (read by prepare(), which Engine.process runs first).
    if (inbound) {
      if (method === CONN_F_TUNNEL) return this.tunnel(batch, i, dv, id, dest);
      const tail = e.xmitGlue.destMacHead(dest, dv, o);
      if (tail < 0) return -1;
      dv.setUint32(o + 4, (tail << 16) | this.macHi);
    } else {
      const a = this.addr;
      a[0] = daddr;
      if (!e.neigh.resolve(4, a, buf, o)) return -1;
      dv.setUint16(o + 6, this.macHi);
    }
    dv.setUint32(o + 8, this.macLo);

    // ip_decrease_ttl: the TTL (> 1, checked above) and protocol as the high half of the header
    // word at l3 + 8, stored with the new checksum as one 32-bit word at the end.
    const ttlProto = ((w & 0xffff) - 0x0100) << 16;
    let ipc = dv.getUint16(l3 + 10) + 0x0100;
    if (ipc >= 0xffff) ipc += 1;
    ipc &= 0xffff;

    // The counters of Engine.countIn/countOut (ip_vs_in_stats / ip_vs_out_stats); dest is available.
    const dc = dest.stats.cnt;
    const sc = dest.svc.stats.cnt;
    const tc = e.table.totalStats.cnt;
    let reason: number;
    // NAT: one address and one port replaced. The checksum arithmetic is RFC 1624 written out
    // here (csumUpdate32 and csumUpdate16, folded once), because this function is at V8's
    // inlining budget: helpers called from here would stay calls.
    let oldA: number, newA: number, oldP: number, newP: number, aAt: number, pAt: number;
    if (inbound) {
      dc[ST_INPKTS]!++; dc[ST_INBYTES]! += totLen;
      sc[ST_INPKTS]!++; sc[ST_INBYTES]! += totLen;
      tc[ST_INPKTS]!++; tc[ST_INBYTES]! += totLen;
      conns.countInPkt(id);
      if (method !== CONN_F_MASQ) {
        dv.setUint32(l3 + 8, ttlProto | ipc);
        return this.done(batch, i, id, dest.id, R_FWD_DR);
      }
      oldA = daddr; newA = conns.recDaddr(r); aAt = l3 + 16;
      oldP = dport; newP = conns.recDport(r); pAt = l4 + 2;
      reason = R_FWD_NAT_IN;
    } else {
      dc[ST_OUTPKTS]!++; dc[ST_OUTBYTES]! += totLen;
      sc[ST_OUTPKTS]!++; sc[ST_OUTBYTES]! += totLen;
      tc[ST_OUTPKTS]!++; tc[ST_OUTBYTES]! += totLen;
      oldA = saddr; newA = conns.recVaddr(r); aAt = l3 + 12;
      oldP = sport; newP = conns.recVport(r); pAt = l4;
      reason = R_FWD_NAT_OUT;
    }
    const oa = ((~oldA >>> 16) & 0xffff) + (~oldA & 0xffff);
    const na = (newA >>> 16) + (newA & 0xffff);
    let c: number;
    if (partial) {
      // CHECKSUM_PARTIAL: the field is the pseudo-header sum, not complemented, and the port is
      // not in it (whoever finishes the checksum sums the header): only the address changes.
      c = dv.getUint16(csumAt) + oa + na;
      c = (c & 0xffff) + (c >>> 16);
      c = (c & 0xffff) + (c >>> 16);
    } else {
      c = (~dv.getUint16(csumAt) & 0xffff) + oa + na + (~oldP & 0xffff) + newP;
      c = (c & 0xffff) + (c >>> 16);
      c = ~((c & 0xffff) + (c >>> 16)) & 0xffff;
      if (c === 0 && proto === UDP) c = 0xffff;
    }
    dv.setUint16(csumAt, c);
    dv.setUint16(pAt, newP);
    dv.setUint32(aAt, newA);
    let h = (~ipc & 0xffff) + oa + na;
    h = (h & 0xffff) + (h >>> 16);
    h = ~((h & 0xffff) + (h >>> 16)) & 0xffff;
    dv.setUint32(l3 + 8, ttlProto | h);
    return this.done(batch, i, id, dest.id, reason);
  }

  /**
   * Client packet of an IPIP tunnel connection (Xmit.tunnel + TunnelEncap.xmit for an IPv4 real
   * server): inner TTL decremented, then a 20-byte outer IPv4 header and a new Ethernet header
   * written in front of the inner one, in the slot's headroom — the frame starts 20 bytes lower.
   * Called with what tryForward checked (the frame, the connection and its dest); re-reads the
   * few header fields it needs, so that tryForward keeps fewer values live across this call.
   * Whatever the general path would do differently (no cached target yet, GUE/GRE, IPv6 outer,
   * MTU trouble, GSO, no headroom) returns -1 before any change.
   */
  private tunnel(
    batch: FrameBatch, i: number, dv: DataView<ArrayBufferLike>, id: number, dest: svcTypes.Dest,
  ): number {
    const fl = batch.flags[i]!;
    const o = batch.off[i]!;
    const l3 = o + 14;
    const totLen = dv.getUint16(l3 + 2);
    const w = dv.getUint32(l3 + 6);
    const e = this.e;
    const xm = e.xmitGlue;
    const tgt = xm.tunnelTargetOf(dest);
    if (tgt === undefined || tgt.af !== 4 || tgt.type !== TUN_IPIP) return -1;
    // Tunnel MTU (route MTU - outer header): below 68 the general path drops, above the inner
    // length it sends frag-needed, fragments or (pmtu_disc 0) lets the outer packet be cut.
    const tmtu = tgt.routeMtu - 20;
    if (tmtu < 68 || totLen > tmtu) return -1;
    // A GSO super-frame is cut into segments (xmit/gso.ts); the outer headers must fit in front.
    if ((fl & FRAME_GSO) !== 0 || o < 20) return -1;
    const outer = o - 6;
    const start = o - 20;
    // Next hop: the target's template holds the same MAC as the dest's cache (tunnelTargetOf).
    const tail = xm.destMacHead(dest, dv, start);
    if (tail < 0) return -1;
    dv.setUint32(start + 4, (tail << 16) | this.macHi);
    dv.setUint32(start + 8, this.macLo);
    dv.setUint16(start + 12, 0x0800);

    // The counters and connection of Engine.inbound (dest is available).
    const conns = e.conns;
    const dc = dest.stats.cnt;
    const sc = dest.svc.stats.cnt;
    const tc = e.table.totalStats.cnt;
    dc[ST_INPKTS]!++; dc[ST_INBYTES]! += totLen;
    sc[ST_INPKTS]!++; sc[ST_INBYTES]! += totLen;
    tc[ST_INPKTS]!++; tc[ST_INBYTES]! += totLen;
    conns.countInPkt(id);

    // decTtl on the inner header (checksum + 0x0100 with ip_decrease_ttl's end-around carry):
    // TTL, protocol and checksum stored as one word, as in tryForward.
    const ttl = ((w >>> 8) & 0xff) - 1;
    let ipc = dv.getUint16(l3 + 10) + 0x0100;
    if (ipc >= 0xffff) ipc += 1;
    dv.setUint32(l3 + 8, (((w & 0xffff) - 0x0100) << 16) | (ipc & 0xffff));

    // Outer header (TunnelEncap.encap): DF copied with pmtu_disc, else the next ID of the counter.
    const df = (w & 0x40000000) !== 0 && xm.tun.pmtuDisc;
    const ipId = df ? 0 : xm.tun.nextIpId();
    const frag = df ? 0x4000 : 0;
    const w0 = 0x4500 | ecnEncapsulate(dv.getUint8(l3 + 1));
    const total = totLen + 20;
    const w4 = (ttl << 8) | 4;
    const s = tgt.saddr[0]!;
    const d = tgt.daddr[0]!;
    let c = w0 + total + ipId + frag + w4 + (s >>> 16) + (s & 0xffff) + (d >>> 16) + (d & 0xffff);
    c = (c & 0xffff) + (c >>> 16);
    c = ~((c & 0xffff) + (c >>> 16)) & 0xffff;
    dv.setUint32(outer, (w0 << 16) | total);
    dv.setUint32(outer + 4, (ipId << 16) | frag);
    dv.setUint32(outer + 8, (w4 << 16) | c);
    dv.setUint32(outer + 12, s);
    dv.setUint32(outer + 16, d);

    batch.off[i] = start;
    batch.len[i] = totLen + 34;
    // A partial checksum stays partial (the prologue checked the batch's offload), at the same
    // transport header, now 54 bytes into the frame; flags and csum offset stay as they are.
    if ((fl & FRAME_CSUM_NOT_READY) !== 0) batch.csumStart[i] = 54;
    return this.done(batch, i, id, dest.id, R_FWD_TUN);
  }

  /** The common tail: re-arm the timer, outcome, verdict. */
  private done(batch: FrameBatch, i: number, id: number, destId: number, reason: number): number {
    const e = this.e;
    const conns = e.conns;
    conns.touch(id, e.now);
    const oc = e.outcome;
    oc.destId = destId;
    oc.svcId = conns.svcIdOf(id);
    batch.verdict[i] = V_FORWARD;
    this.hits++;
    return reason;
  }
}
