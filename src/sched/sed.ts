/**
 * sed — shortest expected delay (ip_vs_sed.c).
 *
 * wlc's two-stage procedure with overhead = activeconns + 1 (inactive connections ignored):
 * the first non-overloaded dest with weight > 0 is the candidate, then every later
 * non-overloaded dest replaces it when (cand+1)*w_d > (d+1)*w_cand. Weight-0 dests are not
 * skipped in the second stage; their product is 0 so they cannot win.
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_OVERLOAD } from '../svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_NO_DEST, schedErr } from './common.js';

export const sed: Scheduler = {
  name: 'sed',

  schedule(svc: Service, _pkt: SchedPacket, env: SchedEnv): Dest | null {
    const dests = svc.dests;
    const n = dests.length;
    let i = 0;
    let least: Dest | null = null;
    for (; i < n; i++) {
      const d = dests[i]!;
      if ((d.flags & DEST_F_OVERLOAD) === 0 && d.weight > 0) {
        least = d;
        break;
      }
    }
    if (least === null) {
      schedErr(env, svc, MSG_NO_DEST);
      return null;
    }
    let loh = (least.activeConns + 1) | 0;
    for (i++; i < n; i++) {
      const d = dests[i]!;
      if ((d.flags & DEST_F_OVERLOAD) !== 0) continue;
      const doh = (d.activeConns + 1) | 0;
      if (loh * d.weight > doh * least.weight) {
        least = d;
        loh = doh;
      }
    }
    return least;
  },
};
