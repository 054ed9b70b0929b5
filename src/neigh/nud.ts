/**
 * Neighbour Unreachability Detection, the part of the kernel's neighbour layer
 * that ARP (IPv4) and NDP (IPv6) share: a bounded table of next hops, each with a
 * MAC, an egress interface, a state and timers, and a queue of probes to send.
 * The ARP cache (cache.ts) and the NDP cache (cache6.ts) extend it with how they
 * key, look up, write probes for and print their addresses.
 *
 * Next hops live in slots of typed arrays; an LRU index (lru-cache) maps key →
 * slot and bounds the table: when it is full the least recently used entry goes.
 * States (a small version of the kernel's NUD machine):
 *   INCOMPLETE  — asked (multicast/broadcast, up to `probes` times, `retransTime` apart),
 *   REACHABLE   — answered less than `reachableTime` ago,
 *   STALE       — older: still used, re-probed (unicast) up to `probes` times; deleted if silent,
 *   FAILED      — never answered: not retried for `retransTime`, dropped after `gcTime`.
 */
import { LRUCache } from 'lru-cache';
import type { TxQueue } from '../io/batch.js';
import { formatMac } from '../util/mac.js';
import type { IfAddr6 } from './addrs6.js';

export interface NeighIface {
  /** Kernel ifindex (what batches carry). */
  index: number;
  name: string;
  mac: Uint8Array;
  /** Primary IPv4 address (source of our ARP requests), 0 when the interface has none. */
  ip4: number;
  prefix: number;
  /** IPv6 addresses (sources of our Neighbor Solicitations); none = no IPv6 next hops here. */
  ip6?: readonly IfAddr6[];
}

export interface NudTiming {
  /** Maximum entries (default 4096). */
  capacity?: number;
  /** Seconds an answer counts as fresh (kernel base_reachable_time: 30). */
  reachableTime?: number;
  /** Seconds between probes (kernel retrans_time: 1). */
  retransTime?: number;
  /** Probes before giving up (kernel mcast_solicit / ucast_solicit: 3). */
  probes?: number;
  /** Seconds a FAILED entry is kept (so a flood of frames to a dead host does not flood probes). */
  gcTime?: number;
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

/** Counters (plain numbers; the data plane copies them into shared memory). Shared by both families. */
export interface NeighStats {
  /** Frames whose next hop was not resolved yet (the engine drops or the data plane queues them). */
  unresolved: number;
  /** Destinations without a route, or whose route leaves through an interface we do not serve. */
  noRoute: number;
  /** Next hops of a family the cache cannot resolve (kept for the counter layout; IPv6 has NDP now). */
  unsupported: number;
  /** ARP requests and Neighbor Solicitations written (first asks and re-probes). */
  requests: number;
  /** Entries created or changed from ARP / NDP frames seen. */
  learned: number;
  /** Next hops that never answered. */
  failed: number;
}

export function newNeighStats(): NeighStats {
  return { unresolved: 0, noRoute: 0, unsupported: 0, requests: 0, learned: 0, failed: 0 };
}

export abstract class NudTable<K> {
  readonly stats: NeighStats;
  readonly capacity: number;
  /** Current time (seconds on the director's clock). */
  protected t = 0;
  /** Bumped when an entry becomes usable, changes MAC or goes away (and by subclasses when routes change). */
  protected ver = 0;
  /** Bumped when slots may have been reassigned: per-destination caches of older generations are stale. */
  protected gen = 1;

  protected readonly ifaces: NeighIface[];
  protected readonly ifByName = new Map<string, NeighIface>();
  protected readonly ifByIndex = new Map<number, NeighIface>();
  private readonly reachableTime: number;
  private readonly retransTime: number;
  private readonly probes: number;
  private readonly gcTime: number;

  // Slots.
  protected readonly mac: Uint8Array;
  protected readonly ifx: Int32Array;
  protected readonly state: Uint8Array;
  private readonly confirmed: Float64Array;
  private readonly nextProbe: Float64Array;
  private readonly probesLeft: Uint8Array;
  private readonly keys: (K | undefined)[];
  private readonly freeSlots: number[] = [];
  private readonly index: LRUCache<K & {}, number>;

  // Probes to write at the next drain.
  private readonly askQ: Int32Array;
  private readonly queued: Uint8Array;
  private askN = 0;

  // MAC → egress ifindex (rebuilt lazily after changes), open addressing.
  private macLo = new Uint32Array(0);
  private macHi = new Uint16Array(0);
  private macIfx = new Int32Array(0);
  private macDirty = true;

  constructor(ifaces: NeighIface[], opts: NudTiming, stats: NeighStats) {
    this.ifaces = ifaces;
    for (const i of ifaces) {
      this.ifByName.set(i.name, i);
      this.ifByIndex.set(i.index, i);
    }
    this.stats = stats;
    const cap = opts.capacity ?? 4096;
    this.capacity = cap;
    this.reachableTime = opts.reachableTime ?? 30;
    this.retransTime = opts.retransTime ?? 1;
    this.probes = opts.probes ?? 3;
    this.gcTime = opts.gcTime ?? 60;
    this.mac = new Uint8Array(cap * 6);
    this.ifx = new Int32Array(cap);
    this.state = new Uint8Array(cap);
    this.confirmed = new Float64Array(cap);
    this.nextProbe = new Float64Array(cap);
    this.probesLeft = new Uint8Array(cap);
    this.keys = new Array<K | undefined>(cap);
    for (let s = cap - 1; s >= 0; s--) this.freeSlots.push(s);
    this.askQ = new Int32Array(cap);
    this.queued = new Uint8Array(cap);
    this.index = new LRUCache<K & {}, number>({
      max: cap,
      dispose: (slot) => this.freeSlot(slot),
    });
  }

  /** Writes a probe for slot `s` at tx.buf[off..): multicast/broadcast, or unicast to `unicast`. Returns its length (0: cannot). */
  protected abstract writeProbe(tx: TxQueue, off: number, s: number, iface: NeighIface, unicast: Uint8Array | null): number;

  /** The slot's address as text (diagnostics). */
  protected abstract formatAddr(s: number): string;

  // ------------------------------------------------------------------ slots

  /** The slot of `key` (marking it recently used), or undefined. */
  protected slotOf(key: K & {}): number | undefined {
    return this.index.get(key);
  }

  protected create(key: K & {}, ifindex: number, state: number): number {
    if (this.freeSlots.length === 0) this.index.pop(); // evicts the least recently used entry (dispose frees its slot)
    const s = this.freeSlots.pop()!;
    this.keys[s] = key;
    this.ifx[s] = ifindex;
    this.state[s] = state;
    this.confirmed[s] = 0;
    this.mac.fill(0, s * 6, s * 6 + 6);
    this.index.set(key, s);
    return s;
  }

  private freeSlot(s: number): void {
    this.state[s] = NUD_FREE;
    this.keys[s] = undefined;
    this.freeSlots.push(s);
    this.queued[s] = 0;
    this.changed(true);
  }

  protected changed(shape: boolean): void {
    this.ver++;
    this.macDirty = true;
    if (shape) this.gen = (this.gen + 1) >>> 0 || 1;
  }

  private ask(s: number): void {
    if (this.queued[s] === 1) return;
    this.queued[s] = 1;
    this.askQ[this.askN++] = s;
  }

  /**
   * A new INCOMPLETE entry for next hop `key` behind `ifindex`, with its first probe
   * queued. The caller records the address in its own arrays before the next drain.
   */
  protected startResolve(key: K & {}, ifindex: number): number {
    const s = this.create(key, ifindex, NUD_INCOMPLETE);
    this.probesLeft[s] = this.probes;
    this.nextProbe[s] = this.t;
    this.ask(s);
    return s;
  }

  /** `s` when its MAC may be used, else -1 (a FAILED entry is retried once `retransTime` has passed). */
  protected usableOrRetry(s: number): number {
    const st = this.state[s]!;
    if (st === NUD_REACHABLE || st === NUD_STALE) return s;
    if (st === NUD_FAILED && this.t >= this.nextProbe[s]!) {
      // Try again: a frame for it is waiting (the kernel re-resolves on the next send too).
      this.state[s] = NUD_INCOMPLETE;
      this.probesLeft[s] = this.probes;
      this.nextProbe[s] = this.t;
      this.ask(s);
    }
    return -1;
  }

  /** Records that slot `s` is at the MAC buf[macOff..+6) behind `ifindex`, answered just now. */
  protected confirm(s: number, buf: Uint8Array, macOff: number, ifindex: number): void {
    const m = this.mac;
    const o = s * 6;
    const st = this.state[s]!;
    let same = st === NUD_REACHABLE || st === NUD_STALE;
    for (let k = 0; k < 6; k++) {
      if (m[o + k] !== buf[macOff + k]) { same = false; m[o + k] = buf[macOff + k]!; }
    }
    if (this.ifx[s] !== ifindex && this.ifByIndex.has(ifindex)) { this.ifx[s] = ifindex; same = false; }
    this.state[s] = NUD_REACHABLE;
    this.confirmed[s] = this.t;
    this.probesLeft[s] = 0;
    if (!same) {
      this.stats.learned++;
      this.changed(false);
    }
  }

  // ------------------------------------------------------------------ MAC → interface

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

  // ------------------------------------------------------------------ timers and probes

  /** Ages entries and schedules re-probes (call about once a second, between batches). */
  tick(now: number): void {
    this.t = now;
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
    for (const s of dead) this.index.delete(this.keys[s]!);
  }

  /** Writes the probes due into `tx` (multicast/broadcast for INCOMPLETE, unicast for STALE). Returns how many. */
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
      const len = this.writeProbe(tx, off, s, iface, st === NUD_STALE ? this.mac.subarray(s * 6, s * 6 + 6) : null);
      if (len <= 0) continue;
      tx.commit(len, iface.index, -1);
      this.probesLeft[s] = this.probesLeft[s]! > 0 ? this.probesLeft[s]! - 1 : 0;
      this.nextProbe[s] = this.t + this.retransTime;
      this.stats.requests++;
      n++;
    }
    // Keep what did not fit.
    let w = 0;
    for (; k < this.askN; k++) this.askQ[w++] = this.askQ[k]!;
    this.askN = w;
    return n;
  }

  /** Whether probes are waiting for `drainRequests`. */
  get requestsPending(): boolean {
    return this.askN > 0;
  }

  // ------------------------------------------------------------------ diagnostics

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
        ip: this.formatAddr(s),
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
