/**
 * A fixed neighbour table: next-hop MAC by IP address, with an optional default
 * gateway MAC. Used by `ulvs replay` (--neigh IP=MAC, --gw MAC) and in tests.
 * Lookups are numeric (IPv4 uint32 key; IPv6 by a folded key plus exact check)
 * and write the MAC straight into the frame, so the hot path allocates nothing.
 *
 * IPv4 entries live in an open-addressing table of typed arrays kept at most a
 * quarter full, so a destination that is not configured (every client of a NAT
 * reply, which goes to the gateway) is usually told so by its first, empty, slot.
 * MACs are kept as a 16-bit and a 32-bit word: writing them costs shifts of
 * numbers already loaded instead of six loads from a per-entry array.
 */
import type { IpAddr } from '../util/ip.js';
import { macHi16, macLo32, writeMacWords } from '../util/mac.js';

export interface NextHopResolver {
  /**
   * Writes the next-hop MAC for `addr` (words as in PacketInfo) into out[outOff..outOff+6).
   * Returns false when the next hop is unknown (the frame is dropped and counted).
   */
  resolve(af: 4 | 6, addr: Uint32Array, out: Uint8Array, outOff: number): boolean;
  /** Bumped whenever an entry changes, so per-destination caches can be refreshed. */
  readonly version: number;
}

/** Slots of the IPv4 table when empty (grows by doubling). */
const V4_MIN_SLOTS = 16;

export class StaticNeighbours implements NextHopResolver {
  version = 0;
  // IPv4: address → MAC words, linear probing; v4Used marks taken slots (0.0.0.0 is a valid key).
  private v4Key = new Uint32Array(V4_MIN_SLOTS);
  private v4Hi = new Uint16Array(V4_MIN_SLOTS);
  private v4Lo = new Uint32Array(V4_MIN_SLOTS);
  private v4Used = new Uint8Array(V4_MIN_SLOTS);
  private v4Shift = 32 - Math.log2(V4_MIN_SLOTS);
  private v4Count = 0;
  private readonly v6 = new Map<number, { w: Uint32Array; hi: number; lo: number }[]>();
  private hasGw = false;
  private gwHi = 0;
  private gwLo = 0;

  /** Sets the MAC of `addr` (copied: later changes to `mac` do not show). */
  set(addr: IpAddr, mac: Uint8Array): void {
    const hi = macHi16(mac);
    const lo = macLo32(mac);
    if (addr.af === 4) this.set4(addr.w0 >>> 0, hi, lo);
    else {
      const key = (addr.w0 ^ addr.w1 ^ addr.w2 ^ addr.w3) >>> 0;
      const list = this.v6.get(key) ?? [];
      list.push({ w: Uint32Array.of(addr.w0, addr.w1, addr.w2, addr.w3), hi, lo });
      this.v6.set(key, list);
    }
    this.version++;
  }

  /** Sets the MAC used for every address without an entry (null: those are unresolved). */
  setGateway(mac: Uint8Array | null): void {
    this.hasGw = mac !== null;
    this.gwHi = mac === null ? 0 : macHi16(mac);
    this.gwLo = mac === null ? 0 : macLo32(mac);
    this.version++;
  }

  resolve(af: 4 | 6, a: Uint32Array, out: Uint8Array, outOff: number): boolean {
    let hi: number, lo: number;
    if (af === 4) {
      const d = a[0]!;
      const mask = this.v4Key.length - 1;
      let h = Math.imul(d, 0x9e3779b1) >>> this.v4Shift;
      for (;;) {
        if (this.v4Used[h] === 0) {
          if (!this.hasGw) return false;
          hi = this.gwHi; lo = this.gwLo;
          break;
        }
        if (this.v4Key[h] === d) {
          hi = this.v4Hi[h]!; lo = this.v4Lo[h]!;
          break;
        }
        h = (h + 1) & mask;
      }
    } else {
      const e = this.find6(a);
      if (e !== undefined) { hi = e.hi; lo = e.lo; } else if (this.hasGw) { hi = this.gwHi; lo = this.gwLo; } else return false;
    }
    writeMacWords(out, outOff, hi, lo);
    return true;
  }

  private find6(a: Uint32Array): { hi: number; lo: number } | undefined {
    const list = this.v6.get((a[0]! ^ a[1]! ^ a[2]! ^ a[3]!) >>> 0);
    if (list === undefined) return undefined;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      if (e.w[0] === a[0] && e.w[1] === a[1] && e.w[2] === a[2] && e.w[3] === a[3]) return e;
    }
    return undefined;
  }

  private set4(d: number, hi: number, lo: number): void {
    // Keep the table at most a quarter full: misses (the common case) end at an empty slot quickly.
    if ((this.v4Count + 1) * 4 > this.v4Key.length) this.grow4();
    const mask = this.v4Key.length - 1;
    let h = Math.imul(d, 0x9e3779b1) >>> this.v4Shift;
    while (this.v4Used[h] !== 0 && this.v4Key[h] !== d) h = (h + 1) & mask;
    if (this.v4Used[h] === 0) this.v4Count++;
    this.v4Used[h] = 1;
    this.v4Key[h] = d;
    this.v4Hi[h] = hi;
    this.v4Lo[h] = lo;
  }

  private grow4(): void {
    const key = this.v4Key, hi = this.v4Hi, lo = this.v4Lo, used = this.v4Used;
    const n = key.length * 2;
    this.v4Key = new Uint32Array(n);
    this.v4Hi = new Uint16Array(n);
    this.v4Lo = new Uint32Array(n);
    this.v4Used = new Uint8Array(n);
    this.v4Shift = 32 - Math.log2(n);
    this.v4Count = 0;
    for (let h = 0; h < key.length; h++) if (used[h] !== 0) this.set4(key[h]!, hi[h]!, lo[h]!);
  }
}
