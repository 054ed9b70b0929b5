/**
 * Which real-server addresses the kernel accepts (ip_vs_new_dest):
 * IPv4 must be RTN_UNICAST or RTN_LOCAL by inet_addr_type(); IPv6 must be a
 * unicast, non-link-local address per ipv6_addr_type(), unless it is an
 * address of this host. What depends on the host's own configuration
 * (subnet-directed broadcasts, local IPv6 addresses) is asked through hooks.
 */
import type { IpAddr } from '../util/ip.js';

export interface AddrHooks {
  /** IPv4 subnet-directed broadcast of a local interface (inet_addr_type → RTN_BROADCAST). Default: none. */
  isLocalBroadcast4?(addr: number): boolean;
  /** The address is configured on this host (routes to loopback). Default: only ::1 and 127/8 count. */
  isLocalAddr?(addr: IpAddr): boolean;
}

/** inet_addr_type without a FIB: 0.0.0.0/8 and 255.255.255.255 are broadcast, 224/4 multicast. */
export function ipv4IsUnicastOrLocal(a: number, hooks: AddrHooks = {}): boolean {
  a >>>= 0;
  if ((a & 0xff000000) === 0) return false; // ipv4_is_zeronet
  if (a === 0xffffffff) return false; // ipv4_is_lbcast
  if ((a & 0xf0000000) >>> 0 === 0xe0000000) return false; // ipv4_is_multicast
  if (hooks.isLocalBroadcast4?.(a)) return false;
  return true;
}

/** The IPV6_ADDR_UNICAST and IPV6_ADDR_LINKLOCAL bits of __ipv6_addr_type. */
export function ipv6AddrType(w0: number, w1: number, w2: number, w3: number): { unicast: boolean; linkLocal: boolean } {
  const top3 = w0 >>> 29;
  if (top3 !== 0 && top3 !== 7) return { unicast: true, linkLocal: false };
  if (w0 >>> 24 === 0xff) return { unicast: false, linkLocal: false }; // multicast
  if ((w0 & 0xffc00000) >>> 0 === 0xfe800000) return { unicast: true, linkLocal: true };
  if ((w0 & 0xffc00000) >>> 0 === 0xfec00000) return { unicast: true, linkLocal: false }; // site-local
  if ((w0 & 0xfe000000) >>> 0 === 0xfc000000) return { unicast: true, linkLocal: false }; // RFC 4193
  if ((w0 | w1) === 0) {
    if (w2 === 0) {
      if (w3 === 0) return { unicast: false, linkLocal: false }; // ::
      return { unicast: true, linkLocal: false }; // ::1 and IPv4-compatible
    }
    if (w2 >>> 0 === 0x0000ffff) return { unicast: false, linkLocal: false }; // IPv4-mapped
  }
  return { unicast: true, linkLocal: false };
}

function defaultIsLocal(addr: IpAddr): boolean {
  if (addr.af === 4) return addr.w0 >>> 24 === 127;
  return addr.w0 === 0 && addr.w1 === 0 && addr.w2 === 0 && addr.w3 === 1;
}

/** True when the kernel would accept `addr` as a real server address (else it answers EINVAL). */
export function destAddrAcceptable(addr: IpAddr, hooks: AddrHooks = {}): boolean {
  if (addr.af === 4) return ipv4IsUnicastOrLocal(addr.w0, hooks);
  const t = ipv6AddrType(addr.w0, addr.w1, addr.w2, addr.w3);
  if (t.unicast && !t.linkLocal) return true;
  return (hooks.isLocalAddr ?? defaultIsLocal)(addr);
}
