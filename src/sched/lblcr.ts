/**
 * lblcr — locality-based least connection with replication (ip_vs_lblcr.c).
 *
 * Like lblc, keyed by the packet's destination address, but each entry holds a *set* of dests
 * (newest member first) and a lastmod time:
 *  - pick the set's weighted-least-connection member (AVAILABLE, weight > 0, not overloaded);
 *  - if the set has more than one member and now > lastmod + lblcr_expiration, drop the set's
 *    most loaded member (this happens after the pick, so the pick may be the dropped dest);
 *  - use the pick unless it is missing or overloaded in lblc's sense; then schedule wlc over
 *    the service and add the result to the set.
 * A missing entry is created with the service-wide wlc pick as its only member.
 * Expiry: see locality.ts (60 s collector, sysctl lblcr_expiration for the full check).
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD } from '../svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_NO_DEST, connOverhead, lblcOverloaded, schedErr, wlcPick } from './common.js';
import { LocalityTable, destHold, destPut } from './locality.js';

export class LblcrTable extends LocalityTable {
  /** Entry -> first set element, -1 when empty. */
  setHead: Int32Array;
  setSize: Int32Array;
  lastmod: Float64Array;
  /** Set element pool: next element and member dest. */
  elemNext: Int32Array;
  elemDest: (Dest | null)[];
  private elemFree = -1;

  constructor(af: 4 | 6, now: number) {
    super(af, now);
    const cap = this.capacity;
    this.setHead = new Int32Array(cap).fill(-1);
    this.setSize = new Int32Array(cap);
    this.lastmod = new Float64Array(cap);
    this.elemNext = new Int32Array(0);
    this.elemDest = [];
    this.growElems(cap);
  }

  protected releasePayload(e: number): void {
    let x = this.setHead[e]!;
    while (x !== -1) {
      const nx = this.elemNext[x]!;
      this.freeElem(x);
      x = nx;
    }
    this.setHead[e] = -1;
    this.setSize[e] = 0;
  }

  protected growPayload(cap: number): void {
    const sh = new Int32Array(cap).fill(-1);
    sh.set(this.setHead);
    const ss = new Int32Array(cap);
    ss.set(this.setSize);
    const lm = new Float64Array(cap);
    lm.set(this.lastmod);
    this.setHead = sh;
    this.setSize = ss;
    this.lastmod = lm;
  }

  private growElems(cap: number): void {
    const old = this.elemNext.length;
    const nx = new Int32Array(cap);
    nx.set(this.elemNext);
    this.elemNext = nx;
    for (let x = old; x < cap; x++) this.elemDest.push(null);
    for (let x = cap - 1; x >= old; x--) {
      this.elemNext[x] = this.elemFree;
      this.elemFree = x;
    }
  }

  private freeElem(x: number): void {
    destPut(this.elemDest[x]!);
    this.elemDest[x] = null;
    this.elemNext[x] = this.elemFree;
    this.elemFree = x;
  }

  /** ip_vs_dest_set_insert(): add at the head of the set (optionally unless already a member). */
  setInsert(e: number, d: Dest, check: boolean, now: number): void {
    if (check) {
      for (let x = this.setHead[e]!; x !== -1; x = this.elemNext[x]!) if (this.elemDest[x] === d) return;
    }
    if (this.elemFree === -1) this.growElems(this.elemNext.length * 2);
    const x = this.elemFree;
    this.elemFree = this.elemNext[x]!;
    destHold(d);
    this.elemDest[x] = d;
    this.elemNext[x] = this.setHead[e]!;
    this.setHead[e] = x;
    this.setSize[e]!++;
    this.lastmod[e] = now;
  }

  /** ip_vs_dest_set_erase(). */
  setErase(e: number, d: Dest, now: number): void {
    let prev = -1;
    for (let x = this.setHead[e]!; x !== -1; prev = x, x = this.elemNext[x]!) {
      if (this.elemDest[x] !== d) continue;
      this.setSize[e]!--;
      this.lastmod[e] = now;
      if (prev === -1) this.setHead[e] = this.elemNext[x]!;
      else this.elemNext[prev] = this.elemNext[x]!;
      this.freeElem(x);
      return;
    }
  }

  /** ip_vs_dest_set_min(): weighted least-connection member. */
  setMin(e: number): Dest | null {
    let x = this.setHead[e]!;
    let least: Dest | null = null;
    for (; x !== -1; x = this.elemNext[x]!) {
      const d = this.elemDest[x]!;
      if ((d.flags & DEST_F_OVERLOAD) !== 0) continue;
      if (d.weight > 0 && (d.flags & DEST_F_AVAILABLE) !== 0) {
        least = d;
        break;
      }
    }
    if (least === null) return null;
    let loh = connOverhead(least);
    for (x = this.elemNext[x]!; x !== -1; x = this.elemNext[x]!) {
      const d = this.elemDest[x]!;
      if ((d.flags & DEST_F_OVERLOAD) !== 0) continue;
      const doh = connOverhead(d);
      if (loh * d.weight > doh * least.weight && (d.flags & DEST_F_AVAILABLE) !== 0) {
        least = d;
        loh = doh;
      }
    }
    return least;
  }

  /** ip_vs_dest_set_max(): most loaded member with weight > 0 (overload and AVAILABLE ignored). */
  setMax(e: number): Dest | null {
    let x = this.setHead[e]!;
    let most: Dest | null = null;
    for (; x !== -1; x = this.elemNext[x]!) {
      const d = this.elemDest[x]!;
      if (d.weight > 0) {
        most = d;
        break;
      }
    }
    if (most === null) return null;
    let moh = connOverhead(most);
    for (x = this.elemNext[x]!; x !== -1; x = this.elemNext[x]!) {
      const d = this.elemDest[x]!;
      const doh = connOverhead(d);
      if (moh * d.weight < doh * most.weight && d.weight > 0) {
        most = d;
        moh = doh;
      }
    }
    return most;
  }

  /** The members of entry e in set order (newest first). For inspection and tests. */
  members(e: number): Dest[] {
    const out: Dest[] = [];
    for (let x = this.setHead[e]!; x !== -1; x = this.elemNext[x]!) out.push(this.elemDest[x]!);
    return out;
  }
}

export const lblcr: Scheduler = {
  name: 'lblcr',

  init(svc: Service, env: SchedEnv): void {
    svc.schedData = new LblcrTable(svc.af, env.now());
  },

  done(svc: Service): void {
    (svc.schedData as LblcrTable).flush();
    svc.schedData = null;
  },

  tick(svc: Service, env: SchedEnv): void {
    (svc.schedData as LblcrTable).tick(env.now(), env.lblcrExpiration);
  },

  schedule(svc: Service, pkt: SchedPacket, env: SchedEnv): Dest | null {
    const tbl = svc.schedData as LblcrTable;
    const now = env.now();
    const e = tbl.find(pkt.daddr);
    if (e !== -1) {
      tbl.lastuse[e] = now;
      const least = tbl.setMin(e);
      // More than one member and the set has not changed for a while: shrink it.
      if (tbl.setSize[e]! > 1 && now > tbl.lastmod[e]! + env.lblcrExpiration) {
        const m = tbl.setMax(e);
        if (m !== null) tbl.setErase(e, m, now);
      }
      if (least !== null && !lblcOverloaded(least, svc)) return least;
      const d = wlcPick(svc);
      if (d === null) {
        schedErr(env, svc, MSG_NO_DEST);
        return null;
      }
      tbl.setInsert(e, d, true, now);
      return d;
    }
    const d = wlcPick(svc);
    // The kernel reports this case only at debug level, not through ip_vs_scheduler_err().
    if (d === null) return null;
    const ne = tbl.insert(pkt.daddr, now);
    tbl.setInsert(ne, d, false, now);
    return d;
  },
};
