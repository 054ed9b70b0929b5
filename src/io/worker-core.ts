/**
 * The data plane's core, normally run in a worker thread (worker-main.ts), or on
 * the main thread for backends whose native addon is not worker-safe (pcap via
 * `cap`), talking the same protocol over a MessageChannel. It owns the director's
 * hot state — the IPVS table, the connection table, the engine, the neighbour
 * cache — and the packet I/O backend, and runs one event loop:
 *   - the backend's fds are watched through libuv (`io.watch`); when readable, the
 *     worker drains up to MAX_BATCHES batches: receive → engine.process → neighbour
 *     bookkeeping → send (forwarded frames, replies, generated frames, ARP requests);
 *     with busy polling (WorkerInit.busyPollUs) it then keeps reading without blocking
 *     while frames keep coming, for at most BUSY_POLL_SLICE_MS per turn;
 *   - control operations from the main thread arrive as messages and run in their
 *     own event-loop turn, i.e. strictly between batches: a batch never sees a
 *     half-applied change, and the batch after the reply sees all of it;
 *   - the main thread's clock sends `tick` (connection expiry, estimator, neighbour
 *     ageing), also between batches.
 * Counters go back through a SharedArrayBuffer (worker-protocol.ts) that the worker
 * rewrites after every drain and tick, so reading them never waits for the worker.
 */
import type { MessagePort } from 'node:worker_threads';
import { closeSync, openSync } from 'node:fs';
import { CLONE_NEWNET, check, libc } from './afpacket-libc.js';
import { Director } from '../core/director.js';
import { CtlError } from '../ctl/types.js';
import { AfPacketIo } from './afpacket.js';
import { AfPacketRingIo } from './afpacket-ring.js';
import { interfaceInfo, type InterfaceInfo } from './afpacket-netdev.js';
import {
  FrameBatch, TxQueue, FRAME_CSUM_NOT_READY, FRAME_GSO, FRAME_SEGMENTED, SLOT_SIZE, HEADROOM, V_FORWARD, V_REPLY, type PacketIo,
} from './batch.js';
import { R_ARP_OTHER, R_ARP_REPLY, R_FWD_TUN, R_ND_OTHER, R_ND_REPLY, R_NO_NEIGHBOUR, REASON_COUNT } from '../core/reasons.js';
import { csumUpdate32 } from '../packet/checksum.js';
import { NeighbourCache, type NeighIface } from '../neigh/cache.js';
import { RouteTable4, readRoutes4 } from '../neigh/routes.js';
import { writeGratuitousArp } from '../neigh/arp.js';
import { NdView, setNaSourceMac } from '../neigh/ndp.js';
import { RouteTable6, readRoutes6 } from '../neigh/routes6.js';
import { directorIp6, readIfAddrs6 } from '../neigh/addrs6.js';
import { Vip6Announcer } from '../neigh/announce6.js';
import { formatIp4 } from '../util/ip.js';
import { HideTracker } from './hide-state.js';
import { DEST_F_AVAILABLE, ST_INBYTES, ST_INPKTS, ST_OUTBYTES, ST_OUTPKTS, type Stats } from '../svc/types.js';
import { PacketInfo, PARSE_OK } from '../packet/info.js';
import { parseFrame } from '../packet/parse.js';
import type { FrameOutcome } from '../core/engine.js';
import {
  C_ARP_REQUESTS, C_BATCHES, C_GARP_SENT, C_KERNEL_DROPS, C_NEIGH_DROPPED, C_NEIGH_ENTRIES, C_NEIGH_QUEUED,
  C_NEIGH_RELEASED, C_NO_ROUTE, C_RX_FRAMES, C_SUPER_FRAMES, C_TX_ERRORS, C_TX_FRAMES, C_UPDATED,
  type FromWorker, type HideChange, type IfaceFacts, type ToWorker, type WireError, type WorkerInit,
} from './worker-protocol.js';

/** Batches drained per wake-up before control messages get their turn. */
const MAX_BATCHES = 16;
/** Busy polling returns to the event loop (control messages, ticks) after at most this much continuous spinning. */
const BUSY_POLL_SLICE_MS = 1;
/** Frames that may wait for a next hop at once. */
const PENDING_FRAMES = 128;
/** Re-read the kernel's routes every this many ticks. */
const ROUTE_REFRESH_TICKS = 5;
/** The IpvsApi operations the main thread may call; the mutating ones may change what the kernel must not see. */
const READ_OPS = new Set(['getInfo', 'getServices', 'getService', 'getConnections', 'getTimeouts', 'getDaemons', 'getMarkRules']);
const WRITE_OPS = new Set([
  'addService', 'editService', 'delService', 'flush', 'addDest', 'editDest', 'delDest', 'zero', 'setTimeouts',
  'startDaemon', 'stopDaemon', 'addMarkRule', 'delMarkRule',
]);

type Backend = PacketIo & { watch(cb: () => void): () => void };

export class DataPlaneWorker {
  readonly director: Director;
  readonly neigh: NeighbourCache;
  private readonly init: WorkerInit;
  private readonly ifaces: InterfaceInfo[];
  private readonly counters: Float64Array;
  private io: Backend | null = null;
  private stopWatch: (() => void) | null = null;
  /** Replaced by the backend's own batch when it has one (the ring backend's zero-copy batch). */
  private batch: FrameBatch;
  private readonly txq: TxQueue;
  /** Frames waiting for their next hop, with deadlines (director clock). */
  private readonly pend = new FrameBatch(PENDING_FRAMES);
  private readonly pendDeadline = new Float64Array(PENDING_FRAMES);
  /** Per waiting frame: the traffic counters it already added (direction 1 in / 2 out / 0 none, IP bytes). */
  private readonly pendDir = new Uint8Array(PENDING_FRAMES);
  private readonly pendBytes = new Float64Array(PENDING_FRAMES);
  /** Destination each frame of a retry batch was counted against (from the engine's trace hook). */
  private readonly retryDest = new Int32Array(PENDING_FRAMES);
  private readonly retryTrace = (i: number, _v: number, _r: number, o: FrameOutcome): void => {
    this.retryDest[i] = o.destId;
  };
  private readonly info = new PacketInfo();
  private pendVersion = -1;
  private readonly neighWait: number;
  /** Largest frame accepted (bytes incl. Ethernet header and two VLAN tags); larger ones are super-frames. */
  private readonly maxFrame: number;
  /** Served interface MAC and IPv4 per ifindex (only consulted when serving several interfaces). */
  private readonly macByIfx: Uint8Array[] = [];
  private readonly ip4ByIfx: number[] = [];
  private readonly multi: boolean;
  private readonly nd = new NdView();
  /** What the kernel must not handle, kept per operation (see op()). */
  private readonly hide: HideTracker;
  private ticks = 0;
  private readonly c = new Float64Array(8); // local accumulators: super-frames, queued, released, dropped, garp

  constructor(init: WorkerInit, private readonly post: (m: FromWorker) => void) {
    this.init = init;
    this.counters = new Float64Array(init.counters);
    this.ifaces = init.interfaces.map((n) => interfaceInfo(n));
    const addrs6 = readIfAddrs6();
    const nifs: NeighIface[] = this.ifaces.map((i) => ({
      index: i.index, name: i.name, mac: i.mac, ip4: i.ipv4 ?? 0, prefix: i.ipv4Prefix, ip6: addrs6.filter((a) => a.ifindex === i.index),
    }));
    const routes = init.routes !== null ? new RouteTable4(init.routes) : new RouteTable4(readRoutes4());
    // Fixed (test) routes are IPv4 only: IPv6 next hops are then on-link on the interfaces' prefixes.
    const routes6 = init.routes !== null || init.backend === 'none' ? undefined : new RouteTable6(readRoutes6());
    this.neigh = new NeighbourCache({ ifaces: nifs, routes: init.backend === 'none' ? undefined : routes, routes6 });
    // The engine has one MAC and one IPv4 (source of ICMP errors and tunnel outer headers):
    // the first served interface that has an address. Frames leaving other interfaces get
    // that interface's MAC in postProcess.
    const primary = this.ifaces.find((i) => i.ipv4 !== null) ?? this.ifaces[0];
    const mtu = this.ifaces.length > 0 ? Math.min(...this.ifaces.map((i) => i.mtu)) : 1500;
    this.maxFrame = (this.ifaces.length > 0 ? Math.max(...this.ifaces.map((i) => i.mtu)) : 1500) + 14 + 8;
    this.director = new Director({
      mac: primary?.mac ?? new Uint8Array(6),
      ip4: primary?.ipv4 ?? 0,
      ip6: directorIp6(addrs6, this.ifaces.map((i) => i.index), primary?.index),
      neigh: this.neigh,
      capacity: init.capacity,
      seed: init.seed,
      mtu,
    });
    this.hide = new HideTracker(this.director.table, this.director.marks);
    for (const i of this.ifaces) {
      this.macByIfx[i.index] = i.mac;
      this.ip4ByIfx[i.index] = i.ipv4 ?? 0;
    }
    this.multi = this.ifaces.length > 1;
    this.batch = new FrameBatch(init.batchSize);
    this.txq = new TxQueue(Math.max(64, init.batchSize));
    this.neighWait = init.neighWait ?? 3;
    this.director.setClock(this.clock());
  }

  facts(): IfaceFacts[] {
    return this.ifaces.map((i) => ({
      name: i.name, index: i.index, mac: i.macText, ip4: i.ipv4 === null ? '' : `${formatIp4(i.ipv4)}/${i.ipv4Prefix}`, mtu: i.mtu,
    }));
  }

  clock(): number {
    return (performance.timeOrigin + performance.now() - this.init.clockOriginMs) / 1000;
  }

  // ---------------------------------------------------------------- I/O

  async startIo(): Promise<void> {
    if (this.io !== null || this.init.backend === 'none' || this.ifaces.length === 0) return;
    const names = this.ifaces.map((i) => i.name);
    if (this.init.backend === 'pcap') {
      const { PcapCapIo } = await import('./pcap-cap.js');
      this.io = await PcapCapIo.open(names);
    } else if (this.init.backend === 'afpacket-ring') {
      this.io = AfPacketRingIo.open(names, { batchSize: this.init.batchSize, fanoutGroup: this.init.fanoutGroup });
    } else {
      this.io = AfPacketIo.open(names, {
        batchSize: this.init.batchSize, vnetHdr: this.init.vnetHdr === true,
        rcvbuf: this.init.rcvbuf, sndbuf: this.init.sndbuf, fanoutGroup: this.init.fanoutGroup,
      });
    }
    // Busy polling needs reads that cost no wait: the AF_PACKET backends' (a non-blocking recvmmsg, or a ring word).
    this.busyPollMs = this.io instanceof AfPacketIo || this.io instanceof AfPacketRingIo ? (this.init.busyPollUs ?? 0) / 1000 : 0;
    if (this.io instanceof AfPacketIo && this.io.vnetHdr) {
      // Slots for whole super-frames; frames leave with their offload state (batch.txOffload).
      this.batch = this.io.createBatch(this.init.batchSize);
      this.pend.txOffload = true;
    }
    if (this.io instanceof AfPacketRingIo) this.batch = this.io.createBatch(this.init.batchSize);
    this.stopWatch = this.io.watch(this.onReadable);
    this.hide.takeNewVip4();
    this.hide.takeNewVip6();
    this.announceVips(this.currentVips());
    this.announceVips6(this.currentVips6());
    this.publish();
  }

  private readonly onReadable = (): void => {
    this.drain();
  };

  /** Busy-poll window (WorkerInit.busyPollUs) in ms; 0 = off. */
  private busyPollMs = 0;

  private drain(): void {
    const io = this.io;
    if (io === null) return;
    let frames = this.drainBatches(io);
    this.afterBatches();
    const window = this.busyPollMs;
    if (frames === 0 || window === 0) return;
    // Busy polling: keep reading without blocking while frames keep coming (each gap shorter
    // than the window), instead of paying an epoll wake-up per burst; back to the event loop
    // after BUSY_POLL_SLICE_MS at most, so control messages and ticks still run between
    // batches (epoll is level-triggered: frames still queued then wake us again at once).
    const af = io instanceof AfPacketIo ? io : null;
    const start = performance.now();
    let last = start;
    for (;;) {
      const t = performance.now();
      if (t - last >= window || t - start >= BUSY_POLL_SLICE_MS) break;
      // A short read disarmed the sockets until their next poll event: spinning reads them anyway.
      af?.armAll();
      frames = this.drainBatches(io);
      if (frames > 0) {
        this.afterBatches();
        last = performance.now();
      }
    }
  }

  /** Up to MAX_BATCHES batches: receive, engine, send. Returns the frames received. */
  private drainBatches(io: Backend): number {
    const now = this.clock();
    this.director.setClock(Math.max(now, this.director.now));
    this.neigh.now = this.director.now;
    let frames = 0;
    for (let k = 0; k < MAX_BATCHES; k++) {
      const n = io.recv(this.batch);
      if (n === 0) break;
      frames += n;
      this.counters[C_BATCHES]!++;
      this.dropSuperFrames(this.batch);
      this.runBatch(this.batch, false);
    }
    return frames;
  }

  /**
   * Takes frames longer than the MTU out of the batch (only frame metadata moves) and counts them;
   * GSO super-frames (vnet hdr) stay: the engine checks their segment length and keeps them whole.
   */
  private dropSuperFrames(b: FrameBatch): void {
    const max = this.maxFrame;
    let w = 0;
    for (let i = 0; i < b.count; i++) {
      if (b.len[i]! > max && (b.flags[i]! & FRAME_GSO) === 0) { this.c[0]!++; continue; }
      if (w !== i) b.moveMeta(i, w);
      w++;
    }
    b.count = w;
  }

  private runBatch(b: FrameBatch, retry: boolean): void {
    const io = this.io!;
    const txq = this.txq;
    this.director.engine.process(b, txq);
    this.postProcess(b, retry);
    io.send(b);
    if (txq.count > 0) {
      if (this.multi) for (let i = 0; i < txq.count; i++) this.setSourceMac(txq, i, txq.ifindex[i]!);
      io.send(txq);
      txq.clear();
    }
  }

  /** ARP learning, egress interface and source MAC (several interfaces), frames waiting for a next hop. */
  private postProcess(b: FrameBatch, retry: boolean): void {
    const neigh = this.neigh;
    for (let i = 0; i < b.count; i++) {
      const r = b.reason[i]!;
      if (r === R_ARP_REPLY) {
        neigh.observeArp(b.buf, b.off[i]!, b.len[i]!, b.ifindex[i]!, true);
        if (this.multi) this.fixArpReply(b, i);
      } else if (r === R_ARP_OTHER) {
        neigh.observeArp(b.buf, b.off[i]!, b.len[i]!, b.ifindex[i]!, false);
      } else if (r === R_ND_REPLY) {
        if (this.multi) this.fixNdReply(b, i);
        neigh.observeNd(b.buf, b.off[i]!, b.len[i]!, b.ifindex[i]!, true);
      } else if (r === R_ND_OTHER) {
        neigh.observeNd(b.buf, b.off[i]!, b.len[i]!, b.ifindex[i]!, false);
      } else if (r === R_NO_NEIGHBOUR) {
        if (!retry) this.hold(b, i);
      } else if (this.multi && b.verdict[i] === V_FORWARD) {
        const egress = neigh.egressFor(b.buf, b.off[i]!);
        if (egress !== 0) {
          b.ifindex[i] = egress;
          if ((b.flags[i]! & FRAME_SEGMENTED) !== 0) {
            this.segmentsFrom(b, i, egress, r === R_FWD_TUN);
          } else {
            this.setSourceMac(b, i, egress);
            if (r === R_FWD_TUN) this.setTunnelSource(b, i, egress);
          }
        }
      }
    }
  }

  /** setSourceMac (and setTunnelSource) for each segment of a FRAME_SEGMENTED frame (xmit/gso.ts). */
  private segmentsFrom(b: FrameBatch, i: number, egress: number, tunnel: boolean): void {
    const off = b.off[i]!;
    const n = b.segs[i]!;
    const stride = b.segStride[i]!;
    // The helpers work on b.off[i]: aim it at each segment in turn, then put it back.
    for (let k = 0; k < n; k++) {
      b.off[i] = off + k * stride;
      this.setSourceMac(b, i, egress);
      if (tunnel) this.setTunnelSource(b, i, egress);
    }
    b.off[i] = off;
  }

  private setSourceMac(b: FrameBatch, i: number, ifindex: number): void {
    const mac = this.macByIfx[ifindex];
    if (mac === undefined) return;
    const o = b.off[i]! + 6;
    const buf = b.buf;
    buf[o] = mac[0]!; buf[o + 1] = mac[1]!; buf[o + 2] = mac[2]!; buf[o + 3] = mac[3]!; buf[o + 4] = mac[4]!; buf[o + 5] = mac[5]!;
  }

  /**
   * The engine sources tunnels from its one address; a tunnel packet leaving another
   * interface gets that interface's address instead (what the kernel's route lookup
   * would pick, and what a real server with rp_filter expects). IPv4 outer headers only.
   */
  private setTunnelSource(b: FrameBatch, i: number, egress: number): void {
    const src = this.ip4ByIfx[egress] ?? 0;
    const buf = b.buf;
    const off = b.off[i]!;
    let l3 = off + 14;
    if (buf[off + 12] === 0x81 && buf[off + 13] === 0x00) l3 += 4;
    if (src === 0 || (buf[l3]! >>> 4) !== 4) return;
    const old = ((buf[l3 + 12]! << 24) | (buf[l3 + 13]! << 16) | (buf[l3 + 14]! << 8) | buf[l3 + 15]!) >>> 0;
    if (old === src) return;
    buf[l3 + 12] = src >>> 24; buf[l3 + 13] = (src >>> 16) & 0xff; buf[l3 + 14] = (src >>> 8) & 0xff; buf[l3 + 15] = src & 0xff;
    const ipc = csumUpdate32((buf[l3 + 10]! << 8) | buf[l3 + 11]!, old, src);
    buf[l3 + 10] = ipc >>> 8; buf[l3 + 11] = ipc & 0xff;
    if (buf[l3 + 9] === 17) {
      // GUE: the outer UDP checksum covers the source address (pseudo-header); 0 means none.
      const udp = l3 + ((buf[l3]! & 0x0f) << 2);
      const u = udp + 6;
      const uc = (buf[u]! << 8) | buf[u + 1]!;
      if ((b.flags[i]! & FRAME_CSUM_NOT_READY) !== 0 && off + b.csumStart[i]! === udp) {
        // Left partial for the kernel (a GUE remcsum super-frame, xmit/gue-gso.ts): the field holds
        // the pseudo-header sum itself, not a checksum's complement, so the same update applies to it
        // uncomplemented.
        const c = ~csumUpdate32(~uc & 0xffff, old, src) & 0xffff;
        buf[u] = c >>> 8; buf[u + 1] = c & 0xff;
      } else if (uc !== 0) {
        let c = csumUpdate32(uc, old, src);
        if (c === 0) c = 0xffff;
        buf[u] = c >>> 8; buf[u + 1] = c & 0xff;
      }
    }
  }

  /** Our Neighbor Advertisement leaves where the solicitation came in, with that interface's MAC. */
  private fixNdReply(b: FrameBatch, i: number): void {
    const mac = this.macByIfx[b.ifindex[i]!];
    if (mac !== undefined) setNaSourceMac(b.buf, b.off[i]!, b.len[i]!, mac, this.nd);
  }

  /** Our ARP reply leaves where the request came in, with that interface's MAC as sender. */
  private fixArpReply(b: FrameBatch, i: number): void {
    const ifx = b.ifindex[i]!;
    const mac = this.macByIfx[ifx];
    if (mac === undefined) return;
    this.setSourceMac(b, i, ifx);
    const buf = b.buf;
    let a = b.off[i]! + 14;
    if (buf[b.off[i]! + 12] === 0x81 && buf[b.off[i]! + 13] === 0x00) a += 4;
    for (let k = 0; k < 6; k++) buf[a + 8 + k] = mac[k]!;
  }

  /** Keeps a frame whose next hop is being resolved (or drops and counts it when the queue is full). */
  private hold(b: FrameBatch, i: number): void {
    const p = this.pend;
    // A super-frame larger than a queue slot is dropped like a frame of a full queue (only the
    // first frames of a connection wait for a next hop, and those are small).
    if (p.count >= p.capacity || b.len[i]! > p.frameMax) { this.c[3]!++; return; }
    const j = p.count++;
    const off = b.off[i]!;
    const len = b.len[i]!;
    const dst = j * SLOT_SIZE + HEADROOM;
    p.buf.set(b.buf.subarray(off, off + len), dst);
    // Flags as the engine left them: it clears FRAME_CSUM_NOT_READY when it completes a checksum,
    // and a checksum it keeps partial (vnet hdr) stays partial, with its offsets.
    p.copyMeta(j, b, i);
    p.off[j] = dst;
    this.pendDeadline[j] = this.director.now + this.neighWait;
    // The engine counted this packet already (ip_vs_in/out stats) and will again when the frame
    // is run through it once more: remember which way, so the second count can be taken back.
    const info = this.info;
    this.pendDir[j] = 0;
    if (parseFrame(p.buf, dst, len, info) === PARSE_OK && info.innerL3Off < 0 && (info.proto === 6 || info.proto === 17 || info.proto === 132)) {
      const conns = this.director.conns;
      const inbound = conns.lookupIn(info.af, info.proto, info.saddr, info.sport, info.daddr, info.dport) >= 0;
      this.pendDir[j] = inbound ? 1 : 2;
      this.pendBytes[j] = info.ipLen;
    }
    this.c[1]!++;
  }

  private afterBatches(): void {
    const io = this.io;
    if (io === null) return;
    if (this.neigh.requestsPending) {
      this.neigh.drainRequests(this.txq);
      if (this.txq.count > 0) io.send(this.txq);
      this.txq.clear();
    }
    if (this.pend.count > 0 && this.neigh.version !== this.pendVersion) this.retryPending();
    this.publish();
  }

  /** Runs the waiting frames through the engine again (the neighbour table changed); keeps those still unresolved. */
  private retryPending(): void {
    const p = this.pend;
    this.pendVersion = this.neigh.version;
    const engine = this.director.engine;
    const trace = engine.trace;
    this.retryDest.fill(-1);
    engine.trace = this.retryTrace;
    try {
      this.runBatch(p, true);
    } finally {
      engine.trace = trace;
    }
    this.uncountRetry();
    const now = this.director.now;
    let w = 0;
    for (let i = 0; i < p.count; i++) {
      const r = p.reason[i]!;
      if (r !== R_NO_NEIGHBOUR) {
        if (p.verdict[i] === V_FORWARD || p.verdict[i] === V_REPLY) this.c[2]!++;
        continue;
      }
      if (this.pendDeadline[i]! <= now) { this.c[3]!++; continue; }
      if (w !== i) this.moveSlot(i, w);
      w++;
    }
    p.count = w;
  }

  /** Takes back the traffic counters the retry pass added a second time (each packet counts once). */
  private uncountRetry(): void {
    const p = this.pend;
    const table = this.director.table;
    for (let i = 0; i < p.count; i++) {
      const dir = this.pendDir[i]!;
      const id = this.retryDest[i]!;
      if (dir === 0 || id < 0) continue;
      const dest = table.destById(id);
      if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) continue;
      const bytes = this.pendBytes[i]!;
      uncount(dest.stats, dir, bytes);
      uncount(dest.svc.stats, dir, bytes);
      uncount(table.totalStats, dir, bytes);
    }
  }

  private moveSlot(from: number, to: number): void {
    const p = this.pend;
    const dst = to * SLOT_SIZE + HEADROOM;
    p.buf.copyWithin(dst, p.off[from]!, p.off[from]! + p.len[from]!);
    p.moveMeta(from, to);
    p.off[to] = dst;
    this.pendDeadline[to] = this.pendDeadline[from]!;
    this.pendDir[to] = this.pendDir[from]!;
    this.pendBytes[to] = this.pendBytes[from]!;
  }

  private expirePending(now: number): void {
    const p = this.pend;
    let w = 0;
    for (let i = 0; i < p.count; i++) {
      if (this.pendDeadline[i]! <= now) { this.c[3]!++; continue; }
      if (w !== i) this.moveSlot(i, w);
      w++;
    }
    p.count = w;
  }

  // ---------------------------------------------------------------- gratuitous ARP

  /** Every IPv4 VIP address, once, in listing order (what is announced when packet I/O starts). */
  private currentVips(): number[] {
    const v = new Set<number>();
    for (const s of this.director.table.services()) if (s.af === 4 && s.fwmark === 0) v.add(s.addr.w0 >>> 0);
    return [...v];
  }

  /**
   * Gratuitous ARP for each of `added` (VIP addresses that were not in use), on the
   * interfaces whose subnet holds it (else on all). Without packet I/O nothing is sent:
   * startIo announces every VIP then.
   */
  private announceVips(added: number[]): void {
    if (this.io === null || added.length === 0) return;
    const txq = this.txq;
    for (const vip of added) {
      const on = this.ifaces.filter((i) => i.ipv4 !== null && i.ipv4Prefix > 0 &&
        ((i.ipv4 ^ vip) >>> (32 - i.ipv4Prefix)) === 0);
      for (const i of on.length > 0 ? on : this.ifaces) {
        if (i.mac.length !== 6) continue;
        const off = txq.reserve();
        if (off < 0) break;
        txq.commit(writeGratuitousArp(txq.buf, off, i.mac, vip), i.index, -1);
        this.c[4]!++;
      }
    }
    if (txq.count > 0) this.io.send(txq);
    txq.clear();
  }

  /** Every IPv6 VIP address, once (what is announced when packet I/O starts). */
  private currentVips6(): number[][] {
    const v = new Map<string, number[]>();
    for (const s of this.director.table.services()) {
      if (s.af === 6 && s.fwmark === 0) v.set(`${s.addr.w0}.${s.addr.w1}.${s.addr.w2}.${s.addr.w3}`, [s.addr.w0, s.addr.w1, s.addr.w2, s.addr.w3]);
    }
    return [...v.values()];
  }

  /** Unsolicited Neighbor Advertisements for IPv6 VIPs that were not in use (the IPv6 gratuitous ARP). */
  private announceVips6(added: number[][]): void {
    if (this.io === null || added.length === 0) return;
    this.c[4]! += Vip6Announcer.write(this.txq, this.neigh.interfaces, added);
    if (this.txq.count > 0) this.io.send(this.txq);
    this.txq.clear();
  }

  // ---------------------------------------------------------------- control plane

  async op(id: number, op: string, args: unknown[]): Promise<void> {
    const api = this.director.api as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    if (!READ_OPS.has(op) && !WRITE_OPS.has(op)) {
      this.post({ t: 'result', id, ok: false, error: { message: `unknown operation ${op}` } });
      return;
    }
    // Only what the operation touched is re-derived (hide-state.ts): a change costs the same
    // whatever the table's size. A failed operation reports what it changed too (normally nothing).
    const scope = WRITE_OPS.has(op) ? this.hide.scope(op, args) : null;
    let value: unknown = null;
    let error: WireError | null = null;
    try {
      value = await api[op]!.apply(this.director.api, args);
    } catch (e) {
      const err = e as Error;
      error = e instanceof CtlError ? { errno: e.errno, message: err.message } : { message: err.message };
    }
    let hide: HideChange | undefined;
    if (scope !== null) {
      hide = this.hide.change(scope);
      this.announceVips(this.hide.takeNewVip4());
      this.announceVips6(this.hide.takeNewVip6());
    }
    if (error === null) {
      this.post(hide === undefined ? { t: 'result', id, ok: true, value } : { t: 'result', id, ok: true, value, hide });
    } else {
      this.post(hide === undefined ? { t: 'result', id, ok: false, error } : { t: 'result', id, ok: false, error, hide });
    }
  }

  tick(now: number): void {
    this.director.tick(Math.max(now, this.director.now));
    const t = this.director.now;
    this.neigh.tick(t);
    if (++this.ticks % ROUTE_REFRESH_TICKS === 0 && this.init.routes === null && this.init.backend !== 'none') {
      this.neigh.setRoutes(new RouteTable4(readRoutes4()));
      this.neigh.setRoutes6(new RouteTable6(readRoutes6()));
    }
    if (this.io !== null) {
      if (this.pend.count > 0) this.expirePending(t);
      this.afterBatches();
      if (this.io instanceof AfPacketIo || this.io instanceof AfPacketRingIo) this.io.readKernelStats();
    }
    this.publish();
  }

  /** Copies every counter into the shared block. */
  publish(): void {
    const c = this.counters;
    const rc = this.director.engine.reasonCount;
    for (let i = 0; i < REASON_COUNT; i++) c[i] = rc[i]!;
    const io = this.io;
    if (io instanceof AfPacketIo || io instanceof AfPacketRingIo) {
      const s = io.stats;
      c[C_RX_FRAMES] = s.rxFrames;
      c[C_TX_FRAMES] = s.txFrames;
      c[C_TX_ERRORS] = s.txErrors;
      c[C_KERNEL_DROPS] = s.kernelDrops;
      c[C_SUPER_FRAMES] = this.c[0]! + s.rxTruncated;
    } else if (io !== null) {
      const s = io as unknown as { rxFrames: number; txFrames: number; txErrors: number; queueDrops: number };
      c[C_RX_FRAMES] = s.rxFrames;
      c[C_TX_FRAMES] = s.txFrames;
      c[C_TX_ERRORS] = s.txErrors;
      c[C_KERNEL_DROPS] = s.queueDrops;
      c[C_SUPER_FRAMES] = this.c[0]!;
    }
    c[C_NEIGH_QUEUED] = this.c[1]!;
    c[C_NEIGH_RELEASED] = this.c[2]!;
    c[C_NEIGH_DROPPED] = this.c[3]!;
    c[C_GARP_SENT] = this.c[4]!;
    c[C_ARP_REQUESTS] = this.neigh.stats.requests;
    c[C_NEIGH_ENTRIES] = this.neigh.size;
    c[C_NO_ROUTE] = this.neigh.stats.noRoute;
    c[C_UPDATED] = this.director.now;
  }

  stop(): void {
    this.stopWatch?.();
    this.stopWatch = null;
    this.io?.close();
    this.io = null;
  }
}

function uncount(s: Stats, dir: number, bytes: number): void {
  const c = s.cnt;
  if (dir === 1) { c[ST_INPKTS]!--; c[ST_INBYTES]! -= bytes; } else { c[ST_OUTPKTS]!--; c[ST_OUTBYTES]! -= bytes; }
}

/** Moves this thread (only) into a network namespace for good. */
export function enterNetns(netns: string): void {
  const fd = openSync(netns.includes('/') ? netns : `/var/run/netns/${netns}`, 'r');
  try {
    check(libc().setns(fd, CLONE_NEWNET), `setns(${netns})`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Builds the data plane from `init` and serves the protocol on `port` (a worker's
 * parentPort or one end of a MessageChannel). Returns false (after posting 'fatal')
 * when it cannot start. `onStopped` runs after a 'stop' request was answered.
 */
export function serveDataPlane(
  port: Pick<MessagePort, 'postMessage' | 'on'>, init: WorkerInit, onStopped: () => void = () => {},
): boolean {
  const post = (m: FromWorker): void => port.postMessage(m);
  let w: DataPlaneWorker;
  try {
    if (init.netns !== null) enterNetns(init.netns);
    w = new DataPlaneWorker(init, post);
  } catch (e) {
    post({ t: 'fatal', message: (e as Error).message });
    return false;
  }
  post({ t: 'ready', ifaces: w.facts(), capacity: w.director.conns.capacity });
  port.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'op':
        void w.op(m.id, m.op, m.args);
        break;
      case 'tick':
        w.tick(m.now);
        break;
      case 'start-io':
        w.startIo().then(
          () => post({ t: 'result', id: m.id, ok: true, value: null }),
          (e: Error) => post({ t: 'result', id: m.id, ok: false, error: { message: e.message } }),
        );
        break;
      case 'neigh':
        post({ t: 'neigh', id: m.id, entries: w.neigh.entries() });
        break;
      case 'stop':
        w.stop();
        post({ t: 'result', id: m.id, ok: true, value: null });
        onStopped();
        break;
    }
  });
  return true;
}
