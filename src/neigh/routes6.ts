/**
 * The kernel's IPv6 unicast routes, read into memory so the data plane can pick
 * the next hop of a new IPv6 destination synchronously (longest prefix match):
 * the destination itself when it is on-link, else the gateway the kernel names —
 * the IPv6 side of routes.ts. Read from /proc/net/ipv6_route (per network
 * namespace, no process to spawn). Control plane only: the neighbour cache
 * remembers each destination's next hop (neigh/cache6.ts).
 *
 * /proc/net/ipv6_route shows the local table too (our own and anycast addresses,
 * multicast): those are left out, like reject routes. Not modelled (as for IPv4):
 * policy routing, multipath beyond the first hop, source-specific routes.
 */
import { readFileSync } from 'node:fs';
import { parseIp6 } from '../util/ip.js';
import type { Words6 } from '../util/ip6-set.js';

export interface Route6 {
  /** Network address, four words (most significant first), and prefix length. */
  dst: number[];
  prefix: number;
  /** Gateway words, or null for on-link routes. */
  gateway: number[] | null;
  ifname: string;
  metric: number;
}

/** Whether a and b agree on their first `prefix` bits. */
export function samePrefix6(a: Words6, b: Words6, prefix: number): boolean {
  for (let i = 0; i < 4 && prefix > 0; i++, prefix -= 32) {
    const mask = prefix >= 32 ? 0xffffffff : (0xffffffff << (32 - prefix)) >>> 0;
    if ((((a[i]! ^ b[i]!) & mask) >>> 0) !== 0) return false;
  }
  return true;
}

function maskWords(a: Words6, prefix: number): number[] {
  const out = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    const bits = Math.max(0, Math.min(32, prefix - 32 * i));
    const mask = bits === 0 ? 0 : bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    out[i] = (a[i]! & mask) >>> 0;
  }
  return out;
}

/** Longest-prefix-match lookup over a (small) list of IPv6 routes. */
export class RouteTable6 {
  private readonly routes: Route6[];
  /** Text that changes whenever the routes do (to skip no-op refreshes). */
  readonly signature: string;

  constructor(routes: Route6[]) {
    // Longest prefix first; among equal prefixes the lowest metric wins (the kernel's fib order).
    this.routes = routes.map((r) => ({ ...r, dst: maskWords(r.dst, r.prefix) }))
      .sort((a, b) => b.prefix - a.prefix || a.metric - b.metric);
    this.signature = this.routes.map((r) => `${r.dst.join('.')}/${r.prefix}>${r.gateway?.join('.') ?? ''}@${r.ifname}:${r.metric}`).join(',');
  }

  get size(): number {
    return this.routes.length;
  }

  lookup(dst: Words6): Route6 | null {
    for (const r of this.routes) if (samePrefix6(dst, r.dst, r.prefix)) return r;
    return null;
  }

  list(): readonly Route6[] {
    return this.routes;
  }
}

const RTF_GATEWAY = 0x0002;
const RTF_REJECT = 0x0200;
const RTF_ANYCAST = 0x00100000;
const RTF_LOCAL = 0x80000000;

function hexWords(h: string): number[] | null {
  if (!/^[0-9a-fA-F]{32}$/.test(h)) return null;
  return [0, 8, 16, 24].map((i) => Number.parseInt(h.slice(i, i + 8), 16) >>> 0);
}

/**
 * Parses /proc/net/ipv6_route: "dst dstlen src srclen nexthop metric refcnt use flags dev",
 * addresses as 32 hex digits in network order, numbers in hex.
 */
export function parseProcIpv6Route(text: string): Route6[] {
  const out: Route6[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const dst = hexWords(f[0]!);
    const gw = hexWords(f[4]!);
    if (dst === null || gw === null) continue;
    const flags = Number.parseInt(f[8]!, 16) >>> 0;
    const ifname = f[9]!;
    if ((flags & (RTF_REJECT | RTF_ANYCAST)) !== 0 || (flags & RTF_LOCAL) !== 0 || ifname === 'lo') continue;
    const prefix = Number.parseInt(f[1]!, 16);
    if (prefix >= 8 && (dst[0]! >>> 24) === 0xff) continue; // multicast: never a real server or gateway
    const viaGw = (flags & RTF_GATEWAY) !== 0 && gw.some((w) => w !== 0);
    out.push({ dst, prefix, gateway: viaGw ? gw : null, ifname, metric: Number.parseInt(f[5]!, 16) >>> 0 });
  }
  return out;
}

/** A route from text ("2001:db8::/64", gateway "fe80::1" or null) — tests and static tables. */
export function route6(dst: string, gateway: string | null, ifname: string, metric = 0): Route6 {
  const [a, p] = dst === 'default' ? ['::', '0'] : dst.split('/');
  const w = parseIp6(a!);
  const g = gateway === null ? null : parseIp6(gateway);
  if (w === null || (gateway !== null && g === null)) throw new Error(`bad IPv6 route ${dst} via ${gateway}`);
  return { dst: w, prefix: p === undefined ? 128 : Number(p), gateway: g, ifname, metric };
}

/**
 * The calling thread's namespace's IPv6 routes ([] when unreadable, e.g. IPv6 disabled).
 * Through /proc/thread-self for the same reason as readRoutes4: the data-plane worker
 * may live in another network namespace than the main thread.
 */
export function readRoutes6(path = '/proc/thread-self/net/ipv6_route'): Route6[] {
  try {
    return parseProcIpv6Route(readFileSync(path, 'utf8'));
  } catch {
    return [];
  }
}
