/**
 * The established-connection fast path: IPv4 TCP (ACK without SYN/FIN/RST, in
 * ESTABLISHED) and UDP packets of existing NAT or direct-routing connections,
 * without IP options, fragments, VLAN tags or offloaded checksums. For these the
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
 * misses of different frames overlap instead of stalling one after another;
 * the lookup answers are kept as hints that tryForward reuses while the hash is
 * unchanged (any insert or removal in between invalidates them).
 */
import { type FrameBatch, FRAME_CSUM_NOT_READY, V_FORWARD } from '../io/batch.js';
import { csumUpdate16, csumUpdate32 } from '../packet/checksum.js';
import { CONN_F_MASQ, CONN_F_DROUTE, TCP_S_ESTABLISHED, UDP_S_NORMAL } from '../conn/flags.js';
import { DEST_F_AVAILABLE } from '../svc/types.js';
import type { Engine } from './engine.js';
import { R_FWD_DR, R_FWD_NAT_IN, R_FWD_NAT_OUT } from './reasons.js';

const TCP = 6;
const UDP = 17;
// TCP flags that change state or need the general path: FIN, SYN, RST.
const TCP_STATEFUL = 0x07;
const TCP_ACK = 0x10;

export class FastPath {
  private readonly e: Engine;
  /** Set false to force every frame through the general path (tests compare the two). */
  enabled = true;
  /** Frames forwarded by the fast path (a plain counter: cheaper than asking later). */
  hits = 0;

  // Per-frame hints from prepare(): the IPv4 key seen (proto 0: not a candidate) and the
  // lookup answer for it (record position or -1, direction), valid while the hash version holds.
  private hProto = new Uint8Array(0);
  private hSaddr = new Uint32Array(0);
  private hDaddr = new Uint32Array(0);
  private hPorts = new Uint32Array(0);
  private hRec = new Int32Array(0);
  private hInbound = new Uint8Array(0);
  private hCount = 0;
  private hVersion = -1;
  /** Folds the prefetch loads so the compiler keeps them. */
  private sink = 0;
  private readonly addr = new Uint32Array(4);

  constructor(engine: Engine) {
    this.e = engine;
  }

  /**
   * Runs the connection lookups of every candidate frame of the batch ahead of
   * tryForward: first touching all home slots, then probing (now from cache) and
   * touching each hit's hot record. Only loads and hints: nothing observable changes.
   */
  prepare(batch: FrameBatch): void {
    const n = batch.count;
    if (this.hProto.length < n) this.grow(batch.capacity);
    this.hCount = 0;
    if (!this.enabled) return;
    const conns = this.e.conns;
    const buf = batch.buf;
    const hProto = this.hProto, hSaddr = this.hSaddr, hDaddr = this.hDaddr, hPorts = this.hPorts;
    let sink = 0;
    for (let i = 0; i < n; i++) {
      hProto[i] = 0;
      const o = batch.off[i]!;
      if (batch.len[i]! < 42 || buf[o + 12] !== 0x08 || buf[o + 13] !== 0x00) continue;
      const l3 = o + 14;
      if (buf[l3] !== 0x45 || (((buf[l3 + 6]! << 8) | buf[l3 + 7]!) & 0x3fff) !== 0) continue;
      const proto = buf[l3 + 9]!;
      if (proto !== TCP && proto !== UDP) continue;
      const saddr = ((buf[l3 + 12]! << 24) | (buf[l3 + 13]! << 16) | (buf[l3 + 14]! << 8) | buf[l3 + 15]!) >>> 0;
      const daddr = ((buf[l3 + 16]! << 24) | (buf[l3 + 17]! << 16) | (buf[l3 + 18]! << 8) | buf[l3 + 19]!) >>> 0;
      const sport = (buf[l3 + 20]! << 8) | buf[l3 + 21]!;
      const dport = (buf[l3 + 22]! << 8) | buf[l3 + 23]!;
      hProto[i] = proto;
      hSaddr[i] = saddr;
      hDaddr[i] = daddr;
      hPorts[i] = ((sport << 16) | dport) >>> 0;
      // Inbound: hashed by the client (source); reply: by the client it goes to (destination).
      sink ^= conns.touchHome4(proto, saddr, sport) ^ conns.touchHome4(proto, daddr, dport);
    }
    const hRec = this.hRec, hInbound = this.hInbound;
    for (let i = 0; i < n; i++) {
      const proto = hProto[i]!;
      if (proto === 0) continue;
      const saddr = hSaddr[i]!, daddr = hDaddr[i]!, ports = hPorts[i]!;
      const sport = ports >>> 16, dport = ports & 0xffff;
      let r = conns.findIn4(proto, saddr, sport, daddr, dport);
      let inbound = 1;
      if (r < 0) {
        r = conns.findOut4(proto, saddr, sport, daddr, dport);
        inbound = 0;
      }
      hRec[i] = r;
      hInbound[i] = inbound;
      if (r >= 0) sink ^= conns.touchHot(conns.recId(r));
    }
    this.sink ^= sink;
    this.hCount = n;
    this.hVersion = conns.hashVersion;
  }

  private grow(cap: number): void {
    this.hProto = new Uint8Array(cap);
    this.hSaddr = new Uint32Array(cap);
    this.hDaddr = new Uint32Array(cap);
    this.hPorts = new Uint32Array(cap);
    this.hRec = new Int32Array(cap);
    this.hInbound = new Uint8Array(cap);
  }

  /** Forwards frame i if it is an eligible established packet; returns its reason, or -1. */
  tryForward(batch: FrameBatch, i: number): number {
    if (!this.enabled || (batch.flags[i]! & FRAME_CSUM_NOT_READY) !== 0) return -1;
    const buf = batch.buf;
    const o = batch.off[i]!;
    const len = batch.len[i]!;
    if (len < 42 || buf[o + 12] !== 0x08 || buf[o + 13] !== 0x00) return -1;
    const l3 = o + 14;
    if (buf[l3] !== 0x45) return -1; // IPv4 without options
    const totLen = (buf[l3 + 2]! << 8) | buf[l3 + 3]!;
    if (totLen < 28 || totLen > len - 14) return -1;
    if ((((buf[l3 + 6]! << 8) | buf[l3 + 7]!) & 0x3fff) !== 0) return -1; // fragment
    if (buf[l3 + 8]! <= 1) return -1; // TTL expiry: general path sends the ICMP
    const proto = buf[l3 + 9]!;
    const l4 = l3 + 20;
    let csumAt: number;
    if (proto === TCP) {
      if (totLen < 40) return -1;
      const doff = buf[l4 + 12]! >>> 4;
      if (doff < 5 || 20 + (doff << 2) > totLen) return -1;
      const f = buf[l4 + 13]!;
      if ((f & TCP_STATEFUL) !== 0 || (f & TCP_ACK) === 0) return -1;
      csumAt = l4 + 16;
    } else if (proto === UDP) {
      const ulen = (buf[l4 + 4]! << 8) | buf[l4 + 5]!;
      if (ulen < 8 || ulen > totLen - 20) return -1;
      if (buf[l4 + 6] === 0 && buf[l4 + 7] === 0) return -1; // zero checksum: the kernel computes a full one
      csumAt = l4 + 6;
    } else {
      return -1;
    }
    const e = this.e;
    if (totLen > e.mtu || e.sysctls.secure_tcp >= 2) return -1;
    const saddr = ((buf[l3 + 12]! << 24) | (buf[l3 + 13]! << 16) | (buf[l3 + 14]! << 8) | buf[l3 + 15]!) >>> 0;
    const daddr = ((buf[l3 + 16]! << 24) | (buf[l3 + 17]! << 16) | (buf[l3 + 18]! << 8) | buf[l3 + 19]!) >>> 0;
    const sport = (buf[l4]! << 8) | buf[l4 + 1]!;
    const dport = (buf[l4 + 2]! << 8) | buf[l4 + 3]!;
    const conns = e.conns;
    let r: number;
    let inbound: boolean;
    if (i < this.hCount && conns.hashVersion === this.hVersion && this.hProto[i] === proto &&
        this.hSaddr[i] === saddr && this.hDaddr[i] === daddr && this.hPorts[i] === (((sport << 16) | dport) >>> 0)) {
      // prepare() looked this key up and the hash has not changed since: same answer.
      r = this.hRec[i]!;
      if (r < 0) return -1;
      inbound = this.hInbound[i] === 1;
    } else {
      r = conns.findIn4(proto, saddr, sport, daddr, dport);
      inbound = true;
      if (r < 0) {
        r = conns.findOut4(proto, saddr, sport, daddr, dport);
        if (r < 0) return -1;
        inbound = false;
      }
    }
    const id = conns.recId(r);
    // ONE_PACKET conns are never hashed, so no lookup finds them.
    const method = conns.fwdMethodOf(id);
    if (conns.dafOf(id) !== 4) return -1;
    if (inbound ? method !== CONN_F_MASQ && method !== CONN_F_DROUTE : method !== CONN_F_MASQ) return -1;
    // The state machine would keep the state and re-arm the same timeout: check that.
    const timeouts = conns.timeouts;
    const state = conns.stateOf(id);
    if (proto === TCP) {
      if (state !== TCP_S_ESTABLISHED || conns.timeoutOf(id) !== timeouts.tcp[TCP_S_ESTABLISHED]) return -1;
    } else if (state !== UDP_S_NORMAL || conns.timeoutOf(id) !== timeouts.udp[UDP_S_NORMAL]) {
      return -1;
    }
    const destId = conns.destIdOf(id);
    const dest = e.table.destById(destId);
    if (dest === undefined || (dest.flags & DEST_F_AVAILABLE) === 0) return -1;

    // Next hop before any change, so a miss leaves the frame untouched for the general path.
    if (inbound) {
      if (!e.xmitGlue.destMacInto(dest, buf, o)) return -1;
    } else {
      const a = this.addr;
      a[0] = daddr;
      if (!e.neigh.resolve(4, a, buf, o)) return -1;
    }
    const mac = e.mac;
    buf[o + 6] = mac[0]!; buf[o + 7] = mac[1]!; buf[o + 8] = mac[2]!;
    buf[o + 9] = mac[3]!; buf[o + 10] = mac[4]!; buf[o + 11] = mac[5]!;

    // ip_decrease_ttl.
    buf[l3 + 8] = buf[l3 + 8]! - 1;
    let ipc = ((buf[l3 + 10]! << 8) | buf[l3 + 11]!) + 0x0100;
    if (ipc >= 0xffff) ipc += 1;
    ipc &= 0xffff;

    let reason: number;
    if (inbound) {
      e.countIn(dest, totLen);
      conns.countInPkt(id);
      if (method === CONN_F_MASQ) {
        const nd = conns.recDaddr(r);
        const np = conns.recDport(r);
        let c = (buf[csumAt]! << 8) | buf[csumAt + 1]!;
        c = csumUpdate16(csumUpdate32(c, daddr, nd), dport, np);
        if (c === 0 && proto === UDP) c = 0xffff;
        buf[csumAt] = c >>> 8; buf[csumAt + 1] = c & 0xff;
        buf[l4 + 2] = np >>> 8; buf[l4 + 3] = np & 0xff;
        buf[l3 + 16] = nd >>> 24; buf[l3 + 17] = (nd >>> 16) & 0xff; buf[l3 + 18] = (nd >>> 8) & 0xff; buf[l3 + 19] = nd & 0xff;
        ipc = csumUpdate32(ipc, daddr, nd);
        reason = R_FWD_NAT_IN;
      } else {
        reason = R_FWD_DR;
      }
    } else {
      e.countOut(dest, totLen);
      const ns = conns.recVaddr(r);
      const np = conns.recVport(r);
      let c = (buf[csumAt]! << 8) | buf[csumAt + 1]!;
      c = csumUpdate16(csumUpdate32(c, saddr, ns), sport, np);
      if (c === 0 && proto === UDP) c = 0xffff;
      buf[csumAt] = c >>> 8; buf[csumAt + 1] = c & 0xff;
      buf[l4] = np >>> 8; buf[l4 + 1] = np & 0xff;
      buf[l3 + 12] = ns >>> 24; buf[l3 + 13] = (ns >>> 16) & 0xff; buf[l3 + 14] = (ns >>> 8) & 0xff; buf[l3 + 15] = ns & 0xff;
      ipc = csumUpdate32(ipc, saddr, ns);
      reason = R_FWD_NAT_OUT;
    }
    buf[l3 + 10] = ipc >>> 8; buf[l3 + 11] = ipc & 0xff;
    conns.touch(id, e.now);
    const oc = e.outcome;
    oc.destId = dest.id;
    oc.svcId = conns.svcIdOf(id);
    batch.verdict[i] = V_FORWARD;
    this.hits++;
    return reason;
  }
}
