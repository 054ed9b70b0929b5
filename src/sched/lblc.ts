/**
 * lblc — locality-based least connection (ip_vs_lblc.c).
 *
 * Keyed by the packet's destination address (meant for transparent cache clusters behind a
 * fwmark service): an entry remembers the dest last chosen for that address. A lookup
 * refreshes the entry's lastuse; its dest is reused when AVAILABLE, weight > 0 and not
 * overloaded in lblc's sense (activeconns > weight while some dest has activeconns*2 < weight).
 * Otherwise the service-wide wlc pick is used and the entry is pointed at it.
 * Dest add/del do not touch the table: entries for removed dests just stop being AVAILABLE,
 * and (as in the kernel) keep a reference so the dest stays in the trash and revives if re-added.
 * Expiry: see locality.ts (60 s collector, sysctl lblc_expiration for the full check).
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_AVAILABLE } from '../svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_NO_DEST, lblcOverloaded, schedErr, wlcPick } from './common.js';
import { LocalityTable, destHold, destPut } from './locality.js';

export class LblcTable extends LocalityTable {
  /** Entry -> its dest. */
  dest: (Dest | null)[];

  constructor(af: 4 | 6, now: number) {
    super(af, now);
    this.dest = new Array<Dest | null>(this.capacity).fill(null);
  }

  protected releasePayload(e: number): void {
    const d = this.dest[e]!;
    if (d !== null) destPut(d);
    this.dest[e] = null;
  }

  protected growPayload(cap: number): void {
    for (let e = this.dest.length; e < cap; e++) this.dest.push(null);
  }
}

export const lblc: Scheduler = {
  name: 'lblc',

  init(svc: Service, env: SchedEnv): void {
    svc.schedData = new LblcTable(svc.af, env.now());
  },

  done(svc: Service): void {
    (svc.schedData as LblcTable).flush();
    svc.schedData = null;
  },

  tick(svc: Service, env: SchedEnv): void {
    (svc.schedData as LblcTable).tick(env.now(), env.lblcExpiration);
  },

  schedule(svc: Service, pkt: SchedPacket, env: SchedEnv): Dest | null {
    const tbl = svc.schedData as LblcTable;
    const now = env.now();
    const e = tbl.find(pkt.daddr);
    if (e !== -1) {
      tbl.lastuse[e] = now;
      const d = tbl.dest[e]!;
      if ((d.flags & DEST_F_AVAILABLE) !== 0 && d.weight > 0 && !lblcOverloaded(d, svc)) return d;
    }
    // No entry, or its dest is unusable: schedule service-wide.
    const d = wlcPick(svc);
    if (d === null) {
      schedErr(env, svc, MSG_NO_DEST);
      return null;
    }
    if (e === -1) {
      const ne = tbl.insert(pkt.daddr, now);
      destHold(d);
      tbl.dest[ne] = d;
    } else if (tbl.dest[e] !== d) {
      // ip_vs_lblc_new() frees the old entry and hashes a new one: tbl->entries is incremented
      // but never decremented for the freed entry, so the kernel's counter drifts upward.
      destPut(tbl.dest[e]!);
      destHold(d);
      tbl.dest[e] = d;
      tbl.lastuse[e] = now;
      tbl.entries++;
    }
    return d;
  },
};
