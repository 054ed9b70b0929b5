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
