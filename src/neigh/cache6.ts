/**
 * The director's IPv6 neighbour cache: next hops resolved with Neighbor Discovery
 * (RFC 4861), the IPv6 twin of the ARP cache. The NeighbourCache (cache.ts) owns
 * one and hands it every IPv6 lookup and NDP frame, so the engine still sees one
 * resolver.
 *
 * A destination's next hop is the destination itself when the kernel's IPv6
 * routes say it is on-link, else the route's gateway (neigh/routes6.ts); often a
 * link-local router address, so link-local next hops are keyed by address and
 * interface (fe80::1 on two links is two neighbours). States and timers are the
 * shared NUD machine (nud.ts). Probes are Neighbor Solicitations: to the
 * solicited-node group (33:33:ff:xx:xx:xx) while INCOMPLETE, unicast while STALE,
 * from an address of the egress interface (the one sharing the target's prefix,
 * else a global one, else the link-local one; :: when it has none).
 *
 * What feeds it (ndp.ts validates every frame first): advertisements for entries
 * it has (answers to our solicitations, and updates from neighbours we know —
 * though an advertisement without the Override flag never replaces a known MAC),
 * and solicitations carrying a source link-layer address: they create the asker's
 * entry when they name one of our addresses or a VIP (the engine answered those),
 * like the kernel, and refresh it otherwise.
 *
 * Hot path: `resolve6` hashes the four words into a direct-mapped cache of
 * (destination → slot) and copies six bytes; nothing is allocated. Misses take the
 * slow path (route lookup, a string key for the LRU index), which may allocate.
 */
import { NudTable, newNeighStats, NUD_INCOMPLETE, NUD_REACHABLE, NUD_STALE, type NeighIface, type NeighStats, type NudTiming } from './nud.js';
import { RouteTable6, samePrefix6, type Route6 } from './routes6.js';
import { NdView, ND_NA, NA_F_OVERRIDE, readAddr6, readNd, writeNs } from './ndp.js';
import { SCOPE6_HOST, SCOPE6_LINK, usable6 } from './addrs6.js';
import type { TxQueue } from '../io/batch.js';
import { Ip6Set, type Words6 } from '../util/ip6-set.js';
import { formatIp6 } from '../util/ip.js';

export interface NeighbourCache6Options extends NudTiming {
  ifaces: NeighIface[];
  /** Routing table (default: the interfaces' own IPv6 prefixes and fe80::/64, on-link). */
  routes6?: RouteTable6;
  /** Counters to add to (the owning NeighbourCache shares its own). */
  stats?: NeighStats;
  /** log2 of the destination cache size (default 12). */
  dstCacheBits6?: number;
}

function isLinkLocal(w0: number): boolean {
  return (w0 >>> 22) === 0x3fa; // fe80::/10
}

/** The LRU key of a next hop: its words, plus the interface for link-local addresses. */
function key6(a: Words6, ifindex: number): string {
  const k = `${a[0]!.toString(16)}:${a[1]!.toString(16)}:${a[2]!.toString(16)}:${a[3]!.toString(16)}`;
  return isLinkLocal(a[0]!) ? `${ifindex}%${k}` : k;
}

function onLinkRoutes6(ifaces: NeighIface[]): RouteTable6 {
  const r: Route6[] = [];
  for (const i of ifaces) {
    const addrs = i.ip6 ?? [];
    if (addrs.length === 0) continue;
    r.push({ dst: [0xfe800000, 0, 0, 0], prefix: 64, gateway: null, ifname: i.name, metric: 256 });
    for (const a of addrs) {
      if (isLinkLocal(a.addr[0]!) || a.scope === SCOPE6_HOST) continue;
      r.push({ dst: a.addr.slice(), prefix: a.prefix, gateway: null, ifname: i.name, metric: 256 });
    }
  }
  return new RouteTable6(r);
}

export class NeighbourCache6 extends NudTable<string> {
  private routes: RouteTable6;
  /** Our own addresses: never learned as neighbours; solicitations for them create the asker's entry. */
  private readonly own: Ip6Set;
  /** Slot addresses, four words each. */
  private readonly ip: Uint32Array;

  // Destination → slot, direct-mapped (four key words per line); lines of an older generation are misses.
  private readonly dcKey: Uint32Array;
  private readonly dcSlot: Int32Array;
  private readonly dcGen: Uint32Array;
  private readonly dcShift: number;

  private readonly nd = new NdView();
  private readonly addrTmp = new Uint32Array(4);
  private readonly hopTmp = new Uint32Array(4);
  private readonly probeTmp = new Uint32Array(4);
  private readonly srcTmp = new Uint32Array(4);

  constructor(opts: NeighbourCache6Options) {
    super(opts.ifaces, opts, opts.stats ?? newNeighStats());
    this.routes = opts.routes6 ?? onLinkRoutes6(opts.ifaces);
    const own: Words6[] = [];
    for (const i of opts.ifaces) for (const a of i.ip6 ?? []) own.push(a.addr);
    this.own = new Ip6Set(own);
    this.ip = new Uint32Array(this.capacity * 4);
    const bits = opts.dstCacheBits6 ?? 12;
    this.dcKey = new Uint32Array((1 << bits) * 4);
    this.dcSlot = new Int32Array(1 << bits);
    this.dcGen = new Uint32Array(1 << bits);
    this.dcShift = 32 - bits;
  }

  /** Bumped when an entry becomes usable, changes MAC or goes away, and when routes change. */
  get version(): number {
    return this.ver;
  }

  /** Current time (seconds on the director's clock). */
  get now(): number {
    return this.t;
  }

  set now(t: number) {
    this.t = t;
  }

  // ------------------------------------------------------------------ hot path

  /** Writes the next-hop MAC of IPv6 destination `a` (four words) at out[outOff..+6); false while unresolved. */
  resolve6(a: Uint32Array, out: Uint8Array, outOff: number): boolean {
    const w0 = a[0]!, w1 = a[1]!, w2 = a[2]!, w3 = a[3]!;
    const mixed = Math.imul(w3, 0x9e3779b1) ^ Math.imul(w2, 0x85ebca6b) ^ Math.imul(w1, 0xc2b2ae35) ^ w0;
    const h = Math.imul(mixed, 0x9e3779b1) >>> this.dcShift;
    const k = h << 2;
    const dk = this.dcKey;
    let s: number;
    if (this.dcGen[h] === this.gen && dk[k] === w0 && dk[k + 1] === w1 && dk[k + 2] === w2 && dk[k + 3] === w3) {
      s = this.dcSlot[h]!;
    } else {
      s = this.lookupSlow(a);
      if (s < 0) { this.stats.unresolved++; return false; }
      dk[k] = w0; dk[k + 1] = w1; dk[k + 2] = w2; dk[k + 3] = w3;
      this.dcGen[h] = this.gen;
      this.dcSlot[h] = s;
    }
    const m = this.mac;
    const o = s * 6;
    out[outOff] = m[o]!; out[outOff + 1] = m[o + 1]!; out[outOff + 2] = m[o + 2]!;
    out[outOff + 3] = m[o + 3]!; out[outOff + 4] = m[o + 4]!; out[outOff + 5] = m[o + 5]!;
    return true;
  }

  // ------------------------------------------------------------------ slow path

  private lookupSlow(a: Uint32Array): number {
    const r = this.routes.lookup(a);
    const iface = r === null ? undefined : this.ifByName.get(r.ifname);
    if (r === null || iface === undefined) { this.stats.noRoute++; return -1; }
    const nh = this.hopTmp;
    const g = r.gateway ?? a;
    nh[0] = g[0]!; nh[1] = g[1]!; nh[2] = g[2]!; nh[3] = g[3]!;
    const key = key6(nh, iface.index);
    const s = this.slotOf(key);
    if (s === undefined) {
      this.setAddr(this.startResolve(key, iface.index), nh);
      return -1;
    }
    return this.usableOrRetry(s);
  }

  private setAddr(s: number, a: Words6): void {
    const o = s * 4;
    this.ip[o] = a[0]!; this.ip[o + 1] = a[1]!; this.ip[o + 2] = a[2]!; this.ip[o + 3] = a[3]!;
  }

  // ------------------------------------------------------------------ learning

  /**
   * Records that `a` is at the MAC buf[macOff..+6) behind `ifindex`. `create`: add it if
   * unknown (else only known entries are updated). `override` false: a known, usable
   * entry keeps its MAC if this one differs (RFC 4861 7.2.5, advertisement without O).
   */
  learn(a: Words6, buf: Uint8Array, macOff: number, ifindex: number, create: boolean, override = true): void {
    const w0 = a[0]! >>> 0;
    if ((w0 | a[1]! | a[2]! | a[3]!) === 0 || (w0 >>> 24) === 0xff || this.own.hasWords(a)) return;
    const key = key6(a, ifindex);
    let s = this.slotOf(key);
    if (s === undefined) {
      if (!create || !this.ifByIndex.has(ifindex)) return;
      s = this.create(key, ifindex, NUD_INCOMPLETE);
      this.setAddr(s, a);
    } else if (!override) {
      const st = this.state[s]!;
      if (st === NUD_REACHABLE || st === NUD_STALE) {
        for (let k = 0; k < 6; k++) if (this.mac[s * 6 + k] !== buf[macOff + k]) return;
      }
    }
    this.confirm(s, buf, macOff, ifindex);
  }

  /**
   * Feeds one NDP frame seen on `ifindex`. `answered`: the engine turned this
   * solicitation for a VIP into our advertisement in place, so the asker is now
   * the frame's destination (Ethernet and IPv6).
   */
  observeNd(buf: Uint8Array, off: number, len: number, ifindex: number, answered: boolean): void {
    const v = this.nd;
    if (!readNd(buf, off, len, v)) return;
    const a = this.addrTmp;
    if (answered) {
      if (v.type !== ND_NA || buf[v.dstOff] === 0xff) return; // sent to all nodes: the asker had no address yet
      readAddr6(buf, v.dstOff, a);
      this.learn(a, buf, off, ifindex, true);
      return;
    }
    if (v.llaOff < 0) return; // no link-layer address: nothing to learn (reachability alone is not tracked)
    if (v.type === ND_NA) {
      readAddr6(buf, v.targetOff, a);
      this.learn(a, buf, v.llaOff, ifindex, false, (v.flags & NA_F_OVERRIDE) !== 0);
    } else {
      readAddr6(buf, v.srcOff, a);
      this.learn(a, buf, v.llaOff, ifindex, this.own.hasAt(buf, v.targetOff));
    }
  }

  // ------------------------------------------------------------------ probes

  /** Source for a solicitation of `target` leaving `iface`, in srcTmp; null when the interface has no usable address. */
  private sourceFor(iface: NeighIface, target: Words6): Uint32Array | null {
    const addrs = iface.ip6 ?? [];
    let pick: number[] | null = null;
    let rank = 0;
    const ll = isLinkLocal(target[0]!);
    for (const x of addrs) {
      if (!usable6(x)) continue;
      const xll = x.scope === SCOPE6_LINK;
      // Link-local targets are asked from our link-local address; others preferably from one on their prefix.
      const r = ll ? (xll ? 3 : 1) : xll ? 1 : samePrefix6(x.addr, target, x.prefix) ? 3 : 2;
      if (r > rank) { rank = r; pick = x.addr; }
    }
    if (pick === null) return null;
    const s = this.srcTmp;
    s[0] = pick[0]!; s[1] = pick[1]!; s[2] = pick[2]!; s[3] = pick[3]!;
    return s;
  }

  protected writeProbe(tx: TxQueue, off: number, s: number, iface: NeighIface, unicast: Uint8Array | null): number {
    if (iface.mac.length !== 6) return 0;
    const t = this.probeTmp;
    const o = s * 4;
    t[0] = this.ip[o]!; t[1] = this.ip[o + 1]!; t[2] = this.ip[o + 2]!; t[3] = this.ip[o + 3]!;
    return writeNs(tx.buf, off, iface.mac, this.sourceFor(iface, t), t, unicast);
  }

  protected formatAddr(s: number): string {
    const o = s * 4;
    return formatIp6(this.ip[o]!, this.ip[o + 1]!, this.ip[o + 2]!, this.ip[o + 3]!);
  }

  // ------------------------------------------------------------------ control

  /** Replaces the routing table (a no-op when unchanged). */
  setRoutes(routes: RouteTable6): void {
    if (routes.signature === this.routes.signature) return;
    this.routes = routes;
    this.changed(true);
  }

  get routeTable(): RouteTable6 {
    return this.routes;
  }

  /** Whether `a` is one of the served interfaces' addresses. */
  isOwn(a: Words6): boolean {
    return this.own.hasWords(a);
  }
}
