/**
 * A fixed neighbour table: next-hop MAC by IP address, with an optional default
 * gateway MAC. Used by `ulvs replay` (--neigh IP=MAC, --gw MAC) and in tests.
 * Lookups are numeric (IPv4 uint32 key; IPv6 by a folded key plus exact check)
 * and write the MAC straight into the frame, so the hot path allocates nothing.
 */
import type { IpAddr } from '../util/ip.js';

export interface NextHopResolver {
  /**
   * Writes the next-hop MAC for `addr` (words as in PacketInfo) into out[outOff..outOff+6).
   * Returns false when the next hop is unknown (the frame is dropped and counted).
   */
  resolve(af: 4 | 6, addr: Uint32Array, out: Uint8Array, outOff: number): boolean;
  /** Bumped whenever an entry changes, so per-destination caches can be refreshed. */
  readonly version: number;
}

export class StaticNeighbours implements NextHopResolver {
  version = 0;
  private readonly v4 = new Map<number, Uint8Array>();
  private readonly v6 = new Map<number, { w: Uint32Array; mac: Uint8Array }[]>();
  private gw: Uint8Array | null = null;

  set(addr: IpAddr, mac: Uint8Array): void {
    if (addr.af === 4) this.v4.set(addr.w0, mac);
    else {
      const key = (addr.w0 ^ addr.w1 ^ addr.w2 ^ addr.w3) >>> 0;
      const list = this.v6.get(key) ?? [];
      list.push({ w: Uint32Array.of(addr.w0, addr.w1, addr.w2, addr.w3), mac });
      this.v6.set(key, list);
    }
    this.version++;
  }

  setGateway(mac: Uint8Array | null): void {
    this.gw = mac;
    this.version++;
  }

  resolve(af: 4 | 6, a: Uint32Array, out: Uint8Array, outOff: number): boolean {
    let mac: Uint8Array | undefined;
    if (af === 4) mac = this.v4.get(a[0]!);
    else {
      const list = this.v6.get((a[0]! ^ a[1]! ^ a[2]! ^ a[3]!) >>> 0);
      if (list !== undefined) {
        for (let i = 0; i < list.length; i++) {
          const e = list[i]!;
          if (e.w[0] === a[0] && e.w[1] === a[1] && e.w[2] === a[2] && e.w[3] === a[3]) { mac = e.mac; break; }
        }
      }
    }
    if (mac === undefined) {
      if (this.gw === null) return false;
      mac = this.gw;
    }
    out[outOff] = mac[0]!; out[outOff + 1] = mac[1]!; out[outOff + 2] = mac[2]!;
    out[outOff + 3] = mac[3]!; out[outOff + 4] = mac[4]!; out[outOff + 5] = mac[5]!;
    return true;
  }
}
