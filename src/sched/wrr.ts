/**
 * wrr — weighted round robin (ip_vs_wrr.c).
 *
 * State ("mark"): cl = position of the last pick (-1 = list head), cw = current weight
 * threshold, di = gcd of the positive weights (1 if none), mw = max weight - (di - 1).
 * Each pass over the list returns dests with weight >= cw; at the end of a pass cw drops by
 * di, and below 1 it restarts at mw.
 *
 * Every add/del/upd resets cl to the head but only clamps cw (it is not reset to mw), so
 * the first picks after incremental `-a` commands differ from a fresh init with the same dests.
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_OVERLOAD } from '../svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_ALL_OVERLOADED, MSG_NO_DEST, gcd, schedErr } from './common.js';

interface WrrMark {
  cl: number;
  cw: number;
  mw: number;
  di: number;
}

function gcdWeight(svc: Service): number {
  let g = 0;
  for (const d of svc.dests) {
    const w = d.weight;
    if (w > 0) g = g > 0 ? gcd(w, g) : w;
  }
  return g !== 0 ? g : 1;
}

function maxWeight(svc: Service): number {
  let m = 0;
  for (const d of svc.dests) if (d.weight > m) m = d.weight;
  return m;
}

/** ip_vs_wrr_dest_changed(): shared by add_dest, del_dest and upd_dest. */
function destChanged(svc: Service): void {
  const mark = svc.schedData as WrrMark;
  mark.cl = -1;
  mark.di = gcdWeight(svc);
  mark.mw = maxWeight(svc) - (mark.di - 1);
  if (mark.cw > mark.mw || mark.cw === 0) mark.cw = mark.mw;
  else if (mark.di > 1) mark.cw = Math.trunc(mark.cw / mark.di) * mark.di + 1;
}

export const wrr: Scheduler = {
  name: 'wrr',

  init(svc: Service): void {
    const di = gcdWeight(svc);
    const mw = maxWeight(svc) - (di - 1);
    const mark: WrrMark = { cl: -1, cw: mw, mw, di };
    svc.schedData = mark;
  },

  done(svc: Service): void {
    svc.schedData = null;
  },

  addDest(svc: Service): void {
    destChanged(svc);
  },

  delDest(svc: Service): void {
    destChanged(svc);
  },

  updDest(svc: Service): void {
    destChanged(svc);
  },

  schedule(svc: Service, _pkt: SchedPacket, env: SchedEnv): Dest | null {
    const mark = svc.schedData as WrrMark;
    if (mark.mw === 0) {
      schedErr(env, svc, MSG_NO_DEST);
      return null;
    }
    const dests = svc.dests;
    const n = dests.length;
    const last = mark.cl;
    let stop = -2; // none
    let lastPass = false;
    let restarted = false;
    let i = last;
    for (;;) {
      for (i = i + 1; i < n; i++) {
        const d = dests[i]!;
        if ((d.flags & DEST_F_OVERLOAD) === 0 && d.weight >= mark.cw) {
          mark.cl = i;
          return d;
        }
        if (i === stop) {
          mark.cl = i;
          schedErr(env, svc, MSG_ALL_OVERLOADED);
          return null;
        }
      }
      // reached the end of the list: lower the threshold and walk again from the head
      mark.cw -= mark.di;
      if (mark.cw <= 0) {
        mark.cw = mark.mw;
        // Stop if the last pass (w >= 1) already covered every dest.
        if (lastPass || last === -1) {
          mark.cl = -1;
          schedErr(env, svc, MSG_ALL_OVERLOADED);
          return null;
        }
        restarted = true;
      }
      lastPass = mark.cw <= mark.di;
      // The w >= 1 pass began after `last`; finish it on the dests up to `last`.
      if (lastPass && restarted && last !== -1) stop = last;
      i = -1;
    }
  },
};
