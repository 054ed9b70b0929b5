/**
 * Announcing IPv6 VIPs: the unsolicited Neighbor Advertisement the director sends
 * when an IPv6 VIP comes into use (the IPv6 counterpart of the gratuitous ARP the
 * data plane sends for IPv4 VIPs), so neighbours that still map the address to an
 * old MAC (a previous director) switch at once instead of after their NUD timeout.
 *
 * Which VIPs appeared is the data plane's HideTracker's to say (io/hide-state.ts
 * takeNewVip6, counted per address like the IPv4 ones): a second port on the same
 * VIP, or an edit that deletes and re-adds the same share, announces nothing.
 */
import type { TxQueue } from '../io/batch.js';
import { samePrefix6 } from './routes6.js';
import { SCOPE6_LINK } from './addrs6.js';
import { writeUnsolicitedNa } from './ndp.js';
import type { NeighIface } from './nud.js';

export class Vip6Announcer {
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
