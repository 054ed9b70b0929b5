/**
 * Announcing IPv6 VIPs: the unsolicited Neighbor Advertisement the director sends
 * when an IPv6 VIP comes into use (the IPv6 counterpart of the gratuitous ARP the
 * data plane sends for IPv4 VIPs), so neighbours that still map the address to an
 * old MAC (a previous director) switch at once instead of after their NUD timeout.
 *
 * The data plane learns which VIPs appeared from the per-operation HideChange
 * (io/hide-state.ts): an address is new when no service used it before the change
 * and one does after. Counting per address means a second port on the same VIP, or
 * an edit that deletes and re-adds the same share, announces nothing.
 */
import type { TxQueue } from '../io/batch.js';
import type { HideChange } from '../io/worker-protocol.js';
import { parseIp6 } from '../util/ip.js';
import { samePrefix6 } from './routes6.js';
import { SCOPE6_LINK } from './addrs6.js';
import { writeUnsolicitedNa } from './ndp.js';
import type { NeighIface } from './nud.js';

export class Vip6Announcer {
  /** Live services per IPv6 VIP address (text as the HideChange carries it). */
  private readonly live = new Map<string, number>();

  /** Applies one operation's change; returns the IPv6 VIP addresses (words) that came into use. */
  noteChange(c: HideChange | undefined): number[][] {
    if (c === undefined) return [];
    const before = new Map<string, number>();
    const bump = (addr: string, d: number): void => {
      if (!before.has(addr)) before.set(addr, this.live.get(addr) ?? 0);
      const n = (this.live.get(addr) ?? 0) + d;
      if (n > 0) this.live.set(addr, n);
      else this.live.delete(addr);
    };
    for (const v of c.del.vips) if (v.af === 6) bump(v.addr, -1);
    for (const v of c.add.vips) if (v.af === 6) bump(v.addr, 1);
    const added: number[][] = [];
    for (const [addr, n] of before) {
      if (n > 0 || !this.live.has(addr)) continue;
      const w = parseIp6(addr);
      if (w !== null) added.push(w);
    }
    return added;
  }

  /**
   * Writes one unsolicited advertisement per VIP into `tx` (not sent), on the interfaces
   * with an IPv6 prefix holding the VIP, else on every Ethernet interface. Returns how
   * many were written (a full queue stops it).
   */
  static write(tx: TxQueue, ifaces: readonly NeighIface[], vips: readonly number[][]): number {
    let n = 0;
    for (const vip of vips) {
      const on = ifaces.filter((i) => (i.ip6 ?? []).some((a) => a.scope !== SCOPE6_LINK && samePrefix6(a.addr, vip, a.prefix)));
      for (const i of on.length > 0 ? on : ifaces) {
        if (i.mac.length !== 6) continue;
        const off = tx.reserve();
        if (off < 0) return n;
        tx.commit(writeUnsolicitedNa(tx.buf, off, i.mac, vip), i.index, -1);
        n++;
      }
    }
    return n;
  }
}
