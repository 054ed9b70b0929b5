/**
 * The director's neighbour cache and next-hop resolver. It implements
 * NextHopResolver, so the engine uses it exactly like the static table. IPv4 next
 * hops are resolved here with ARP; IPv6 ones by the NDP cache it owns (`v6`,
 * cache6.ts), so the engine and the data plane still see one resolver, one version
 * number and one set of counters.
 *
 * A destination's next hop is the destination itself when the kernel's routing
 * table says it is on-link, else the route's gateway (neigh/routes.ts). Entries
 * follow the NUD machine shared with IPv6 (nud.ts: INCOMPLETE, REACHABLE, STALE,
 * FAILED); probes are broadcast who-has requests (unicast to re-probe a STALE one).
 * What feeds it: ARP replies to our requests (and any ARP from a host we already
 * know), and ARP requests for our addresses or VIPs — like the kernel, which
 * creates an entry for whoever asks for one of its addresses.
 *
 * Hot path: `resolve` finds the destination's route (RouteTable4.indexOf, mostly
 * one load by first octet), then the slot of its next hop: for a route through a
 * gateway, the slot remembered per route — every destination behind the gateway
 * shares it, so a hundred thousand clients cost no more than one; for an on-link
 * route, a direct-mapped cache of (destination → slot). Then it copies six bytes;
 * nothing is allocated. Misses take the slow path (LRU index), which may allocate —
 * once per next hop, and again only after the cache changed shape (an entry
 * deleted, routes changed).
 */
import type { NextHopResolver } from './static.js';
import { RouteTable4, type Route4 } from './routes.js';
import type { RouteTable6 } from './routes6.js';
import { ArpView, ARP_REPLY, ARP_REQUEST, readArp, writeArpRequest } from './arp.js';
import { NeighbourCache6 } from './cache6.js';
import { NudTable, newNeighStats, NUD_INCOMPLETE, type NeighEntry, type NeighIface, type NudTiming } from './nud.js';
import type { TxQueue } from '../io/batch.js';
import { formatIp4 } from '../util/ip.js';
import { writeMacWords } from '../util/mac.js';

export {
  NUD_FREE, NUD_INCOMPLETE, NUD_REACHABLE, NUD_STALE, NUD_FAILED,
  type NeighEntry, type NeighIface, type NeighStats,
} from './nud.js';

export interface NeighbourCacheOptions extends NudTiming {
  ifaces: NeighIface[];
  /** Routing table (default: only the interfaces' own subnets, on-link). */
  routes?: RouteTable4;
  /** IPv6 routing table (default: the interfaces' own IPv6 prefixes, on-link). */
  routes6?: RouteTable6;
  /** log2 of the destination cache size (default 14). */
  dstCacheBits?: number;
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

export class NeighbourCache extends NudTable<number> implements NextHopResolver {
  /** The IPv6 next hops (NDP), sharing this cache's counters and clock. */
  readonly v6: NeighbourCache6;

  private routes: RouteTable4;
  private readonly ownIps = new Set<number>();
  /** Slot addresses. */
  private readonly ip: Uint32Array;

  // Destination → slot for on-link destinations, direct-mapped; entries of an older generation are misses.
  private readonly dcKey: Uint32Array;
  private readonly dcSlot: Int32Array;
  private readonly dcGen: Uint32Array;
  private readonly dcShift: number;

  // Per route of `routes` (same index): the egress ifindex (-1: an interface we do not serve),
  // the gateway (0: on-link), and the gateway's slot, valid while rtGen is the current generation.
  private rtIfx = new Int32Array(0);
  private rtGw = new Uint32Array(0);
  private rtSlot = new Int32Array(0);
  private rtGen = new Uint32Array(0);
  /** Set when rtSlot answered a frame: tick() then marks the gateway recently used (see touchGateways). */
  private rtUsed = new Uint8Array(0);

  private readonly arp = new ArpView();
  /** The slots' MACs (NudTable.mac), read as words by resolve. */
  private readonly macView: DataView;

  constructor(opts: NeighbourCacheOptions) {
    super(opts.ifaces, opts, newNeighStats());
    for (const i of opts.ifaces) if (i.ip4 !== 0) this.ownIps.add(i.ip4);
    this.routes = opts.routes ?? onLinkRoutes(opts.ifaces);
    this.indexRoutes();
    this.ip = new Uint32Array(this.capacity);
    this.macView = new DataView(this.mac.buffer, this.mac.byteOffset, this.mac.byteLength);
    const bits = opts.dstCacheBits ?? 14;
    this.dcKey = new Uint32Array(1 << bits);
    this.dcSlot = new Int32Array(1 << bits);
    this.dcGen = new Uint32Array(1 << bits);
    this.dcShift = 32 - bits;
    this.v6 = new NeighbourCache6({ ...opts, stats: this.stats });
  }

  /** Bumped when an entry (of either family) becomes usable, changes MAC or goes away, and when routes change. */
  get version(): number {
    return this.ver + this.v6.version;
  }

  /** Current time (seconds on the director's clock); the data plane sets it before each batch. */
  get now(): number {
    return this.t;
  }

  set now(t: number) {
    this.t = t;
    this.v6.now = t;
  }

  // ------------------------------------------------------------------ hot path

  resolve(af: 4 | 6, a: Uint32Array, out: Uint8Array, outOff: number): boolean {
    if (af !== 4) return this.v6.resolve6(a, out, outOff);
    const d = a[0]! >>> 0;
    const k = this.routes.indexOf(d);
    if (k < 0 || this.rtIfx[k]! < 0) { this.stats.noRoute++; this.stats.unresolved++; return false; }
    const gw = this.rtGw[k]!;
    let s: number;
    if (gw !== 0) {
      if (this.rtGen[k] === this.gen) {
        s = this.rtSlot[k]!;
        this.rtUsed[k] = 1;
      } else {
        s = this.hopSlot(gw, k);
        if (s < 0) { this.stats.unresolved++; return false; }
        this.rtGen[k] = this.gen;
        this.rtSlot[k] = s;
      }
    } else {
      const h = Math.imul(d, 0x9e3779b1) >>> this.dcShift;
      if (this.dcKey[h] === d && this.dcGen[h] === this.gen) {
        s = this.dcSlot[h]!;
      } else {
        s = this.hopSlot(d, k);
        if (s < 0) { this.stats.unresolved++; return false; }
        this.dcKey[h] = d;
        this.dcGen[h] = this.gen;
        this.dcSlot[h] = s;
      }
    }
    // Two loads (a DataView over the slots' MACs) rather than six checked byte loads.
    const o = s * 6;
    const hi = this.macView.getUint16(o);
    const lo = this.macView.getUint32(o + 2);
    writeMacWords(out, outOff, hi, lo);
    return true;
  }

  /** Egress ifindex of the neighbour (IPv4 or IPv6) whose MAC is at buf[off..off+6), 0 when unknown. */
  override egressFor(buf: Uint8Array, off: number): number {
    const x = super.egressFor(buf, off);
    return x !== 0 ? x : this.v6.egressFor(buf, off);
  }

  // ------------------------------------------------------------------ slow path

  /** The slot of next hop `nh` (route k's gateway, or the destination) when usable, else -1 (asked for if new). */
  private hopSlot(nh: number, k: number): number {
    const s = this.slotOf(nh | 0);
    if (s === undefined) {
      this.ip[this.startResolve(nh | 0, this.rtIfx[k]!)] = nh >>> 0;
      return -1;
    }
    return this.usableOrRetry(s);
  }

  /** Rebuilds the per-route arrays for `routes` (constructor, setRoutes). */
  private indexRoutes(): void {
    const list = this.routes.list();
    const n = list.length;
    this.rtIfx = new Int32Array(n);
    this.rtGw = new Uint32Array(n);
    this.rtSlot = new Int32Array(n);
    this.rtGen = new Uint32Array(n); // 0 is never a generation: nothing cached yet
    this.rtUsed = new Uint8Array(n);
    for (let k = 0; k < n; k++) {
      const r = list[k]!;
      this.rtIfx[k] = this.ifByName.get(r.ifname)?.index ?? -1;
      this.rtGw[k] = r.gateway >>> 0;
    }
  }

  /**
   * Marks the gateways that answered frames since the last tick recently used in the LRU
   * index. A destination resolved through the index marks its next hop; those answered by
   * rtSlot skip the index, and without this a busy gateway could be evicted first when the
   * table is full.
   */
  private touchGateways(): void {
    for (let k = 0; k < this.rtUsed.length; k++) {
      if (this.rtUsed[k] === 0) continue;
      this.rtUsed[k] = 0;
      if (this.rtGen[k] === this.gen) this.slotOf(this.rtGw[k]! | 0);
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
    let s = this.slotOf(ip | 0);
    if (s === undefined) {
      if (!create || !this.ifByIndex.has(ifindex)) return;
      s = this.create(ip | 0, ifindex, NUD_INCOMPLETE);
      this.ip[s] = ip;
    }
    this.confirm(s, buf, macOff, ifindex);
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

  /** Feeds one NDP frame seen on `ifindex` to the IPv6 cache (see NeighbourCache6.observeNd). */
  observeNd(buf: Uint8Array, off: number, len: number, ifindex: number, answered: boolean): void {
    this.v6.observeNd(buf, off, len, ifindex, answered);
  }

  // ------------------------------------------------------------------ timers and requests

  /** Ages entries of both families and schedules re-probes (call about once a second, between batches). */
  override tick(now: number): void {
    this.touchGateways();
    super.tick(now);
    this.v6.tick(now);
  }

  /** Writes the ARP requests and Neighbor Solicitations due into `tx`. Returns how many. */
  override drainRequests(tx: TxQueue): number {
    return super.drainRequests(tx) + this.v6.drainRequests(tx);
  }

  /** Whether requests are waiting for `drainRequests`. */
  override get requestsPending(): boolean {
    return super.requestsPending || this.v6.requestsPending;
  }

  protected writeProbe(tx: TxQueue, off: number, s: number, iface: NeighIface, unicast: Uint8Array | null): number {
    return writeArpRequest(tx.buf, off, iface.mac, iface.ip4, this.ip[s]!, unicast);
  }

  protected formatAddr(s: number): string {
    return formatIp4(this.ip[s]!);
  }

  // ------------------------------------------------------------------ control

  /** Replaces the routing table (a no-op when unchanged). */
  setRoutes(routes: RouteTable4): void {
    if (routes.signature === this.routes.signature) return;
    this.routes = routes;
    this.indexRoutes();
    this.changed(true);
  }

  /** Replaces the IPv6 routing table (a no-op when unchanged). */
  setRoutes6(routes: RouteTable6): void {
    this.v6.setRoutes(routes);
  }

  get routeTable(): RouteTable4 {
    return this.routes;
  }

  /** The interface a destination's route leaves through, or null (no route / not served). */
  interfaceFor(d: number): NeighIface | null {
    const r = this.routes.lookup(d);
    return r === null ? null : this.ifByName.get(r.ifname) ?? null;
  }

  /** Every entry, IPv4 then IPv6 (diagnostics). */
  override entries(): NeighEntry[] {
    return [...super.entries(), ...this.v6.entries()];
  }

  override get size(): number {
    return super.size + this.v6.size;
  }
}
