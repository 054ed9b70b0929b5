/**
 * Ethernet MAC addresses as 6-byte Uint8Arrays. `parseMac("02:00:00:00:00:01")` accepts six
 * groups of one or two hex digits separated by ':' (or all by '-'), like ether_aton, and returns
 * null for anything else; `formatMac(bytes, off?)` prints lower-case, colon-separated, two digits
 * per byte (the way `ip link` shows addresses). `macEquals` compares two 6-byte runs.
 */

const MAC_RE = /^([0-9a-fA-F]{1,2})([:-])([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})$/;

export function parseMac(s: string): Uint8Array | null {
  const m = MAC_RE.exec(s);
  if (m === null) return null;
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) out[i] = parseInt(m[i === 0 ? 1 : i + 2]!, 16);
  return out;
}

export function formatMac(b: Uint8Array, off = 0): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    if (i) s += ':';
    const v = b[off + i] ?? 0;
    s += (v < 16 ? '0' : '') + v.toString(16);
  }
  return s;
}

export function macEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 6; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/**
 * A MAC as two numbers, the first two bytes (`macHi16`) and the last four (`macLo32`, unsigned):
 * what the packet path stores (next-hop tables) and writes (`writeMacWords`, FastPath's DataView
 * stores) instead of copying six bytes from an array.
 */
export function macHi16(b: Uint8Array, off = 0): number {
  return (b[off]! << 8) | b[off + 1]!;
}

export function macLo32(b: Uint8Array, off = 0): number {
  return ((b[off + 2]! << 24) | (b[off + 3]! << 16) | (b[off + 4]! << 8) | b[off + 5]!) >>> 0;
}

/** Writes the MAC held as macHi16/macLo32 words to out[off..off+6). */
export function writeMacWords(out: Uint8Array, off: number, hi: number, lo: number): void {
  out[off] = hi >>> 8; out[off + 1] = hi;
  out[off + 2] = lo >>> 24; out[off + 3] = lo >>> 16; out[off + 4] = lo >>> 8; out[off + 5] = lo;
}
