/**
 * The few C library routines whose exact behaviour shows through ipvsadm's
 * messages and output: strtol/strtoul/atoi as ipvsadm calls them, glibc's
 * inet_aton (the permissive one), inet_pton and inet_ntop. ipvsadm accepts and
 * prints exactly what these accept and print, so we emulate them rather than
 * use stricter or prettier parsers.
 */

const LONG_MAX = (1n << 63n) - 1n;
const LONG_MIN = -(1n << 63n);
const ULONG_MAX = (1n << 64n) - 1n;

/** C isspace() in the "C" locale. */
export function isCSpace(ch: string | undefined): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\v' || ch === '\f' || ch === '\r';
}

function isDigit(ch: string | undefined): boolean {
  return ch !== undefined && ch >= '0' && ch <= '9';
}

function digitValue(ch: string | undefined): number {
  if (ch === undefined) return 99;
  const c = ch.charCodeAt(0);
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 122) return c - 87;
  if (c >= 65 && c <= 90) return c - 55;
  return 99;
}

export interface StrtolResult {
  /** The value, already clamped like the C function on overflow. */
  value: bigint;
  /** Index of the first unparsed character (0 if no digits at all, like `end == s`). */
  end: number;
  /** errno == ERANGE */
  overflow: boolean;
}

/**
 * strtol/strtoul core: optional leading white space, optional sign, base 10, 16
 * ("0x") or 8 (leading 0) when base is 0. `unsigned` selects strtoul's range
 * (negative inputs wrap modulo 2^64, as C does).
 */
export function cStrtol(s: string, base: 0 | 10 | 16, unsigned = false): StrtolResult {
  let i = 0;
  while (isCSpace(s[i])) i++;
  let neg = false;
  if (s[i] === '+' || s[i] === '-') {
    neg = s[i] === '-';
    i++;
  }
  let b: number = base;
  if ((b === 0 || b === 16) && s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X') && digitValue(s[i + 2]) < 16) {
    i += 2;
    b = 16;
  } else if (b === 0) {
    b = s[i] === '0' ? 8 : 10;
  }
  const start = i;
  let v = 0n;
  const bb = BigInt(b);
  while (digitValue(s[i]) < b) {
    v = v * bb + BigInt(digitValue(s[i]));
    i++;
  }
  if (i === start) return { value: 0n, end: 0, overflow: false };
  if (unsigned) {
    if (v > ULONG_MAX) return { value: ULONG_MAX, end: i, overflow: true };
    return { value: neg ? (ULONG_MAX + 1n - v) & ULONG_MAX : v, end: i, overflow: false };
  }
  const sv = neg ? -v : v;
  if (sv > LONG_MAX) return { value: LONG_MAX, end: i, overflow: true };
  if (sv < LONG_MIN) return { value: LONG_MIN, end: i, overflow: true };
  return { value: sv, end: i, overflow: false };
}

/** ipvsadm's string_to_number(): whole word must be a base-10 long within [min, max]; else -1. */
export function stringToNumber(s: string, min: number, max: number): number {
  const r = cStrtol(s, 10);
  if (r.end === 0 || r.end !== s.length || r.overflow) return -1;
  if (r.value < BigInt(min) || r.value > BigInt(max)) return -1;
  return Number(r.value);
}

/** atoi(): (int)strtol(s, NULL, 10) — on LP64 the long is truncated to its low 32 bits. */
export function cAtoi(s: string): number {
  const r = cStrtol(s, 10);
  return Number(BigInt.asIntN(32, r.value));
}

/**
 * glibc inet_aton(): 1 to 4 parts, each decimal, octal (leading 0) or hex (0x);
 * the last part fills the remaining bytes ("10.1" = 10.0.0.1). Anything after a
 * white-space character is ignored ("1.2.3.4 junk" is accepted). Returns the
 * address as a host-order uint32, or null.
 */
export function inetAton(s: string): number | null {
  const maxLast = [0xffffffff, 0xffffff, 0xffff, 0xff];
  const parts: number[] = [];
  let i = 0;
  let val = 0;
  for (;;) {
    if (!isDigit(s[i])) return null;
    const r = cStrtol(s.slice(i), 0, true);
    if (r.overflow || r.value > 0xffffffffn) return null;
    val = Number(r.value);
    i += r.end;
    if (s[i] === '.') {
      if (parts.length > 2 || val > 0xff) return null;
      parts.push(val);
      i++;
    } else {
      break;
    }
  }
  if (i < s.length && !isCSpace(s[i])) return null;
  if (val > maxLast[parts.length]!) return null;
  let word = 0;
  for (let k = 0; k < parts.length; k++) word += parts[k]! * 2 ** (24 - 8 * k);
  return (word + val) >>> 0;
}

/** glibc inet_pton(AF_INET): exactly four decimal octets, no leading zeros. */
export function inetPton4(s: string): number | null {
  let octets = 0;
  let sawDigit = false;
  let cur = 0;
  let acc = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch >= '0' && ch <= '9') {
      const n = cur * 10 + (ch.charCodeAt(0) - 48);
      if (sawDigit && cur === 0) return null;
      if (n > 255) return null;
      cur = n;
      if (!sawDigit) {
        if (++octets > 4) return null;
        sawDigit = true;
      }
    } else if (ch === '.' && sawDigit) {
      if (octets === 4) return null;
      acc = acc * 256 + cur;
      cur = 0;
      sawDigit = false;
    } else {
      return null;
    }
  }
  if (octets < 4 || !sawDigit) return null;
  return (acc * 256 + cur) >>> 0;
}

/** IPv6 address as four host-order 32-bit words. */
export type Words6 = [number, number, number, number];

/** glibc inet_pton(AF_INET6). */
export function inetPton6(s: string): Words6 | null {
  const g: number[] = [];
  let colonp = -1;
  let i = 0;
  if (s[0] === ':') {
    if (s[1] !== ':') return null;
    i = 1;
  }
  let curtok = i;
  let sawX = 0;
  let val = 0;
  for (; i < s.length; i++) {
    const ch = s[i]!;
    const d = digitValue(ch);
    if (d < 16) {
      if (++sawX > 4) return null;
      val = (val << 4) | d;
      continue;
    }
    if (ch === ':') {
      curtok = i + 1;
      if (sawX === 0) {
        if (colonp >= 0) return null;
        colonp = g.length;
        continue;
      }
      if (i + 1 >= s.length) return null;
      if (g.length >= 8) return null;
      g.push(val);
      sawX = 0;
      val = 0;
      continue;
    }
    if (ch === '.' && g.length <= 6) {
      const v4 = inetPton4(s.slice(curtok));
      if (v4 === null) return null;
      g.push(v4 >>> 16, v4 & 0xffff);
      sawX = 0;
      i = s.length;
      break;
    }
    return null;
  }
  if (sawX > 0) {
    if (g.length >= 8) return null;
    g.push(val);
  }
  if (colonp >= 0) {
    if (g.length === 8) return null;
    const tail = g.splice(colonp);
    while (g.length + tail.length < 8) g.push(0);
    g.push(...tail);
  }
  if (g.length !== 8) return null;
  const w = (k: number) => ((g[2 * k]! << 16) | g[2 * k + 1]!) >>> 0;
  return [w(0), w(1), w(2), w(3)];
}

export function ntop4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** glibc inet_ntop(AF_INET6), including its rules for the dotted IPv4 tail. */
export function ntop6(w: Words6): string {
  const words = [w[0] >>> 16, w[0] & 0xffff, w[1] >>> 16, w[1] & 0xffff,
    w[2] >>> 16, w[2] & 0xffff, w[3] >>> 16, w[3] & 0xffff];
  let bestBase = -1, bestLen = 0, curBase = -1, curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (words[i] === 0) {
      if (curBase === -1) { curBase = i; curLen = 1; } else curLen++;
    } else if (curBase !== -1) {
      if (bestBase === -1 || curLen > bestLen) { bestBase = curBase; bestLen = curLen; }
      curBase = -1;
    }
  }
  if (curBase !== -1 && (bestBase === -1 || curLen > bestLen)) { bestBase = curBase; bestLen = curLen; }
  if (bestBase !== -1 && bestLen < 2) bestBase = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    // ::a.b.c.d and ::ffff:a.b.c.d keep a dotted tail (glibc's test, not RFC 5952's).
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
      out += ntop4(w[3]);
      return out;
    }
    out += words[i]!.toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) out += ':';
  return out;
}

/** An address as ipvsadm holds it: family and host-order words (IPv4 in w[0]). */
export interface CAddr {
  af: 4 | 6;
  w: Words6;
}

/** Parses address text as the records carry it (inet_ntop form, or full IPv6 form). */
export function parseAddrText(s: string): CAddr | null {
  const v4 = inetPton4(s);
  if (v4 !== null) return { af: 4, w: [v4, 0, 0, 0] };
  const v6 = inetPton6(s);
  if (v6 !== null) return { af: 6, w: v6 };
  return null;
}

export function formatCAddr(a: CAddr): string {
  return a.af === 4 ? ntop4(a.w[0]) : ntop6(a.w);
}

/** Canonical inet_ntop text of address text, or the text itself if it does not parse. */
export function canonicalAddr(s: string): string {
  const a = parseAddrText(s);
  return a === null ? s : formatCAddr(a);
}
