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
 * Anything else takes the general path (engine.ts), which stays the reference:
 * test/core/fastpath.test.ts checks both produce identical bytes, counters and
 * connection state.
 *
 * Memory, not instructions, is what costs at 100k+ flows: each packet needs its
 * connection's hash record and hot record (conn/table.ts), two cache lines that
 * are almost never cached. `prepare(batch)` therefore walks the whole batch
 * first, loading every frame's hash slots, then every hit's hot record, so the
 * misses of different frames overlap instead of stalling one after another.
 *
 * Then `run(batch)` is Engine.process's whole frame loop: the fast path inline, with
 * everything it touches in locals for the batch, and the general path called for the
 * other frames, in order.
 */
import * as batchConsts from '../io/batch.js';
import type { FrameBatch } from '../io/batch.js';
import * as connFlags from '../conn/flags.js';
import * as svcTypes from '../svc/types.js';
import type { Engine, TraceHook } from './engine.js';
import { ecnEncapsulate } from '../xmit/tunnel.js';
import * as connTable from '../conn/table.js';
import * as reasons from './reasons.js';
import * as xmitGlue from './xmit-glue.js';
import { macHi16, macLo32 } from '../util/mac.js';

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
// The record layouts run() reads the connection table's arrays with (conn/table.ts).
const layout = connTable.recordLayout;
const R_C = layout.R_C;
const R_V = layout.R_V;
const R_D = layout.R_D;
const R_P = layout.R_P;
const R_M = layout.R_M;
const R_ID = layout.R_ID;
const M_USED = layout.M_USED;
const M_NOCPORT = layout.M_NOCPORT;
const M_MASQ = layout.M_MASQ;
const IN_MASK = layout.IN_MASK;
const TPL_MASK = layout.TPL_MASK;
const H_TIMEOUT = layout.H_TIMEOUT;
const H_INPKTS = layout.H_INPKTS;
const H_EXPIRES64 = layout.H_EXPIRES64;
const H_DEST = layout.H_DEST;
/** id << HOT_SHIFT: an id's first hot word (HOT, 8 words, a power of two). */
const HOT_SHIFT = 31 - Math.clz32(layout.HOT);
/**
 * The hot word holding the state, forwarding-method and daf bytes (HB_STATE, HB_FWD, HB_DAF:
 * bytes 0, 1, 2 of one uint32 word on a little-endian machine). run() reads them as one word;
 * on a big-endian one, or with another layout, Engine.process keeps the per-frame loop.
 */
const HW_SFD = layout.HB_STATE >>> 2;
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
/** Whether run() can read the hot record and index it as it does (see HW_SFD, HOT_SHIFT). */
export const BATCH_LOOP_OK = LITTLE_ENDIAN && layout.HOT === 1 << HOT_SHIFT &&
  layout.HB_STATE % 4 === 0 && layout.HB_FWD === layout.HB_STATE + 1 && layout.HB_DAF === layout.HB_STATE + 2;
const NEXT_HOP_OK = xmitGlue.NEXT_HOP_OK;

export class FastPath {
  private readonly e: Engine;
  /** Set false to force every frame through the general path (tests compare the two). */
  enabled = true;
  /** Frames forwarded by the fast path (a plain counter: cheaper than asking later). */
  hits = 0;

  // Per-frame scratch of prepare(): the home record position of the key the frame most
  // likely has, shifted left by one, with which lookup that key is for in the low bit (1:
  // client → VIP, 0: reply), or -1. run starts its lookup there instead of
  // mixing the hash again. One array rather than two: each typed array a loop reads costs
  // its own map, bounds and pointer checks per frame.
  private homes = new Int32Array(0);
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
  private prepare(batch: FrameBatch): void {
    const n = batch.count;
    if (this.homes.length < n) this.homes = new Int32Array(batch.capacity);
    const mac = this.e.mac;
    this.macHi = macHi16(mac);
    this.macLo = macLo32(mac);
    const e = this.e;
    const conns = e.conns;
    // Built by Engine.refresh, which runs right before this.
    const vips = e.vip4;
    const buf = batch.buf;
    // Read back from the field, not taken from viewFor's result: the field has only ever held
    // DataViews, so the loop's reads need no type checks on it.
    if (buf !== this.viewOf) this.viewFor(buf);
    const dv = this.view;
    const end = buf.length | 0;
    const homes = this.homes;
    // The batch's offsets in a local: read through `batch`, they would be reloaded (and their
    // map checked) on every iteration, after the store into homes.
    const offs = batch.off;
    // The hash seed and mask and the VIP set's slots and mask in locals too: as fields they
    // were reloaded and checked every iteration (the seed, often a heap number, converted
    // each time); `| 0` makes them int32 once, before the loop.
    const seed = conns.seed | 0;
    const mask = conns.slotMask | 0;
    const vs = vips.slots;
    const vmask = vips.mask | 0;
    // The last destination found in the VIP set (0: none yet; 0 is never a member): the
    // frames of a batch mostly go to one VIP, and a compare is cheaper than the probe.
    let lastVip = 0;
    for (let i = 0; i < n; i++) {
      // -1: nothing to load. Stored once, at the end (typed-array stores cost a dozen
      // instructions each here).
      let home = -1;
      // Offsets are int32 arithmetic throughout (`| 0`: no overflow checks; arena offsets are
      // far below 2^31, and an out-of-range index only fails the bound or DataView check).
      const o = offs[i]! | 0;
      // EtherType 0x0800, then version 4 / IHL 5.
      // No length check: a short frame gives at worst a wrong guess, and run drops
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
            if (daddr === lastVip) {
              vip = true;
            } else {
              let k = (Math.imul(daddr, 0x9e3779b1) >>> 16) & vmask;
              for (;;) {
                const v = vs[k]!;
                if (v === daddr) {
                  vip = true;
                  lastVip = daddr;
                  break;
                }
                if (v === 0) break;
                k = (k + 1) & vmask;
              }
            }
          }
          if (vip) {
            home = (Math.imul(homeHash(seed, mask, 4, proto, dv.getUint32((l3 + 12) | 0), ports >>> 16), REC) << 1) | 1;
          } else {
            home = Math.imul(homeHash(seed, mask, 4, proto, daddr, ports & 0xffff), REC) << 1;
          }
        }
      }
      homes[i] = home;
    }
    // Tight loops with nothing but the loads, so many misses are in flight at once:
    // first the slots, then (their lines arriving) the hot record of the entry found
    // there. A record of another key only wastes a load. (Loading the slots in the loop
    // above instead saves 17 instructions per frame but is a quarter slower on the clock
    // at 100k connections: its frames are too long for many misses to overlap.)
    this.sink ^= conns.touchHomes(homes, n);
  }

  /**
   * Engine.process's frame loop: prepare, then every frame in order, the eligible
   * established ones forwarded here, the others through Engine.generalFrame — in order, so
   * each frame sees what the general path did to the connection table for the frames before
   * it. Writes each frame's reason and counts it; calls `trace`, when given, for every frame
   * with its outcome. With the fast path off (`enabled`, or a machine BATCH_LOOP_OK rules
   * out) every frame takes the general path.
   *
   * One loop with everything it touches in locals — the batch's arrays, the arena's view,
   * the table's record arrays, the next-hop cache, the timeouts: called per frame, a
   * function reloads each of them from `this`, `this.e`, `conns` and `batch` (and re-checks
   * their maps) after every store and call, which cost about a third of the instructions
   * (callgrind, nat-in: −318 per frame against the per-frame tryForward this replaced).
   * The scalars it holds that a general frame could change (the table's NO_CPORT count,
   * MTU, secure_tcp, the two timeouts) are read again after each general frame; the arrays
   * are only replaced between batches.
   *
   * Without a tracer nothing reads the outcome or reasonCount during the batch, so neither
   * is touched per forwarded frame: the forwarded frames' reasons are counted once at the
   * end, and the outcome is left as a per-frame loop would leave it, the last frame's.
   */
  run(batch: FrameBatch, trace: TraceHook | null): void {
    const e = this.e;
    const n = batch.count;
    const conns = e.conns;
    const table = e.table;
    const xm = e.xmitGlue;
    const counts = e.reasonCount;
    const offs = batch.off;
    const lens = batch.len;
    const flags = batch.flags;
    const verdicts = batch.verdict;
    const reasonsOut = batch.reason;
    const csumStarts = batch.csumStart;
    const csumOffsets = batch.csumOffset;
    const txOffload = batch.txOffload;
    const buf = batch.buf;
    const end = buf.length | 0;
    if (this.enabled !== true || !BATCH_LOOP_OK) {
      for (let i = 0; i < n; i++) {
        const reason = e.generalFrame(batch, i) | 0;
        reasonsOut[i] = reason;
        counts[reason]!++;
        if (trace !== null) trace(i, verdicts[i]!, reason, e.outcome);
      }
      return;
    }
    // The batch's homes, and the arena's view in this.view.
    this.prepare(batch);
    const dv = this.view;
    const homes = this.homes;
    const macHi = this.macHi;
    const macLo = this.macLo;
    const s = conns.hashRecords;
    const wrap = s.length | 0;
    const hot32 = conns.hotWords;
    const hot64 = conns.hotFloats;
    const seed = conns.seed | 0;
    const mask = conns.slotMask | 0;
    const tcpTimeouts = conns.timeouts.tcp;
    const udpTimeouts = conns.timeouts.udp;
    let tcpEstablished = tcpTimeouts[TCP_S_ESTABLISHED]!;
    let udpNormal = udpTimeouts[UDP_S_NORMAL]!;
    const nhWords = xm.destHopWords;
    const nhLen = nhWords.length | 0;
    const tc = table.totalStats.cnt;
    const dests = table.destRegistry;
    const now = e.now;
    // The largest IP total length forwarded here: the MTU, or 0 (none: all to the general path)
    // with secure_tcp ≥ 2. One value and one compare per frame, for the two conditions.
    let maxLen = e.sysctls.secure_tcp >= 2 ? 0 : e.mtu;
    let noCport = conns.noCportCount;
    // Frames forwarded here per reason, added to reasonCount once at the end (nothing reads it
    // during the batch without a tracer).
    let nNatIn = 0;
    let nNatOut = 0;
    let nDr = 0;
    // The director's total counters likewise (table.totalStats: only the estimator and ipvsadm
    // read them, never during a batch): packets from the counts above, bytes summed here. One
    // Float64Array fewer touched per frame.
    let bytesIn = 0;
    let bytesOut = 0;
    // The last frame's connection when it was forwarded here (-1: it was not). Its dest is the
    // one in its hot record: one value fewer to carry from frame to frame.
    let lastId = -1;
    for (let i = 0; i < n; i++) {
      fast: {
        const fl = flags[i]!;
        const partial = (fl & FRAME_CSUM_NOT_READY) !== 0;
        if (partial && !txOffload) break fast;
        const o0 = offs[i]!;
        const len = lens[i]! | 0;
        if (len < 42 || o0 + len > end) break fast;
        // In the arena (checked just above): int32 arithmetic from here, no overflow checks.
        const o = o0 | 0;
        const l3 = (o + 14) | 0;
        if ((dv.getUint32((o + 12) | 0) >>> 8) !== 0x080045) break fast; // IPv4 without options
        const totLen = dv.getUint16((l3 + 2) | 0);
        if (totLen < 28 || totLen > ((len - 14) | 0)) break fast;
        // Fragment bits, TTL and protocol in one read.
        const w = dv.getUint32((l3 + 6) | 0);
        if ((w & 0x3fff0000) !== 0) break fast; // fragment
        if ((w & 0xff00) <= 0x0100) break fast; // TTL expiry: general path sends the ICMP
        const proto = w & 0xff;
        const l4 = (l3 + 20) | 0;
        let csumAt: number;
        if (proto === TCP) {
          if (totLen < 40) break fast;
          const offFlags = dv.getUint16((l4 + 12) | 0);
          const doff = offFlags >>> 12;
          if (doff < 5 || 20 + (doff << 2) > totLen) break fast;
          if ((offFlags & TCP_STATEFUL) !== 0 || (offFlags & TCP_ACK) === 0) break fast;
          csumAt = (l4 + 16) | 0;
        } else if (proto === UDP) {
          const ulen = dv.getUint16((l4 + 4) | 0);
          if (ulen < 8 || ulen > totLen - 20) break fast;
          if (dv.getUint16((l4 + 6) | 0) === 0) break fast; // zero checksum: the kernel computes a full one
          csumAt = (l4 + 6) | 0;
        } else {
          break fast;
        }
        if (partial && (csumStarts[i] !== 34 || csumOffsets[i] !== csumAt - l4)) break fast;
        if (totLen > maxLen) break fast;
        const saddr = dv.getUint32((l3 + 12) | 0);
        const daddr = dv.getUint32((l3 + 16) | 0);
        const ports = dv.getUint32(l4);
        const sport = ports >>> 16;
        const dport = ports & 0xffff;
        // prepare's guess: home << 1 | 1 for the client key, home << 1 for the reply key, -1 none.
        const hv = homes[i]!;
        // Inbound lookup (ConnTable.findIn4At): the record's ports word is cport << 16 | vport,
        // the frame's ports word as read.
        let r = -1;
        // The found record's R_M word (dport << 16 | protocol << 8 | meta), kept from the probe.
        let rm = 0;
        {
          let b = hv > 0 && (hv & 1) !== 0 ? hv >> 1 : Math.imul(homeHash(seed, mask, 4, proto, saddr, sport), REC);
          const meta = (proto << 8) | M_USED | (sport === 0 ? M_NOCPORT : 0);
          for (;;) {
            const m = s[(b + R_M) | 0]!;
            if ((m & M_USED) === 0) break;
            if (s[(b + R_C) | 0] === saddr && s[(b + R_P) | 0] === ports && (m & IN_MASK) === meta && s[(b + R_V) | 0] === daddr) {
              r = b;
              rm = m;
              break;
            }
            b = (b + REC) | 0;
            if (b === wrap) b = 0;
          }
          // findIn4At's retry without the client port: rare, left to it.
          if (r < 0 && noCport !== 0 && sport !== 0) {
            r = conns.findIn4(proto, saddr, sport, daddr, dport);
            if (r >= 0) rm = s[(r + R_M) | 0]!;
          }
        }
        let inbound = true;
        if (r < 0) {
          // The reply lookup (ConnTable.findOut4At): the frame's destination is the client.
          let b = hv >= 0 && (hv & 1) === 0 ? hv >> 1 : Math.imul(homeHash(seed, mask, 4, proto, daddr, dport), REC);
          const meta = (proto << 8) | M_USED;
          for (;;) {
            const m = s[(b + R_M) | 0]!;
            if ((m & M_USED) === 0) break;
            if (s[(b + R_C) | 0] === daddr && (s[(b + R_P) | 0]! >>> 16) === dport && (m & TPL_MASK) === meta &&
                ((m & M_MASQ) !== 0 ? (m >>> 16) === sport && s[(b + R_D) | 0] === saddr
                  : (s[(b + R_P) | 0]! & 0xffff) === sport && s[(b + R_V) | 0] === saddr)) {
              r = b;
              break;
            }
            b = (b + REC) | 0;
            if (b === wrap) b = 0;
          }
          if (r < 0) break fast;
          inbound = false;
        }
        // Ids are below the table's capacity (< 2^27): int32 index arithmetic.
        const id = s[(r + R_ID) | 0]! | 0;
        const hw = id << HOT_SHIFT;
        // State, forwarding method and daf: the hot record's bytes HB_STATE.. as one word.
        const sfd = hot32[(hw + HW_SFD) | 0]!;
        const method = (sfd >>> 8) & 0xff;
        if (((sfd >>> 16) & 0xff) !== 4) break fast; // daf
        if (inbound ? method !== CONN_F_MASQ && method !== CONN_F_DROUTE && method !== CONN_F_TUNNEL
          : method !== CONN_F_MASQ) break fast;
        // The state machine would keep the state and re-arm the same timeout: check that.
        const state = sfd & 0xff;
        const timeout = hot32[(hw + H_TIMEOUT) | 0]!;
        if (proto === TCP) {
          if (state !== TCP_S_ESTABLISHED || timeout !== tcpEstablished) break fast;
        } else if (state !== UDP_S_NORMAL || timeout !== udpNormal) {
          break fast;
        }
        const dest = dests[hot32[(hw + H_DEST) | 0]! | 0];
        if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) break fast;
        const destId = dest.id;

        if (method === CONN_F_TUNNEL) { // inbound only (checked above)
          const rt = this.tunnel(batch, i, dv, id, dest) | 0;
          if (rt < 0) break fast;
          reasonsOut[i] = rt;
          counts[rt]!++;
          lastId = id;
          if (trace !== null) this.traceForwarded(trace, i, rt, destId, id);
          continue;
        }
        // What the NAT rewrite writes, read before the next hop: its fallback (a call) would make
        // the compiled code check the record array again.
        let oldA: number, newA: number, oldP: number, newP: number, aAt: number, pAt: number;
        let reason: number;
        if (inbound) {
          oldA = daddr; newA = s[(r + R_D) | 0]!; aAt = (l3 + 16) | 0;
          oldP = dport; newP = rm >>> 16; pAt = (l4 + 2) | 0;
          reason = method !== CONN_F_MASQ ? R_FWD_DR : R_FWD_NAT_IN;
        } else {
          oldA = saddr; newA = s[(r + R_V) | 0]!; aAt = (l3 + 12) | 0;
          oldP = sport; newP = s[(r + R_P) | 0]! & 0xffff; pAt = l4;
          reason = R_FWD_NAT_OUT;
        }
        // Next hop before any change, so a miss leaves the frame untouched for the general path.
        let mac0 = 0;
        let mac1 = 0;
        if (inbound) {
          // The dest's cached next hop (Xmit.destMacHead, from the local), written with the header
          // at the end. Not cached yet (the dest's first frame since Xmit.refresh): the general
          // path resolves it, and caches it for the frames after. No call here: after a branch
          // with a call, the compiled code checks every array and view again.
          // Dest ids are small (a registry index): int32 arithmetic.
          const hk = (destId << 1) | 0;
          const tail = hk < nhLen ? nhWords[(hk + 1) | 0]! : 0;
          if ((tail & 0xff) !== NEXT_HOP_OK) break fast;
          mac0 = nhWords[hk]!;
          mac1 = (tail & 0xffff0000) | macHi;
        } else {
          const a = this.addr;
          a[0] = daddr;
          if (!e.neigh.resolve(4, a, buf, o)) break fast;
        }

        const dc = dest.stats.cnt;
        const sc = dest.svc.stats.cnt;
        if (inbound) {
          dc[ST_INPKTS]!++; dc[ST_INBYTES]! += totLen;
          sc[ST_INPKTS]!++; sc[ST_INBYTES]! += totLen;
          bytesIn += totLen;
          const k = (hw + H_INPKTS) | 0;
          hot32[k] = (hot32[k]! + 1) >>> 0;
        } else {
          dc[ST_OUTPKTS]!++; dc[ST_OUTBYTES]! += totLen;
          sc[ST_OUTPKTS]!++; sc[ST_OUTBYTES]! += totLen;
          bytesOut += totLen;
        }
        verdicts[i] = V_FORWARD;
        reasonsOut[i] = reason;
        const ttlProto = ((w & 0xffff) - 0x0100) << 16;
        let ipc = dv.getUint16((l3 + 10) | 0) + 0x0100;
        if (ipc >= 0xffff) ipc += 1;
        ipc &= 0xffff;
        // NAT: one address and one port replaced; RFC 1624 (csumUpdate32 and csumUpdate16)
        // written out and folded once. A partial checksum (CHECKSUM_PARTIAL) holds the
        // pseudo-header sum, not complemented, without the port: only the address changes.
        // ipc, the TTL's update alone for DR, becomes the header checksum with the address's.
        let c = 0;
        if (reason !== R_FWD_DR) {
          const oa = ((~oldA >>> 16) & 0xffff) + (~oldA & 0xffff);
          const na = (newA >>> 16) + (newA & 0xffff);
          if (partial) {
            c = dv.getUint16(csumAt) + oa + na;
            c = (c & 0xffff) + (c >>> 16);
            c = (c & 0xffff) + (c >>> 16);
          } else {
            c = (~dv.getUint16(csumAt) & 0xffff) + oa + na + (~oldP & 0xffff) + newP;
            c = (c & 0xffff) + (c >>> 16);
            c = ~((c & 0xffff) + (c >>> 16)) & 0xffff;
            if (c === 0 && proto === UDP) c = 0xffff;
          }
          let h = (~ipc & 0xffff) + oa + na;
          h = (h & 0xffff) + (h >>> 16);
          ipc = ~((h & 0xffff) + (h >>> 16)) & 0xffff;
        }
        // The frame's stores last: a DataView store makes the compiled code forget every check
        // made before it (the maps, lengths and bounds of the arrays above, the view's own), so
        // anything read after one is checked again.
        if (inbound) {
          dv.setUint32(o, mac0);
          dv.setUint32((o + 4) | 0, mac1);
        } else {
          dv.setUint16((o + 6) | 0, macHi);
        }
        dv.setUint32((o + 8) | 0, macLo);
        if (reason === R_FWD_DR) {
          nDr++;
        } else {
          dv.setUint16(csumAt, c);
          dv.setUint16(pAt, newP);
          dv.setUint32(aAt, newA);
          if (inbound) nNatIn++;
          else nNatOut++;
        }
        dv.setUint32((l3 + 8) | 0, ttlProto | ipc);
        // ConnTable.touch: re-arm the expiry; moving it earlier (a clock step back) re-queues,
        // which touch does. After the stores: the call would make them check the view again.
        const when = now + timeout;
        const x = ((id << 2) + H_EXPIRES64) | 0;
        if (when < hot64[x]!) conns.touch(id, now);
        else hot64[x] = when;
        lastId = id;
        if (trace !== null) this.traceForwarded(trace, i, reason, destId, id);
        continue;
      }
      const reason = e.generalFrame(batch, i) | 0;
      reasonsOut[i] = reason;
      counts[reason]!++;
      lastId = -1;
      if (trace !== null) trace(i, verdicts[i]!, reason, e.outcome);
      // What the general path may have changed that the loop holds.
      noCport = conns.noCportCount;
      maxLen = e.sysctls.secure_tcp >= 2 ? 0 : e.mtu;
      tcpEstablished = tcpTimeouts[TCP_S_ESTABLISHED]!;
      udpNormal = udpTimeouts[UDP_S_NORMAL]!;
    }
    counts[R_FWD_NAT_IN]! += nNatIn;
    counts[R_FWD_NAT_OUT]! += nNatOut;
    counts[R_FWD_DR]! += nDr;
    tc[ST_INPKTS]! += nNatIn + nDr;
    tc[ST_INBYTES]! += bytesIn;
    tc[ST_OUTPKTS]! += nNatOut;
    tc[ST_OUTBYTES]! += bytesOut;
    this.hits += nNatIn + nNatOut + nDr;
    // The outcome a per-frame loop leaves after a forwarded last frame.
    if (lastId >= 0) this.setOutcome(hot32[((lastId << HOT_SHIFT) + H_DEST) | 0]! | 0, lastId);
  }

  /** The outcome of a frame forwarded here (Engine.outcome): its dest and service, not new. */
  private setOutcome(destId: number, id: number): void {
    const oc = this.e.outcome;
    oc.destId = destId;
    oc.isNew = false;
    oc.svcId = this.e.conns.svcIdOf(id);
  }

  /**
   * A forwarded frame's trace call, kept out of run's loop: the tracer and the outcome stay
   * off the registers the loop needs when no one traces.
   */
  private traceForwarded(trace: TraceHook, i: number, reason: number, destId: number, id: number): void {
    this.setOutcome(destId, id);
    trace(i, V_FORWARD, reason, this.e.outcome);
  }

  /**
   * Client packet of an IPIP tunnel connection (Xmit.tunnel + TunnelEncap.xmit for an IPv4 real
   * server): inner TTL decremented, then a 20-byte outer IPv4 header and a new Ethernet header
   * written in front of the inner one, in the slot's headroom — the frame starts 20 bytes lower.
   * Called with what run checked (the frame, the connection and its dest); re-reads the
   * few header fields it needs, so that run keeps fewer values live across this call.
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
    // TTL, protocol and checksum stored as one word, as in run.
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
    conns.touch(id, e.now);
    batch.verdict[i] = V_FORWARD;
    this.hits++;
    return R_FWD_TUN;
  }

}
