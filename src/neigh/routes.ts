/**
 * The kernel's IPv4 main routing table, read into memory so the data plane can
 * pick the next hop of a new destination synchronously (longest prefix match):
 * the destination itself when it is on-link, else the gateway the kernel names
 * for it. Read from /proc/net/route (per network namespace, cheap, no process to
 * spawn) or parsed from `ip -j -4 route show table main`. Control plane only: the
 * hot path never calls this — the neighbour cache remembers each destination's
 * next hop (neigh/cache.ts).
 *
 * Not modelled: policy routing (ip rule), multipath routes (the first hop is
 * used), routes in tables other than main, metrics beyond "lowest wins".
 */
import { readFileSync } from 'node:fs';
import { parseIp4 } from '../util/ip.js';

export interface Route4 {
  /** Network address (host-order uint32) and prefix length. */
  dst: number;
  prefix: number;
  /** Gateway (host order), or 0 for on-link routes. */
  gateway: number;
  ifname: string;
  metric: number;
}

function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** byOctet value: more than one route may apply inside this /8, walk the list. */
const WALK = -2;

/**
 * Longest-prefix-match lookup over a (small) list of routes. The neighbour cache
 * looks up every destination it has not cached (each client of a NAT reply), so
 * the match is over typed arrays, and a table by first octet answers at once for
 * the /8s that no route longer than /8 starts in — for a usual table (a default
 * route, a few on-link subnets) that is nearly every address on the Internet.
 */
export class RouteTable4 {
  private readonly routes: Route4[];
  /** Text that changes whenever the routes do (to skip no-op refreshes). */
  readonly signature: string;
  // routes[k]'s network and mask, in the same (match) order.
  private readonly dst: Uint32Array;
  private readonly mask: Uint32Array;
  /** By first octet: the index of the route every address of that /8 takes (-1: none), or WALK. */
  private readonly byOctet = new Int32Array(256);

  constructor(routes: Route4[]) {
    // Longest prefix first; among equal prefixes the lowest metric wins (the kernel's fib order).
    this.routes = routes.slice().sort((a, b) => b.prefix - a.prefix || a.metric - b.metric);
    this.signature = this.routes.map((r) => `${r.dst}/${r.prefix}>${r.gateway}@${r.ifname}:${r.metric}`).join(',');
    const n = this.routes.length;
    this.dst = new Uint32Array(n);
    this.mask = new Uint32Array(n);
    for (let k = 0; k < n; k++) {
      const r = this.routes[k]!;
      this.mask[k] = prefixMask(r.prefix);
      this.dst[k] = r.dst >>> 0;
    }
    // A /8 in which no route longer than /8 starts is matched, all of it, by the same routes
    // (a /8 or shorter one covers all of it or none): its answer is its first address's.
    for (let o = 0; o < 256; o++) this.byOctet[o] = this.walk((o << 24) >>> 0);
    for (let k = 0; k < n; k++) {
      const r = this.routes[k]!;
      if (r.prefix > 8) this.byOctet[this.dst[k]! >>> 24] = WALK;
    }
  }

  get size(): number {
    return this.routes.length;
  }

  lookup(dst: number): Route4 | null {
    const k = this.indexOf(dst);
    return k < 0 ? null : this.routes[k]!;
  }

  /** The index in list() of the route `dst` takes, or -1 when none does. */
  indexOf(dst: number): number {
    const d = dst >>> 0;
    const k = this.byOctet[d >>> 24]!;
    return k !== WALK ? k : this.walk(d);
  }

  private walk(d: number): number {
    const dst = this.dst;
    const mask = this.mask;
    for (let k = 0; k < dst.length; k++) {
      if (((d & mask[k]!) >>> 0) === dst[k]) return k;
    }
    return -1;
  }

  list(): readonly Route4[] {
    return this.routes;
  }
}

/** Reads little-endian hex as /proc/net/route prints addresses (network order bytes in host-endian words). */
function procHexAddr(hex: string): number {
  const v = Number.parseInt(hex, 16) >>> 0;
  // The kernel prints the __be32 as a native (little-endian here) integer: swap the bytes.
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

function maskToPrefix(mask: number): number {
  let n = 0;
  for (let m = mask >>> 0; (m & 0x80000000) !== 0; m = (m << 1) >>> 0) n++;
  return n;
}

const RTF_UP = 0x0001;
const RTF_GATEWAY = 0x0002;
const RTF_REJECT = 0x0200;

/** Parses /proc/net/route (the main table of the reading thread's network namespace). */
export function parseProcNetRoute(text: string): Route4[] {
  const out: Route4[] = [];
  const lines = text.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i]!.trim().split(/\s+/);
    if (f.length < 8) continue;
    const flags = Number.parseInt(f[3]!, 16);
    if ((flags & RTF_UP) === 0 || (flags & RTF_REJECT) !== 0) continue;
    const mask = procHexAddr(f[7]!);
    const prefix = maskToPrefix(mask);
    out.push({
      ifname: f[0]!,
      dst: (procHexAddr(f[1]!) & prefixMask(prefix)) >>> 0,
      prefix,
      gateway: (flags & RTF_GATEWAY) !== 0 ? procHexAddr(f[2]!) : 0,
      metric: Number(f[6]),
    });
  }
  return out;
}

/** Parses `ip -j -4 route show table main` (unicast routes only). */
export function parseIpRouteJson(text: string): Route4[] {
  const rows = JSON.parse(text) as Array<{
    type?: string; dst: string; gateway?: string; dev?: string; metric?: number;
    nexthops?: Array<{ gateway?: string; dev?: string }>;
  }>;
  const out: Route4[] = [];
  for (const r of rows) {
    if (r.type !== undefined && r.type !== 'unicast') continue;
    let dst = 0;
    let prefix = 0;
    if (r.dst !== 'default') {
      const [a, p] = r.dst.split('/');
      const ip = parseIp4(a!);
      if (ip === null) continue;
      prefix = p === undefined ? 32 : Number(p);
      dst = (ip & prefixMask(prefix)) >>> 0;
    }
    // Multipath: the first hop (ulvs does not spread next hops).
    const hop = r.nexthops?.[0] ?? r;
    const dev = hop.dev ?? r.dev;
    if (dev === undefined) continue;
    const gw = hop.gateway !== undefined ? parseIp4(hop.gateway) : null;
    out.push({ dst, prefix, gateway: gw ?? 0, ifname: dev, metric: r.metric ?? 0 });
  }
  return out;
}

/**
 * The calling thread's namespace's main IPv4 table ([] when unreadable). Through
 * /proc/thread-self: /proc/net is the main thread's view, and a data-plane worker
 * may live in another network namespace.
 */
export function readRoutes4(path = '/proc/thread-self/net/route'): Route4[] {
  try {
    return parseProcNetRoute(readFileSync(path, 'utf8'));
  } catch {
    return [];
  }
}
