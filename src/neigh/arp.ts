/**
 * ARP frames (RFC 826) the director writes itself: requests that resolve next
 * hops, and gratuitous ARP announcing a VIP. Plus a minimal reader for ARP frames
 * seen on the wire, which feeds the neighbour cache. No allocation: frames are
 * written into a caller's buffer, fields are read into a reusable record.
 */

export const ETH_P_ARP = 0x0806;
export const ETH_P_IP = 0x0800;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;
/** Ethernet header + ARP for IPv4 over Ethernet, before padding. */
export const ARP_FRAME_LEN = 42;
/** What we put on the wire: padded to the Ethernet minimum (without FCS). */
export const ARP_FRAME_PADDED = 60;

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24; b[o + 1] = (v >>> 16) & 0xff; b[o + 2] = (v >>> 8) & 0xff; b[o + 3] = v & 0xff;
}

function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/**
 * Writes an ARP frame at out[off..off+60). `ethDst` null = broadcast; `tha` null
 * = zeros. Returns the frame length.
 */
export function writeArp(
  out: Uint8Array, off: number, op: number, ethDst: Uint8Array | null,
  sha: Uint8Array, spa: number, tha: Uint8Array | null, tpa: number,
): number {
  for (let k = 0; k < 6; k++) {
    out[off + k] = ethDst === null ? 0xff : ethDst[k]!;
    out[off + 6 + k] = sha[k]!;
  }
  out[off + 12] = ETH_P_ARP >>> 8; out[off + 13] = ETH_P_ARP & 0xff;
  const a = off + 14;
  out[a] = 0; out[a + 1] = 1; // htype Ethernet
  out[a + 2] = ETH_P_IP >>> 8; out[a + 3] = ETH_P_IP & 0xff;
  out[a + 4] = 6; out[a + 5] = 4;
  out[a + 6] = 0; out[a + 7] = op;
  for (let k = 0; k < 6; k++) out[a + 8 + k] = sha[k]!;
  put32(out, a + 14, spa);
  for (let k = 0; k < 6; k++) out[a + 18 + k] = tha === null ? 0 : tha[k]!;
  put32(out, a + 24, tpa);
  out.fill(0, off + ARP_FRAME_LEN, off + ARP_FRAME_PADDED);
  return ARP_FRAME_PADDED;
}

/** A who-has request for `target`, broadcast (or unicast to `ethDst` for a re-probe). */
export function writeArpRequest(out: Uint8Array, off: number, mac: Uint8Array, spa: number, target: number, ethDst: Uint8Array | null = null): number {
  return writeArp(out, off, ARP_REQUEST, ethDst, mac, spa, null, target);
}

/**
 * Gratuitous ARP for `ip` (a request with sender = target = ip, broadcast), like
 * `arping -U`: neighbours that already know `ip` update their entry to `mac`.
 */
export function writeGratuitousArp(out: Uint8Array, off: number, mac: Uint8Array, ip: number): number {
  return writeArp(out, off, ARP_REQUEST, null, mac, ip, null, ip);
}

/** The fields of one ARP frame for IPv4 over Ethernet. */
export class ArpView {
  op = 0;
  /** Offset of the sender / target hardware address in the buffer. */
  shaOff = 0;
  thaOff = 0;
  spa = 0;
  tpa = 0;
}

/** Reads the ARP frame at buf[off..off+len) into `v` (802.1Q/802.1ad tags skipped); false if it is not one. */
export function readArp(buf: Uint8Array, off: number, len: number, v: ArpView): boolean {
  let o = off + 12;
  let type = (buf[o]! << 8) | buf[o + 1]!;
  while ((type === ETH_P_8021Q || type === ETH_P_8021AD) && o + 6 <= off + len) {
    o += 4;
    type = (buf[o]! << 8) | buf[o + 1]!;
  }
  if (type !== ETH_P_ARP) return false;
  const a = o + 2;
  if (a + 28 > off + len) return false;
  if (buf[a] !== 0 || buf[a + 1] !== 1 || buf[a + 2] !== 0x08 || buf[a + 3] !== 0x00 || buf[a + 4] !== 6 || buf[a + 5] !== 4) return false;
  v.op = (buf[a + 6]! << 8) | buf[a + 7]!;
  v.shaOff = a + 8;
  v.spa = rd32(buf, a + 14);
  v.thaOff = a + 18;
  v.tpa = rd32(buf, a + 24);
  return true;
}
