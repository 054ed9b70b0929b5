/**
 * IP addresses as numbers. An IPv4 address is one uint32 (host order, as the
 * kernel prints it after ntohl); an IPv6 address is four uint32 words, most
 * significant first. `IpAddr` is the control-plane form: a small immutable
 * record with a fixed shape so V8 keeps it monomorphic.
 */
export type Family = 4 | 6;

export interface IpAddr {
  readonly af: Family;
  /** IPv4: the address. IPv6: bits 127..96. */
  readonly w0: number;
  readonly w1: number;
  readonly w2: number;
  readonly w3: number;
}

export function ip4(v: number): IpAddr {
  return { af: 4, w0: v >>> 0, w1: 0, w2: 0, w3: 0 };
}

export function ip6(w0: number, w1: number, w2: number, w3: number): IpAddr {
  return { af: 6, w0: w0 >>> 0, w1: w1 >>> 0, w2: w2 >>> 0, w3: w3 >>> 0 };
}

export const IP4_ANY: IpAddr = ip4(0);
export const IP6_ANY: IpAddr = ip6(0, 0, 0, 0);

/** Parses dotted-quad IPv4 ("10.0.0.1") strictly, like inet_pton(AF_INET). */
export function parseIp4(s: string): number | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let v = 0;
  for (const p of parts) {
    // inet_pton(AF_INET) rejects leading zeros ("010").
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = v * 256 + n;
  }
  return v >>> 0;
}

/** Parses IPv6 text (with "::" and an optional trailing dotted quad), like inet_pton(AF_INET6). */
export function parseIp6(s: string): [number, number, number, number] | null {
  if (s.length === 0 || s.length > 45) return null;
  let head: string[] = [];
  let tail: string[] = [];
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    if (s.indexOf('::', dbl + 1) >= 0) return null;
    const a = s.slice(0, dbl);
    const b = s.slice(dbl + 2);
    head = a.length ? a.split(':') : [];
    tail = b.length ? b.split(':') : [];
  } else {
    head = s.split(':');
  }
  const groups: number[] = [];
  const all = [...head, ...tail];
  const toGroups = (list: string[], out: number[], allowV4Last: boolean): boolean => {
    for (let i = 0; i < list.length; i++) {
      const g = list[i]!;
      if (allowV4Last && i === list.length - 1 && g.includes('.')) {
        const v4 = parseIp4(g);
        if (v4 === null) return false;
        out.push(v4 >>> 16, v4 & 0xffff);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
      out.push(parseInt(g, 16));
    }
    return true;
  };
  const hg: number[] = [];
  const tg: number[] = [];
  if (dbl >= 0) {
    if (!toGroups(head, hg, tail.length === 0)) return null;
    if (!toGroups(tail, tg, true)) return null;
    if (hg.length + tg.length > 7) return null;
    groups.push(...hg);
    for (let i = hg.length + tg.length; i < 8; i++) groups.push(0);
    groups.push(...tg);
  } else {
    if (!toGroups(all, groups, true)) return null;
    if (groups.length !== 8) return null;
  }
  const w = (i: number) => ((groups[2 * i]! << 16) | groups[2 * i + 1]!) >>> 0;
  return [w(0), w(1), w(2), w(3)];
}

/** Parses either family; IPv4 first. */
export function parseIp(s: string): IpAddr | null {
  const v4 = parseIp4(s);
  if (v4 !== null) return ip4(v4);
  const v6 = parseIp6(s);
  if (v6 !== null) return ip6(v6[0], v6[1], v6[2], v6[3]);
  return null;
}

export function formatIp4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** RFC 5952 text, as glibc's inet_ntop prints it (longest zero run of >= 2 groups compressed, first on ties; ::ffff:a.b.c.d for v4-mapped). */
export function formatIp6(w0: number, w1: number, w2: number, w3: number): string {
  const g = [w0 >>> 16, w0 & 0xffff, w1 >>> 16, w1 & 0xffff, w2 >>> 16, w2 & 0xffff, w3 >>> 16, w3 & 0xffff];
  // glibc prints a dotted tail when the longest zero run is exactly words 0..5 (IPv4-compatible,
  // e.g. ::1.2.3.4 but ::2 for ::0.0.0.2) or words 0..4 followed by ffff (IPv4-mapped).
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 &&
      (g[5] === 0xffff || (g[5] === 0 && g[6] !== 0))) {
    return (g[5] === 0xffff ? '::ffff:' : '::') + formatIp4(w3 >>> 0);
  }
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (x: number) => x.toString(16);
  if (bestStart < 0) return g.map(hex).join(':');
  const left = g.slice(0, bestStart).map(hex).join(':');
  const right = g.slice(bestStart + bestLen).map(hex).join(':');
  return `${left}::${right}`;
}

export function formatIp(a: IpAddr): string {
  return a.af === 4 ? formatIp4(a.w0) : formatIp6(a.w0, a.w1, a.w2, a.w3);
}

export function ipEquals(a: IpAddr, b: IpAddr): boolean {
  return a.af === b.af && a.w0 === b.w0 && a.w1 === b.w1 && a.w2 === b.w2 && a.w3 === b.w3;
}

/** XOR of the four words: the kernel's IPv6 "fold" used by dh/sh/lblc/lblcr hashing. IPv4: the address. */
export function ipFold(a: IpAddr): number {
  return a.af === 4 ? a.w0 : (a.w0 ^ a.w1 ^ a.w2 ^ a.w3) >>> 0;
}

export function isIpAddr(x: unknown): x is IpAddr {
  return typeof x === 'object' && x !== null && 'af' in x && 'w0' in x;
}
