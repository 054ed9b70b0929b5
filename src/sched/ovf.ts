/**
 * ovf — weighted overflow (ip_vs_ovf.c).
 *
 * A dest is skipped when overloaded, when its weight is 0, or when its active connections
 * exceed its weight. Among the rest the highest weight wins (first of equals), so traffic
 * stays on the heaviest dest until it is "full", then overflows to the next one.
 * Only active connections count (so it is unsuited to UDP).
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_OVERLOAD } from '../svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_NO_DEST, schedErr } from './common.js';

export const ovf: Scheduler = {
  name: 'ovf',

  schedule(svc: Service, _pkt: SchedPacket, env: SchedEnv): Dest | null {
    const dests = svc.dests;
    let best: Dest | null = null;
    let hw = 0;
    for (let i = 0; i < dests.length; i++) {
      const d = dests[i]!;
      const w = d.weight;
      if ((d.flags & DEST_F_OVERLOAD) !== 0 || d.activeConns > w || w === 0) continue;
      if (best === null || w > hw) {
        best = d;
        hw = w;
      }
    }
    if (best === null) schedErr(env, svc, MSG_NO_DEST);
    return best;
  },
};
