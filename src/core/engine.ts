/**
 * The packet path (kernel ip_vs_core.c): `process(batch)` takes a batch of frames,
 * decides for each one (forward / drop / pass / reply), rewrites forwarded frames in
 * place, and appends generated frames (ICMP errors) to a TxQueue.
 *
 * Per frame: parse → ARP or Neighbor Solicitation for a VIP? → ICMP error related to a
 * connection? → later fragment? → existing inbound connection → NAT reply of an existing
 * connection → new connection (service lookup, scheduling, persistence templates) → transmit.
 * Nothing here allocates per packet: state lives in typed arrays (conn/), the
 * reusable PacketInfo and SchedPacket, and numbers.
 */
import { FrameBatch, TxQueue, FRAME_CSUM_NOT_READY, FRAME_GSO, V_DROP, V_FORWARD, V_PASS, V_REPLY } from '../io/batch.js';
import { PacketInfo, PARSE_OK, PARSE_NOT_IP } from '../packet/info.js';
import { parseFrame } from '../packet/parse.js';
import { completePartialChecksum } from '../packet/checksum.js';
import type { SchedPacket } from '../sched/types.js';
import {
  DEST_F_AVAILABLE, FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP,
  SVC_F_ONEPACKET, SVC_F_PERSISTENT, ST_CONNS, ST_INBYTES, ST_INPKTS, ST_OUTBYTES, ST_OUTPKTS,
  type Dest, type Service, type Stats,
} from '../svc/types.js';
import type { IpvsTable } from '../svc/table.js';
import type { FwmarkClassifier } from '../svc/fwmark.js';
import type { Sysctls } from '../svc/sysctl.js';
import { ConnTable } from '../conn/table.js';
import {
  CONN_F_FWD_MASK, CONN_F_NOOUTPUT, CONN_F_ONE_PACKET, CONN_F_TEMPLATE, CONN_F_BYPASS,
  DIR_INPUT, DIR_INPUT_ONLY, DIR_OUTPUT, SCTP_S_CLOSED, TCP_S_CLOSE, TCP_S_FIN_WAIT, TCP_S_TIME_WAIT,
} from '../conn/flags.js';
import { connStateTransition } from '../conn/transition.js';
import { sctpStateChunk } from '../conn/sctp.js';
import type { NextHopResolver } from '../neigh/static.js';
import { FragCache } from './frag-cache.js';
import * as R from './reasons.js';
import { Xmit } from './xmit-glue.js';
import { FastPath } from './fastpath.js';
import { Ip4Set } from '../util/ip4-set.js';
import { Ip6Set } from '../util/ip6-set.js';
import { NdView, ND_NA, ND_NS, answerNs, readNd } from '../neigh/ndp.js';

const ETH_P_ARP = 0x0806;
const FTPPORT = 21;
const FTPDATA = 20;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const SCTP_INIT = 1;

export interface EngineConfig {
  table: IpvsTable;
  marks: FwmarkClassifier;
  conns: ConnTable;
  sysctls: Sysctls;
  neigh: NextHopResolver;
  /** The director's port MAC and addresses (source of ICMP errors and tunnel outer headers). */
  mac: Uint8Array;
  ip4: number;
  ip6?: Uint32Array;
  /** Egress MTU (IP bytes). */
  mtu?: number;
  /** Answer ARP for the director's own IPv4 address too (replay, where no kernel owns it). */
  arpForOwnIp?: boolean;
}

/** What happened to the last frame, for tracing (read by the trace hook, never allocated). */
export interface FrameOutcome {
  destId: number;
  isNew: boolean;
  svcId: number;
}

export type TraceHook = (index: number, verdict: number, reason: number, o: FrameOutcome) => void;
const noTrace: TraceHook = () => {};

export class Engine {
  readonly table: IpvsTable;
  readonly marks: FwmarkClassifier;
  readonly conns: ConnTable;
  readonly sysctls: Sysctls;
  readonly neigh: NextHopResolver;
  readonly mac: Uint8Array;
  readonly ip4: number;
  readonly ip6: Uint32Array;
  mtu: number;
  /** Count of frames per reason code (drops and outcomes). */
  readonly reasonCount = new Float64Array(R.REASON_COUNT);
  /** Current time in seconds on the engine's clock; set by the driver before each batch. */
  now = 0;
  trace: TraceHook = noTrace;
  readonly outcome: FrameOutcome = { destId: -1, isNew: false, svcId: -1 };

  private readonly info = new PacketInfo();
  /**
   * Its address words are the PacketInfo's own arrays (schedulers only read them), so a
   * new connection does not copy eight words (~80 instructions) before scheduling.
   */
  private readonly sp: SchedPacket = {
    af: 4, protocol: 0, saddr: this.info.saddr, daddr: this.info.daddr, sport: 0, dport: 0,
  };
  private readonly frags = new FragCache();
  private readonly xm: Xmit;
  /** Established-connection shortcut; `fast.enabled = false` forces the general path. */
  readonly fast: FastPath;
  private readonly tmpAddr = new Uint32Array(4);
  private readonly tmpAddr2 = new Uint32Array(4);
  private readonly tmpAddr3 = new Uint32Array(4);
  private readonly arpOwn: boolean;
  /** IPv4 VIP addresses of non-fwmark services (ARP answers; the fast path's direction guess). */
  vip4 = new Ip4Set();
  /** IPv6 VIP addresses: Neighbor Solicitations for them are answered like ARP for IPv4 ones. */
  private vip6 = new Ip6Set();
  private readonly nd = new NdView();
  private tableVersion = -1;
  private maxDestId = 0;
  private tx: TxQueue | null = null;
  private txCause = -1;
  private inIfindex = 0;

  constructor(cfg: EngineConfig) {
    this.table = cfg.table;
    this.marks = cfg.marks;
    this.conns = cfg.conns;
    this.sysctls = cfg.sysctls;
    this.neigh = cfg.neigh;
    this.mac = cfg.mac;
    this.ip4 = cfg.ip4 >>> 0;
    this.ip6 = cfg.ip6 ?? new Uint32Array(4);
    this.mtu = cfg.mtu ?? 1500;
    this.arpOwn = cfg.arpForOwnIp ?? false;
    this.xm = new Xmit(this);
    this.fast = new FastPath(this);
  }

  /** Rebuilds what the data plane caches from the control-plane table (between batches only). */
  refresh(): void {
    if (this.table.version !== this.tableVersion) {
      this.tableVersion = this.table.version;
      const v: number[] = [];
      const v6: number[][] = [];
      let maxDest = 0;
      for (const s of this.table.services()) {
        if (s.af === 4 && s.fwmark === 0) v.push(s.addr.w0 >>> 0);
        if (s.af === 6 && s.fwmark === 0) v6.push([s.addr.w0, s.addr.w1, s.addr.w2, s.addr.w3]);
        for (const d of s.dests) if (d.id > maxDest) maxDest = d.id;
      }
      for (const d of this.table.trashedDests()) if (d.id > maxDest) maxDest = d.id;
      this.vip4 = new Ip4Set(v);
      this.vip6 = new Ip6Set(v6);
      this.maxDestId = maxDest;
    }
    this.xm.refresh(this.tableVersion, this.neigh.version, this.maxDestId);
  }

  /** The TxQueue of the batch being processed (generated frames go there), or null between batches. */
  get currentTx(): TxQueue | null {
    return this.tx;
  }

  /** Index of the input frame being processed. */
  get currentCause(): number {
    return this.txCause;
  }

  /** Control-plane work between batches: connection expiry and table housekeeping. */
  tick(now: number): void {
    this.now = now;
    this.conns.runExpiry(now);
  }

  /** Processes every frame of `batch`, writing verdicts; generated frames go to `tx`. */
  process(batch: FrameBatch, tx: TxQueue): void {
    this.refresh();
    this.tx = tx;
    // The frame loop: prepare, then the fast path inline and generalFrame for the other
    // frames (fastpath.ts).
    this.fast.run(batch, this.trace === noTrace ? null : this.trace);
    // What a per-frame loop leaves: the last frame as the current one.
    const n = batch.count;
    if (n > 0) {
      this.txCause = n - 1;
      this.inIfindex = batch.ifindex[n - 1]!;
    }
    this.tx = null;
  }

  // ---------------------------------------------------------------- dispatch

  /**
   * The per-frame part of process's loop for a frame FastPath.run did not forward: outcome
   * reset, current frame, then the general path. Returns the frame's reason.
   */
  generalFrame(batch: FrameBatch, i: number): number {
    const o = this.outcome;
    o.destId = -1; o.isNew = false; o.svcId = -1;
    this.txCause = i;
    this.inIfindex = batch.ifindex[i]!;
    return this.frame(batch, i);
  }

  /** The general path for a frame the fast path did not take. */
  private frame(batch: FrameBatch, i: number): number {
    const buf = batch.buf;
    const info = this.info;
    const rc = parseFrame(buf, batch.off[i]!, batch.len[i]!, info);
    if (rc !== PARSE_OK) {
      if (rc === PARSE_NOT_IP) { batch.verdict[i] = V_PASS; return R.R_NOT_OURS; }
      batch.verdict[i] = V_DROP;
      return rc;
    }
    if (info.ethType === ETH_P_ARP) return this.arp(batch, i);
    if (info.af === 0) { batch.verdict[i] = V_PASS; return R.R_NOT_OURS; }
    if ((batch.flags[i]! & FRAME_GSO) !== 0) this.gsoSegLen(batch, i);

    const p = info.proto;
    if ((p === PROTO_ICMP && info.af === 4 && (info.icmpType === 3 || info.icmpType === 4 || info.icmpType === 11)) ||
        (p === PROTO_ICMPV6 && info.af === 6 && info.icmpType >= 0 && info.icmpType < 128)) {
      return this.icmpError(batch, i);
    }
    if (p === PROTO_ICMPV6 && info.af === 6 && (info.icmpType === ND_NS || info.icmpType === ND_NA)) return this.ndp(batch, i);
    if (p !== PROTO_TCP && p !== PROTO_UDP && p !== PROTO_SCTP) { batch.verdict[i] = V_PASS; return R.R_NOT_OURS; }
    if (info.isLaterFrag) return this.laterFragment(batch, i);

    const conns = this.conns;
    let id = conns.lookupIn(info.af, p, info.saddr, info.sport, info.daddr, info.dport);
    if (id >= 0) {
      const r = this.reuseOrKeep(id);
      if (r === 0) return this.inbound(batch, i, id);
      if (r < 0) { batch.verdict[i] = V_DROP; return R.R_DEST_UNAVAILABLE; }
      // r > 0: the old connection was expired; schedule this packet anew.
    } else {
      id = conns.lookupOut(info.af, p, info.saddr, info.sport, info.daddr, info.dport);
      // ip_vs_out only handles replies of NAT connections; other hits are ignored (accepted).
      if (id >= 0) {
        if ((conns.flags[id]! & CONN_F_FWD_MASK) === FWD_MASQ) return this.outbound(batch, i, id);
        batch.verdict[i] = V_PASS;
        return R.R_NOT_OURS;
      }
    }
    return this.newConnection(batch, i);
  }

  // ---------------------------------------------------------------- ARP

  private arp(batch: FrameBatch, i: number): number {
    const info = this.info;
    const tpa = info.arpTpa;
    if (info.arpOp !== 1 || !(this.vip4.has(tpa) || (this.arpOwn && tpa === this.ip4))) {
      batch.verdict[i] = V_PASS;
      return R.R_ARP_OTHER;
    }
    this.xm.arpReply(batch.buf, batch.off[i]!, info);
    batch.verdict[i] = V_REPLY;
    return R.R_ARP_REPLY;
  }

  // ---------------------------------------------------------------- NDP

  /**
   * IPv6's ARP: a Neighbor Solicitation for a VIP (or, in replay, the director's own
   * IPv6 address) becomes our advertisement in place; any other NDP is the kernel's.
   */
  private ndp(batch: FrameBatch, i: number): number {
    const off = batch.off[i]!;
    const v = this.nd;
    const buf = batch.buf;
    if (this.info.icmpType !== ND_NS || !readNd(buf, off, batch.len[i]!, v) ||
        !(this.vip6.hasAt(buf, v.targetOff) || (this.arpOwn && this.isOwnIp6At(buf, v.targetOff)))) {
      batch.verdict[i] = V_PASS;
      return R.R_ND_OTHER;
    }
    batch.len[i] = answerNs(buf, off, v, this.mac);
    batch.flags[i] = batch.flags[i]! & ~FRAME_CSUM_NOT_READY; // the whole checksum was just written
    batch.verdict[i] = V_REPLY;
    return R.R_ND_REPLY;
  }

  private isOwnIp6At(buf: Uint8Array, off: number): boolean {
    const a = this.ip6;
    if ((a[0]! | a[1]! | a[2]! | a[3]!) === 0) return false;
    for (let w = 0; w < 4; w++) {
      const o = off + 4 * w;
      if ((((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0) !== a[w]) return false;
    }
    return true;
  }

  // ---------------------------------------------------------------- existing connections

  /**
   * Decides whether an existing connection keeps this packet (0), whether the packet
   * must be dropped because the connection's real server is gone (-1), or whether the
   * packet is scheduled anew (1), in ip_vs_in_hook's order: first a connection-opening
   * packet (SYN / INIT) may reschedule — always when expire_nodest_conn is on and the
   * server is quiesced (weight 0), and per conn_reuse_mode when the old connection is
   * closing — and only then is a deleted server's connection dropped (expire_nodest_conn
   * = 0) or expired and rescheduled (= 1).
   */
  private reuseOrKeep(id: number): number {
    const conns = this.conns;
    const sysctls = this.sysctls;
    const dest = this.table.destById(conns.destId[id]!);
    if (this.isNewConnPacket()) {
      let resched = false;
      if (sysctls.expire_nodest_conn !== 0 && dest !== undefined && dest.weight === 0) resched = true;
      else if (sysctls.conn_reuse_mode !== 0 && this.newConnExpected(id, sysctls.conn_reuse_mode)) resched = true;
      if (resched) {
        // A connection that still controls others is left to expire on its own (ip_vs_in_hook).
        if (conns.nControlled[id]! === 0) conns.expire(id, this.now);
        return 1;
      }
    }
    if (dest !== undefined && (dest.flags & DEST_F_AVAILABLE) === 0) {
      if (sysctls.expire_nodest_conn === 0) return -1;
      conns.expire(id, this.now);
      return 1;
    }
    return 0;
  }

  /**
   * The chunk that drives the SCTP state machine (set_sctp_state): the first chunk, except a
   * COOKIE ECHO / COOKIE ACK followed by an ABORT counts as the ABORT. Other protocols: unused.
   */
  private stateChunk(batch: FrameBatch): number {
    const info = this.info;
    if (info.proto !== PROTO_SCTP || info.l4Off < 0) return info.sctpChunk;
    return sctpStateChunk(batch.buf, info.l4Off + 12, info.l3Off + info.ipLen);
  }

  private isNewConnPacket(): boolean {
    const info = this.info;
    if (info.proto === PROTO_TCP) return (info.tcpFlags & TCP_SYN) !== 0;
    if (info.proto === PROTO_SCTP) return info.sctpChunk === SCTP_INIT;
    return false;
  }

  /** is_new_conn_expected: never for a controlled connection (persistence, FTP data). */
  private newConnExpected(id: number, mode: number): boolean {
    const conns = this.conns;
    if (conns.control[id]! >= 0) return false;
    const st = conns.stateOf(id);
    const proto = conns.proto[id]!;
    if (proto === PROTO_TCP) {
      if (st === TCP_S_TIME_WAIT || st === TCP_S_CLOSE) return true;
      return (mode & 2) !== 0 && st === TCP_S_FIN_WAIT && (conns.flags[id]! & CONN_F_NOOUTPUT) !== 0;
    }
    if (proto === PROTO_SCTP) return st === SCTP_S_CLOSED;
    return false;
  }

  /** Client → virtual service packet of connection `id` (ip_vs_in's tail). */
  private inbound(batch: FrameBatch, i: number, id: number): number {
    const conns = this.conns;
    const info = this.info;
    const dest = this.table.destById(conns.destId[id]!);
    const o = this.outcome;
    o.destId = conns.destId[id]!;
    o.svcId = conns.svcId[id]!;
    if (dest !== undefined) this.countIn(dest, info.ipLen);
    const flags = conns.flags[id]!;
    // stateChunk only matters for SCTP: not calling it otherwise saves a call per packet.
    const chunk = info.proto === PROTO_SCTP ? this.stateChunk(batch) : info.sctpChunk;
    connStateTransition(conns, id, (flags & CONN_F_NOOUTPUT) !== 0 ? DIR_INPUT_ONLY : DIR_INPUT, info.tcpFlags, chunk,
      this.sysctls.secure_tcp >= 2, this.now);
    conns.countInPkt(id);
    if (info.moreFrags) this.frags.remember(this.fold(info.saddr), this.fold(info.daddr), this.fragId(batch, i), info.proto, id, this.now);
    const r = this.transmitIn(batch, i, id, dest);
    if ((flags & CONN_F_ONE_PACKET) !== 0) conns.free(id);
    return r;
  }

  /** Real server → client reply of a NAT connection (ip_vs_out). */
  private outbound(batch: FrameBatch, i: number, id: number): number {
    const conns = this.conns;
    const info = this.info;
    const dest = this.table.destById(conns.destId[id]!);
    const o = this.outcome;
    o.destId = conns.destId[id]!;
    o.svcId = conns.svcId[id]!;
    if (dest !== undefined) this.countOut(dest, info.ipLen);
    connStateTransition(conns, id, DIR_OUTPUT, info.tcpFlags, this.stateChunk(batch), this.sysctls.secure_tcp >= 2, this.now);
    let partial = false;
    if (batch.flags[i]! & FRAME_CSUM_NOT_READY) {
      partial = this.keepsPartial(batch, i);
      if (!partial && !this.completePartial(batch, i)) { batch.verdict[i] = V_DROP; return R.R_CANNOT_REWRITE; }
    }
    if (info.moreFrags) this.frags.remember(this.fold(info.saddr), this.fold(info.daddr), this.fragId(batch, i), info.proto, id, this.now);
    return this.xm.natOut(batch, i, id, info, partial);
  }

  private laterFragment(batch: FrameBatch, i: number): number {
    const info = this.info;
    const id = this.frags.find(this.fold(info.saddr), this.fold(info.daddr), this.fragId(batch, i), info.proto, this.now);
    if (id < 0 || !this.conns.isLive(id)) { batch.verdict[i] = V_DROP; return R.R_FRAGMENT_NO_CONN; }
    const conns = this.conns;
    const dest = this.table.destById(conns.destId[id]!);
    const o = this.outcome;
    o.destId = conns.destId[id]!;
    o.svcId = conns.svcId[id]!;
    // Which direction? A fragment from the client side travels to the VIP.
    conns.getAddr(id, 0, this.tmpAddr);
    const fromClient = this.sameAddr(info.saddr, this.tmpAddr, info.af);
    if (fromClient) {
      if (dest !== undefined) this.countIn(dest, info.ipLen);
      return this.transmitIn(batch, i, id, dest);
    }
    if (dest !== undefined) this.countOut(dest, info.ipLen);
    return this.xm.natOut(batch, i, id, info);
  }

  private transmitIn(batch: FrameBatch, i: number, id: number, dest: Dest | undefined): number {
    const info = this.info;
    const method = this.conns.flags[id]! & CONN_F_FWD_MASK;
    let partial = false;
    if (batch.flags[i]! & FRAME_CSUM_NOT_READY) {
      if (method === FWD_TUNNEL) {
        // The tunnel transmitter decides (xmit/tunnel.ts): a partial TCP/UDP checksum stays
        // partial when the backend finishes it and no outer checksum covers it, or is described
        // in GUE's remote checksum option, else it is completed there; a GSO frame's segments
        // are handled segment by segment (xmit/gso.ts). Anything else is completed here.
        partial = this.partialAtL4(batch, i);
        if (!partial && (batch.flags[i]! & FRAME_GSO) === 0) this.completePartial(batch, i);
      } else {
        partial = this.keepsPartial(batch, i);
        if (!partial && !this.completePartial(batch, i)) { batch.verdict[i] = V_DROP; return R.R_CANNOT_REWRITE; }
      }
    }
    if (method === FWD_MASQ) return this.xm.natIn(batch, i, id, dest, info, partial);
    if (method === FWD_TUNNEL && dest !== undefined) return this.xm.tunnel(batch, i, id, dest, info, partial);
    if (method === CONN_F_BYPASS) return this.xm.bypass(batch, i, info);
    // FWD_DROUTE (and LOCALNODE, which current kernels never set): MAC rewrite only.
    void FWD_DROUTE;
    return this.xm.directRoute(batch, i, id, dest, info);
  }

  // ---------------------------------------------------------------- checksum and segmentation offload

  /**
   * Whether frame i's partial checksum (FRAME_CSUM_NOT_READY) can stay partial: the batch leaves
   * through a backend that passes the offload on (virtio_net_hdr), and the field is the TCP or
   * UDP checksum at the parsed transport header, the one the NAT rewrite updates as a partial
   * sum. The kernel, or the receiver, finishes it: cheaper than summing the payload here, and the
   * only way for a GSO super-frame, whose segments' checksums do not exist yet. Anything else
   * (SCTP's CRC32c, an encapsulated checksum, no offload after us) is completed here.
   */
  private keepsPartial(batch: FrameBatch, i: number): boolean {
    return batch.txOffload && this.partialAtL4(batch, i);
  }

  /** Frame i's partial checksum is the TCP or UDP checksum of the parsed transport header. */
  private partialAtL4(batch: FrameBatch, i: number): boolean {
    const info = this.info;
    if (info.l4Off < 0 || info.isLaterFrag) return false;
    const co = info.proto === PROTO_TCP ? 16 : info.proto === PROTO_UDP ? 6 : -1;
    return co >= 0 && batch.csumOffset[i] === co && batch.csumStart[i] === info.l4Off - batch.off[i]!;
  }

  /**
   * Completes frame i's partial checksum in place and says so in its flags (so neither the
   * neighbour queue nor the backend treats it as partial again). A GSO super-frame cannot be
   * completed whole: false, and the caller drops it.
   */
  private completePartial(batch: FrameBatch, i: number): boolean {
    if ((batch.flags[i]! & FRAME_GSO) !== 0) return false;
    completePartialChecksum(batch.buf, this.info);
    batch.flags[i] = batch.flags[i]! & ~FRAME_CSUM_NOT_READY;
    return true;
  }

  /** For a GSO super-frame: the IP length of each of its segments, for the MTU checks (info.gsoSegLen). */
  private gsoSegLen(batch: FrameBatch, i: number): void {
    const info = this.info;
    const l4 = info.l4Off;
    if (l4 < 0 || info.isLaterFrag) return;
    const thl = info.proto === PROTO_TCP && info.l4Len >= 20 ? (batch.buf[l4 + 12]! >>> 4) << 2 : 8;
    const seg = l4 - info.l3Off + thl + batch.gsoSize[i]!;
    info.gsoSegLen = seg < info.ipLen ? seg : info.ipLen;
  }

  // ---------------------------------------------------------------- new connections

  private newConnection(batch: FrameBatch, i: number): number {
    const info = this.info;
    const p = info.proto;
    const mark = this.marks.classify(info.af, p, info.daddr, info.dport);
    const svc = this.table.findService(info.af, p, info.daddr, info.dport, mark);
    if (svc === null) { batch.verdict[i] = V_PASS; return R.R_NOT_OURS; }
    this.outcome.svcId = svc.id;
    const sysctls = this.sysctls;
    // Only connection-opening packets schedule (tcp_conn_schedule / sctp_conn_schedule);
    // anything else is accepted to the local stack, as the kernel does.
    if (p === PROTO_TCP) {
      const f = info.tcpFlags;
      if ((f & TCP_RST) !== 0 || (sysctls.sloppy_tcp === 0 && (f & TCP_SYN) === 0)) { batch.verdict[i] = V_PASS; return R.R_TCP_NOT_SYN; }
    } else if (p === PROTO_SCTP) {
      if (sysctls.sloppy_sctp === 0 && info.sctpChunk !== SCTP_INIT) { batch.verdict[i] = V_PASS; return R.R_SCTP_NOT_INIT; }
    }
    if (info.sport === FTPDATA) { batch.verdict[i] = V_PASS; return R.R_FTPDATA; }

    const id = (svc.flags & SVC_F_PERSISTENT) !== 0 ? this.schedulePersistent(svc) : this.scheduleSimple(svc);
    if (id === -2) return this.leave(batch, i, svc);
    if (id < 0) { batch.verdict[i] = V_DROP; return R.R_CONN_TABLE_FULL; }
    this.outcome.isNew = true;
    return this.inbound(batch, i, id);
  }

  private fillSchedPacket(): SchedPacket {
    const info = this.info;
    const sp = this.sp;
    sp.af = info.af as 4 | 6;
    sp.protocol = info.proto;
    // sp.saddr and sp.daddr are info.saddr and info.daddr (see the field).
    sp.sport = info.sport;
    sp.dport = info.dport;
    return sp;
  }

  private pick(svc: Service): Dest | null {
    const s = svc.scheduler;
    if (s === null) return null;
    return s.schedule(svc, this.fillSchedPacket(), this.table.schedEnv);
  }

  /** ip_vs_schedule for non-persistent services. Returns a conn id, -1 table full, -2 no dest (leave). */
  private scheduleSimple(svc: Service): number {
    const info = this.info;
    if (svc.fwmark === 0 && info.dport !== svc.port) return -2; // includes "port zero only supported in persistent services"
    const dest = this.pick(svc);
    if (dest === null) return -2;
    const flags = (svc.flags & SVC_F_ONEPACKET) !== 0 && info.proto === PROTO_UDP ? CONN_F_ONE_PACKET : 0;
    this.destAddrWords(dest, this.tmpAddr);
    const id = this.conns.create(info.af, info.proto, info.saddr, info.sport, info.daddr, info.dport,
      this.tmpAddr, dest.port !== 0 ? dest.port : info.dport, flags, svc.fwmark, svc.id, dest.id, this.now);
    if (id < 0) return -1;
    this.countConn(dest);
    return id;
  }

  /** ip_vs_sched_persist: find or create the template, then the connection under it. */
  private schedulePersistent(svc: Service): number {
    const info = this.info;
    const conns = this.conns;
    const snet = this.tmpAddr2;
    this.maskClient(svc, info.saddr, snet);
    let protocol = info.proto;
    let vport = 0;
    const vaddr = this.tmpAddr;
    vaddr.set(info.daddr);
    if (info.dport === svc.port) {
      if (svc.port !== FTPPORT) vport = info.dport;
    } else if (svc.fwmark !== 0) {
      // fwmark template: <IPPROTO_IP, caddr, 0, fwmark, 0, daddr, 0>
      protocol = 0;
      vaddr[0] = svc.fwmark; vaddr[1] = 0; vaddr[2] = 0; vaddr[3] = 0;
    }
    let ct = conns.lookupTemplate(info.af, protocol, snet, 0, vaddr, vport);
    let dest: Dest | undefined;
    if (ct >= 0) {
      dest = this.table.destById(conns.destId[ct]!);
      if (!this.templateUsable(dest)) {
        conns.invalidateTemplate(ct);
        ct = -1;
      }
    }
    if (ct < 0) {
      const d = this.pick(svc);
      if (d === null) return -2;
      dest = d;
      const tdport = info.dport === svc.port && svc.port !== FTPPORT ? d.port : 0;
      const tdaddr = this.tmpAddr3;
      this.destAddrWords(d, tdaddr);
      ct = conns.create(info.af, protocol, snet, 0, vaddr, vport, tdaddr, tdport, CONN_F_TEMPLATE,
        svc.fwmark, svc.id, d.id, this.now);
      if (ct < 0) return -1;
      conns.setTimeout(ct, svc.timeout, this.now);
    } else {
      conns.touch(ct, this.now);
    }
    const dd = dest!;
    let dport = info.dport;
    if (dport === svc.port && dd.port !== 0) dport = dd.port;
    const flags = (svc.flags & SVC_F_ONEPACKET) !== 0 && info.proto === PROTO_UDP ? CONN_F_ONE_PACKET : 0;
    this.destAddrWords(dd, this.tmpAddr);
    const id = conns.create(info.af, info.proto, info.saddr, info.sport, info.daddr, info.dport, this.tmpAddr, dport,
      flags, svc.fwmark, svc.id, dd.id, this.now);
    if (id < 0) return -1;
    conns.setControl(id, ct);
    this.countConn(dd);
    return id;
  }

  /** ip_vs_check_template. */
  private templateUsable(dest: Dest | undefined): boolean {
    if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) return false;
    if (this.sysctls.expire_quiescent_template !== 0 && dest.weight === 0) return false;
    return true;
  }

  /** ip_vs_leave: no destination. Port-unreachable to the client unless FTP's pass-through rule applies. */
  private leave(batch: FrameBatch, i: number, svc: Service): number {
    const info = this.info;
    if (svc.port === FTPPORT && info.dport !== FTPPORT) { batch.verdict[i] = V_PASS; return R.R_NOT_OURS; }
    this.xm.icmpUnreachablePort(batch, i, info, this.tx!, this.txCause);
    batch.verdict[i] = V_DROP;
    return R.R_NO_DEST;
  }

  // ---------------------------------------------------------------- ICMP errors related to connections

  private icmpError(batch: FrameBatch, i: number): number {
    const info = this.info;
    const ip = info.innerProto;
    if (info.innerL3Off < 0 || info.innerSport < 0 || (ip !== PROTO_TCP && ip !== PROTO_UDP && ip !== PROTO_SCTP)) {
      batch.verdict[i] = V_PASS;
      return R.R_ICMP_UNRELATED;
    }
    const conns = this.conns;
    // From the client side, about a packet the director sent to the client: the embedded
    // packet runs VIP → client, so look it up as an inbound connection with swapped ends.
    let id = conns.lookupIn(info.af, ip, info.innerDaddr, info.innerDport, info.innerSaddr, info.innerSport);
    if (id >= 0) {
      const dest = this.table.destById(conns.destId[id]!);
      this.outcome.destId = conns.destId[id]!;
      this.outcome.svcId = conns.svcId[id]!;
      if (dest !== undefined) this.countIn(dest, info.ipLen);
      const method = conns.flags[id]! & CONN_F_FWD_MASK;
      if (method === FWD_MASQ) return this.xm.icmpIn(batch, i, id, dest, info);
      if (method === FWD_TUNNEL && dest !== undefined) return this.xm.tunnel(batch, i, id, dest, info);
      return this.xm.directRoute(batch, i, id, dest, info);
    }
    // From a NAT real server, about a packet from the client: embedded client → RS.
    id = conns.lookupOut(info.af, ip, info.innerDaddr, info.innerDport, info.innerSaddr, info.innerSport);
    if (id >= 0 && (conns.flags[id]! & CONN_F_FWD_MASK) === FWD_MASQ) {
      const dest = this.table.destById(conns.destId[id]!);
      this.outcome.destId = conns.destId[id]!;
      this.outcome.svcId = conns.svcId[id]!;
      if (dest !== undefined) this.countOut(dest, info.ipLen);
      return this.xm.icmpOut(batch, i, id, info);
    }
    batch.verdict[i] = V_PASS;
    return R.R_ICMP_UNRELATED;
  }

  // ---------------------------------------------------------------- counters (ip_vs_in_stats / ip_vs_out_stats / ip_vs_conn_stats)

  countIn(dest: Dest, bytes: number): void {
    if ((dest.flags & DEST_F_AVAILABLE) === 0) return;
    add(dest.stats, ST_INPKTS, ST_INBYTES, bytes);
    add(dest.svc.stats, ST_INPKTS, ST_INBYTES, bytes);
    add(this.table.totalStats, ST_INPKTS, ST_INBYTES, bytes);
  }

  countOut(dest: Dest, bytes: number): void {
    if ((dest.flags & DEST_F_AVAILABLE) === 0) return;
    add(dest.stats, ST_OUTPKTS, ST_OUTBYTES, bytes);
    add(dest.svc.stats, ST_OUTPKTS, ST_OUTBYTES, bytes);
    add(this.table.totalStats, ST_OUTPKTS, ST_OUTBYTES, bytes);
  }

  private countConn(dest: Dest): void {
    dest.stats.cnt[ST_CONNS]!++;
    dest.svc.stats.cnt[ST_CONNS]!++;
    this.table.totalStats.cnt[ST_CONNS]!++;
  }

  // ---------------------------------------------------------------- small helpers

  private maskClient(svc: Service, saddr: Uint32Array, out: Uint32Array): void {
    if (svc.af === 4) {
      out[0] = (saddr[0]! & svc.netmask) >>> 0; out[1] = 0; out[2] = 0; out[3] = 0;
      return;
    }
    let bits = svc.netmask;
    for (let w = 0; w < 4; w++) {
      const take = bits >= 32 ? 32 : bits <= 0 ? 0 : bits;
      const mask = take === 0 ? 0 : take === 32 ? 0xffffffff : (0xffffffff << (32 - take)) >>> 0;
      out[w] = (saddr[w]! & mask) >>> 0;
      bits -= 32;
    }
  }

  destAddrWords(d: Dest, out: Uint32Array): void {
    out[0] = d.addr.w0; out[1] = d.addr.w1; out[2] = d.addr.w2; out[3] = d.addr.w3;
  }

  private fold(a: Uint32Array): number {
    return (a[0]! ^ a[1]! ^ a[2]! ^ a[3]!) >>> 0;
  }

  private fragId(batch: FrameBatch, _i: number): number {
    const info = this.info;
    const b = batch.buf;
    if (info.af === 4) { const o = info.l3Off + 4; return (b[o]! << 8) | b[o + 1]!; }
    const o = info.fragHdrOff + 4;
    return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  }

  private sameAddr(a: Uint32Array, b: Uint32Array, af: number): boolean {
    if (af === 4) return a[0] === b[0];
    return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3];
  }

  /** The transmitter binding (per-destination next-hop cache), shared with the fast path. */
  get xmitGlue(): Xmit {
    return this.xm;
  }

  get ifindex(): number {
    return this.inIfindex;
  }
}

function add(s: Stats, pk: number, by: number, bytes: number): void {
  const c = s.cnt;
  c[pk]!++;
  c[by]! += bytes;
}

export { V_DROP, V_FORWARD, V_PASS, V_REPLY, FWD_DROUTE, FWD_TUNNEL, FWD_MASQ };
