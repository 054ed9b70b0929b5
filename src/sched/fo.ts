/**
 * fo — weighted fail-over (ip_vs_fo.c).
 *
 * The non-overloaded dest with the highest weight (> 0) gets every new connection;
 * the first of several equal maxima (list order) wins. Connection counts are ignored.
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_OVERLOAD } from '../svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_NO_DEST, schedErr } from './common.js';

export const fo: Scheduler = {
  name: 'fo',

  schedule(svc: Service, _pkt: SchedPacket, env: SchedEnv): Dest | null {
    const dests = svc.dests;
    let best: Dest | null = null;
    let hw = 0;
    for (let i = 0; i < dests.length; i++) {
      const d = dests[i]!;
      if ((d.flags & DEST_F_OVERLOAD) === 0 && d.weight > hw) {
        best = d;
        hw = d.weight;
      }
    }
    if (best === null) schedErr(env, svc, MSG_NO_DEST);
    return best;
  },
};
