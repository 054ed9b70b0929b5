/**
 * The IPv6 addresses of the director's interfaces, from /proc/net/if_inet6 (per
 * network namespace, no process to spawn). The neighbour cache needs them as the
 * source of its Neighbor Solicitations and to recognise solicitations that name
 * us; the engine takes one as the source of ICMPv6 errors. Control plane only.
 */
import { readFileSync } from 'node:fs';

export interface IfAddr6 {
  /** Four words, most significant first. */
  addr: number[];
  prefix: number;
  ifindex: number;
  ifname: string;
  /** Kernel scope (IPV6_ADDR_*): 0x00 global, 0x20 link, 0x10 host (loopback), 0x40 site. */
  scope: number;
  /** IFA_F_* flags. */
  flags: number;
}

export const SCOPE6_GLOBAL = 0x00;
export const SCOPE6_LINK = 0x20;
export const SCOPE6_HOST = 0x10;
const IFA_F_DADFAILED = 0x08;
const IFA_F_TENTATIVE = 0x40;

/** Parses /proc/net/if_inet6: "address ifindex prefixlen scope flags ifname", hex numbers. */
export function parseIfInet6(text: string): IfAddr6[] {
  const out: IfAddr6[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || !/^[0-9a-fA-F]{32}$/.test(f[0]!)) continue;
    out.push({
      addr: [0, 8, 16, 24].map((i) => Number.parseInt(f[0]!.slice(i, i + 8), 16) >>> 0),
      ifindex: Number.parseInt(f[1]!, 16),
      prefix: Number.parseInt(f[2]!, 16),
      scope: Number.parseInt(f[3]!, 16),
      flags: Number.parseInt(f[4]!, 16),
      ifname: f[5]!,
    });
  }
  return out;
}

/** Whether the address can be used as a source: not still under (or failed) duplicate address detection. */
export function usable6(a: IfAddr6): boolean {
  return (a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) === 0;
}

/** The calling thread's namespace's IPv6 addresses ([] when IPv6 is off). */
export function readIfAddrs6(path = '/proc/thread-self/net/if_inet6'): IfAddr6[] {
  try {
    return parseIfInet6(readFileSync(path, 'utf8'));
  } catch {
    return [];
  }
}

/**
 * The director's IPv6 address for what it originates itself (ICMPv6 errors, IPv6 tunnel
 * outer headers): a usable global address of `preferred` (an ifindex), else of any of
 * `ifindexes`; undefined when none has one.
 */
export function directorIp6(addrs: readonly IfAddr6[], ifindexes: readonly number[], preferred?: number): Uint32Array | undefined {
  const ok = (a: IfAddr6): boolean => a.scope === SCOPE6_GLOBAL && usable6(a) && ifindexes.includes(a.ifindex);
  const a = addrs.find((x) => ok(x) && x.ifindex === preferred) ?? addrs.find(ok);
  return a === undefined ? undefined : Uint32Array.from(a.addr);
}
