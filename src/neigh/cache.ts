/**
 * The director's ARP cache and next-hop resolver (IPv4). It implements
 * NextHopResolver, so the engine uses it exactly like the static table.
 *
 * A destination's next hop is the destination itself when the kernel's routing
 * table says it is on-link, else the route's gateway (neigh/routes.ts). Next hops
 * live in slots of typed arrays (IP, MAC, egress interface, state, timers); an
 * LRU index (lru-cache) maps IP → slot and bounds the table: when it is full the
 * least recently confirmed entry goes. Entries follow a small version of the
 * kernel's NUD machine:
 *   INCOMPLETE  — asked (broadcast who-has, up to `probes` times, `retransTime` apart),
 *   REACHABLE   — answered less than `reachableTime` ago,
 *   STALE       — older: still used, re-probed (unicast) up to `probes` times; deleted if silent,
 *   FAILED      — never answered: not retried for `retransTime`, dropped after `gcTime`.
 * What feeds it: ARP replies to our requests (and any ARP from a host we already
 * know), and ARP requests for our addresses or VIPs — like the kernel, which
 * creates an entry for whoever asks for one of its addresses.
 *
 * Hot path: `resolve` hashes the destination into a direct-mapped cache of
 * (destination → slot) and copies six bytes; nothing is allocated. Misses take the
 * slow path (route lookup, LRU index), which may allocate — once per destination,
 * and again only after the cache changed shape (an entry deleted, routes changed).
 */
import { LRUCache } from 'lru-cache';
import type { NextHopResolver } from './static.js';
import { RouteTable4, type Route4 } from './routes.js';
import { ArpView, ARP_REPLY, ARP_REQUEST, readArp, writeArpRequest } from './arp.js';
import type { TxQueue } from '../io/batch.js';
import { formatIp4 } from '../util/ip.js';
import { formatMac } from '../util/mac.js';

export interface NeighIface {
  /** Kernel ifindex (what batches carry). */
  index: number;
  name: string;
  mac: Uint8Array;
  /** Primary IPv4 address (source of our ARP requests), 0 when the interface has none. */
  ip4: number;
  prefix: number;
}

export interface NeighbourCacheOptions {
  ifaces: NeighIface[];
  /** Routing table (default: only the interfaces' own subnets, on-link). */
  routes?: RouteTable4;
  /** Maximum entries (default 4096). */
  capacity?: number;
  /** Seconds an answer counts as fresh (kernel base_reachable_time: 30). */
  reachableTime?: number;
  /** Seconds between probes (kernel retrans_time: 1). */
  retransTime?: number;
  /** Probes before giving up (kernel mcast_solicit / ucast_solicit: 3). */
  probes?: number;
  /** Seconds a FAILED entry is kept (so a flood of frames to a dead host does not flood ARP). */
  gcTime?: number;
  /** log2 of the destination cache size (default 14). */
  dstCacheBits?: number;
}

export const NUD_FREE = 0;
export const NUD_INCOMPLETE = 1;
export const NUD_REACHABLE = 2;
export const NUD_STALE = 3;
export const NUD_FAILED = 4;
const NUD_NAMES = ['FREE', 'INCOMPLETE', 'REACHABLE', 'STALE', 'FAILED'];

export interface NeighEntry {
  ip: string;
  mac: string;
  ifname: string;
  state: string;
}

/** Counters (plain numbers; the data plane copies them into shared memory). */
export interface NeighStats {
  /** Frames whose next hop was not resolved yet (the engine drops or the data plane queues them). */
  unresolved: number;
  /** Destinations without a route, or whose route leaves through an interface we do not serve. */
  noRoute: number;
  /** IPv6 next hops (no NDP yet). */
  unsupported: number;
  /** ARP requests written (first asks and re-probes). */
  requests: number;
  /** Entries created or changed from ARP frames seen. */
  learned: number;
  /** Next hops that never answered. */
  failed: number;
}

function onLinkRoutes(ifaces: NeighIface[]): RouteTable4 {
  const r: Route4[] = [];
  for (const i of ifaces) {
    if (i.ip4 === 0) continue;
    const mask = i.prefix === 0 ? 0 : (0xffffffff << (32 - i.prefix)) >>> 0;
    r.push({ dst: (i.ip4 & mask) >>> 0, prefix: i.prefix, gateway: 0, ifname: i.name, metric: 0 });
  }
  return new RouteTable4(r);
}

export class NeighbourCache implements NextHopResolver {
  /** Bumped when an entry becomes usable, changes MAC or goes away, and when routes change. */
  version = 0;
  /** Current time (seconds on the director's clock); the data plane sets it before each batch. */
  now = 0;
  readonly stats: NeighStats = { unresolved: 0, noRoute: 0, unsupported: 0, requests: 0, learned: 0, failed: 0 };
  readonly capacity: number;

  private routes: RouteTable4;
  private readonly ifaces: NeighIface[];
  private readonly ifByName = new Map<string, NeighIface>();
  private readonly ifByIndex = new Map<number, NeighIface>();
  private readonly ownIps = new Set<number>();
  private readonly reachableTime: number;
  private readonly retransTime: number;
  private readonly probes: number;
  private readonly gcTime: number;

  // Slots.
  private readonly ip: Uint32Array;
  private readonly mac: Uint8Array;
  private readonly ifx: Int32Array;
  private readonly state: Uint8Array;
  private readonly confirmed: Float64Array;
  private readonly nextProbe: Float64Array;
  private readonly probesLeft: Uint8Array;
  private readonly freeSlots: number[] = [];
  private readonly index: LRUCache<number, number>;

  // Requests to write at the next drain.
  private readonly askQ: Int32Array;
  private readonly queued: Uint8Array;
  private askN = 0;

  // Destination → slot, direct-mapped; entries of an older generation are misses.
  private readonly dcKey: Uint32Array;
  private readonly dcSlot: Int32Array;
  private readonly dcGen: Uint32Array;
  private readonly dcShift: number;
  private gen = 1;

  // MAC → egress ifindex (rebuilt lazily after changes), open addressing.
  private macLo = new Uint32Array(0);
  private macHi = new Uint16Array(0);
  private macIfx = new Int32Array(0);
  private macDirty = true;

  private readonly arp = new ArpView();

  constructor(opts: NeighbourCacheOptions) {
    this.ifaces = opts.ifaces;
    for (const i of opts.ifaces) {
      this.ifByName.set(i.name, i);
      this.ifByIndex.set(i.index, i);
      if (i.ip4 !== 0) this.ownIps.add(i.ip4);
    }
    this.routes = opts.routes ?? onLinkRoutes(opts.ifaces);
    const cap = opts.capacity ?? 4096;
    this.capacity = cap;
    this.reachableTime = opts.reachableTime ?? 30;
    this.retransTime = opts.retransTime ?? 1;
    this.probes = opts.probes ?? 3;
    this.gcTime = opts.gcTime ?? 60;
    this.ip = new Uint32Array(cap);
    this.mac = new Uint8Array(cap * 6);
    this.ifx = new Int32Array(cap);
    this.state = new Uint8Array(cap);
    this.confirmed = new Float64Array(cap);
    this.nextProbe = new Float64Array(cap);
    this.probesLeft = new Uint8Array(cap);
    for (let s = cap - 1; s >= 0; s--) this.freeSlots.push(s);
    this.askQ = new Int32Array(cap);
    this.queued = new Uint8Array(cap);
    const bits = opts.dstCacheBits ?? 14;
    this.dcKey = new Uint32Array(1 << bits);
    this.dcSlot = new Int32Array(1 << bits);
    this.dcGen = new Uint32Array(1 << bits);
    this.dcShift = 32 - bits;
    this.index = new LRUCache<number, number>({
      max: cap,
      dispose: (slot) => this.freeSlot(slot),
    });
  }

  // ------------------------------------------------------------------ hot path

  resolve(af: 4 | 6, a: Uint32Array, out: Uint8Array, outOff: number): boolean {
    if (af !== 4) { this.stats.unsupported++; return false; }
    const d = a[0]! >>> 0;
    const h = Math.imul(d, 0x9e3779b1) >>> this.dcShift;
    let s: number;
    if (this.dcKey[h] === d && this.dcGen[h] === this.gen) {
      s = this.dcSlot[h]!;
    } else {
      s = this.lookupSlow(d);
      if (s < 0) { this.stats.unresolved++; return false; }
      this.dcKey[h] = d;
      this.dcGen[h] = this.gen;
      this.dcSlot[h] = s;
    }
    const m = this.mac;
    const o = s * 6;
    out[outOff] = m[o]!; out[outOff + 1] = m[o + 1]!; out[outOff + 2] = m[o + 2]!;
    out[outOff + 3] = m[o + 3]!; out[outOff + 4] = m[o + 4]!; out[outOff + 5] = m[o + 5]!;
    return true;
  }

  /** Egress ifindex of the neighbour whose MAC is at buf[off..off+6), 0 when unknown. */
  egressFor(buf: Uint8Array, off: number): number {
    if (this.macDirty) this.rebuildMacIndex();
    const lo = ((buf[off + 2]! << 24) | (buf[off + 3]! << 16) | (buf[off + 4]! << 8) | buf[off + 5]!) >>> 0;
    const hi = (buf[off]! << 8) | buf[off + 1]!;
    const mask = this.macLo.length - 1;
    for (let h = Math.imul(lo ^ hi, 0x9e3779b1) >>> 0 & mask, n = 0; n <= mask; h = (h + 1) & mask, n++) {
      const x = this.macIfx[h]!;
      if (x === 0) return 0;
      if (this.macLo[h] === lo && this.macHi[h] === hi) return x;
    }
    return 0;
  }

  // ------------------------------------------------------------------ slow path

  private lookupSlow(d: number): number {
    const r = this.routes.lookup(d);
    const iface = r === null ? undefined : this.ifByName.get(r.ifname);
    if (r === null || iface === undefined) { this.stats.noRoute++; return -1; }
    const nh = r.gateway !== 0 ? r.gateway : d;
    let s = this.index.get(nh | 0);
    if (s === undefined) {
      s = this.create(nh, iface.index, NUD_INCOMPLETE);
      this.probesLeft[s] = this.probes;
      this.nextProbe[s] = this.now;
      this.ask(s);
      return -1;
    }
    const st = this.state[s]!;
    if (st === NUD_REACHABLE || st === NUD_STALE) return s;
    if (st === NUD_FAILED && this.now >= this.nextProbe[s]!) {
      // Try again: a frame for it is waiting (the kernel re-resolves on the next send too).
      this.state[s] = NUD_INCOMPLETE;
      this.probesLeft[s] = this.probes;
      this.nextProbe[s] = this.now;
      this.ask(s);
    }
    return -1;
  }

  private create(ip: number, ifindex: number, state: number): number {
    if (this.freeSlots.length === 0) this.index.pop(); // evicts the least recently used entry (dispose frees its slot)
    const s = this.freeSlots.pop()!;
    this.ip[s] = ip >>> 0;
    this.ifx[s] = ifindex;
    this.state[s] = state;
    this.confirmed[s] = 0;
    this.mac.fill(0, s * 6, s * 6 + 6);
    this.index.set(ip | 0, s);
    return s;
  }

  private freeSlot(s: number): void {
    this.state[s] = NUD_FREE;
    this.freeSlots.push(s);
    this.queued[s] = 0;
    this.changed(true);
  }

  private changed(shape: boolean): void {
    this.version++;
    this.macDirty = true;
    if (shape) this.gen = (this.gen + 1) >>> 0 || 1;
  }

  private ask(s: number): void {
    if (this.queued[s] === 1) return;
    this.queued[s] = 1;
    this.askQ[this.askN++] = s;
  }

  private rebuildMacIndex(): void {
    this.macDirty = false;
    let size = 16;
    while (size < this.capacity * 2) size <<= 1;
    if (this.macLo.length !== size) {
      this.macLo = new Uint32Array(size);
      this.macHi = new Uint16Array(size);
      this.macIfx = new Int32Array(size);
    } else {
      this.macIfx.fill(0);
    }
    const mask = size - 1;
    const m = this.mac;
    for (let s = 0; s < this.capacity; s++) {
      const st = this.state[s]!;
      if (st !== NUD_REACHABLE && st !== NUD_STALE) continue;
      const o = s * 6;
      const lo = ((m[o + 2]! << 24) | (m[o + 3]! << 16) | (m[o + 4]! << 8) | m[o + 5]!) >>> 0;
      const hi = (m[o]! << 8) | m[o + 1]!;
      let h = Math.imul(lo ^ hi, 0x9e3779b1) >>> 0 & mask;
      while (this.macIfx[h] !== 0 && !(this.macLo[h] === lo && this.macHi[h] === hi)) h = (h + 1) & mask;
      this.macLo[h] = lo;
      this.macHi[h] = hi;
      this.macIfx[h] = this.ifx[s]!;
    }
  }

  // ------------------------------------------------------------------ learning

  /**
   * Records that `ip` is at the MAC buf[macOff..+6) behind `ifindex`. `create`: add it
   * if unknown (else only known entries are updated, like the kernel's arp_process).
   */
  learn(ip: number, buf: Uint8Array, macOff: number, ifindex: number, create: boolean): void {
    ip >>>= 0;
    if (ip === 0 || this.ownIps.has(ip)) return;
    let s = this.index.get(ip | 0);
    if (s === undefined) {
      if (!create || !this.ifByIndex.has(ifindex)) return;
      s = this.create(ip, ifindex, NUD_INCOMPLETE);
    }
    const m = this.mac;
    const o = s * 6;
    const st = this.state[s]!;
    let same = st === NUD_REACHABLE || st === NUD_STALE;
    for (let k = 0; k < 6; k++) {
      if (m[o + k] !== buf[macOff + k]) { same = false; m[o + k] = buf[macOff + k]!; }
    }
    if (this.ifx[s] !== ifindex && this.ifByIndex.has(ifindex)) { this.ifx[s] = ifindex; same = false; }
    this.state[s] = NUD_REACHABLE;
    this.confirmed[s] = this.now;
    this.probesLeft[s] = 0;
    if (!same) {
      this.stats.learned++;
      this.changed(false);
    }
  }

  /**
   * Feeds one ARP frame seen on `ifindex`. `answered`: the engine turned this request
   * for a VIP into our reply in place, so the asker is now the frame's target.
   */
  observeArp(buf: Uint8Array, off: number, len: number, ifindex: number, answered: boolean): void {
    const v = this.arp;
    if (!readArp(buf, off, len, v)) return;
    if (answered) {
      this.learn(v.tpa, buf, v.thaOff, ifindex, true);
      return;
    }
    if (v.spa === 0) return; // address probes (RFC 5227) say nothing about the sender's address
    if (v.op === ARP_REPLY) this.learn(v.spa, buf, v.shaOff, ifindex, false);
    else if (v.op === ARP_REQUEST) this.learn(v.spa, buf, v.shaOff, ifindex, this.ownIps.has(v.tpa));
  }

  // ------------------------------------------------------------------ timers and requests

  /** Ages entries and schedules re-probes (call about once a second, between batches). */
  tick(now: number): void {
    this.now = now;
    const dead: number[] = [];
    for (let s = 0; s < this.capacity; s++) {
      const st = this.state[s]!;
      if (st === NUD_FREE) continue;
      if (st === NUD_INCOMPLETE) {
        if (now < this.nextProbe[s]!) continue;
        if (this.probesLeft[s]! > 0) this.ask(s);
        else {
          this.state[s] = NUD_FAILED;
          this.nextProbe[s] = now + this.retransTime;
          this.stats.failed++;
        }
      } else if (st === NUD_REACHABLE) {
        if (now - this.confirmed[s]! >= this.reachableTime) {
          this.state[s] = NUD_STALE;
          this.probesLeft[s] = this.probes;
          this.nextProbe[s] = now;
          this.ask(s);
        }
      } else if (st === NUD_STALE) {
        if (now < this.nextProbe[s]!) continue;
        if (this.probesLeft[s]! > 0) this.ask(s);
        else dead.push(s);
      } else if (st === NUD_FAILED) {
        if (now - this.nextProbe[s]! >= this.gcTime) dead.push(s);
      }
    }
    for (const s of dead) this.index.delete(this.ip[s]! | 0);
  }

  /** Writes the ARP requests due into `tx` (broadcast who-has; unicast re-probes for STALE). Returns how many. */
  drainRequests(tx: TxQueue): number {
    let n = 0;
    let k = 0;
    for (; k < this.askN; k++) {
      const s = this.askQ[k]!;
      if (this.queued[s] === 0) continue;
      const st = this.state[s]!;
      if (st !== NUD_INCOMPLETE && st !== NUD_STALE) { this.queued[s] = 0; continue; }
      const off = tx.reserve();
      if (off < 0) break; // full: the rest go next time
      this.queued[s] = 0;
      const iface = this.ifByIndex.get(this.ifx[s]!);
      if (iface === undefined) continue;
      let len: number;
      if (st === NUD_STALE) {
        len = writeArpRequest(tx.buf, off, iface.mac, iface.ip4, this.ip[s]!, this.mac.subarray(s * 6, s * 6 + 6));
      } else {
        len = writeArpRequest(tx.buf, off, iface.mac, iface.ip4, this.ip[s]!);
      }
      tx.commit(len, iface.index, -1);
      this.probesLeft[s] = this.probesLeft[s]! > 0 ? this.probesLeft[s]! - 1 : 0;
      this.nextProbe[s] = this.now + this.retransTime;
      this.stats.requests++;
      n++;
    }
    // Keep what did not fit.
    let w = 0;
    for (; k < this.askN; k++) this.askQ[w++] = this.askQ[k]!;
    this.askN = w;
    return n;
  }

  /** Whether requests are waiting for `drainRequests`. */
  get requestsPending(): boolean {
    return this.askN > 0;
  }

  // ------------------------------------------------------------------ control

  /** Replaces the routing table (a no-op when unchanged). */
  setRoutes(routes: RouteTable4): void {
    if (routes.signature === this.routes.signature) return;
    this.routes = routes;
    this.changed(true);
  }

  get routeTable(): RouteTable4 {
    return this.routes;
  }

  /** The interface a destination's route leaves through, or null (no route / not served). */
  interfaceFor(d: number): NeighIface | null {
    const r = this.routes.lookup(d);
    return r === null ? null : this.ifByName.get(r.ifname) ?? null;
  }

  /** The served interface with this kernel index. */
  iface(ifindex: number): NeighIface | undefined {
    return this.ifByIndex.get(ifindex);
  }

  get interfaces(): readonly NeighIface[] {
    return this.ifaces;
  }

  /** Every entry (diagnostics). */
  entries(): NeighEntry[] {
    const out: NeighEntry[] = [];
    for (let s = 0; s < this.capacity; s++) {
      const st = this.state[s]!;
      if (st === NUD_FREE) continue;
      out.push({
        ip: formatIp4(this.ip[s]!),
        mac: st === NUD_REACHABLE || st === NUD_STALE ? formatMac(this.mac, s * 6) : '',
        ifname: this.ifByIndex.get(this.ifx[s]!)?.name ?? String(this.ifx[s]),
        state: NUD_NAMES[st]!,
      });
    }
    return out;
  }

  get size(): number {
    return this.index.size;
  }
}
