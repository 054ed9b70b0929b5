/**
 * nq — never queue (ip_vs_nq.c).
 *
 * Skipping overloaded and weight-0 dests, the first dest (list order) with no active
 * connection is returned at once; otherwise the smallest (activeconns + 1) / weight wins,
 * strict comparison, earlier dest on ties.
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_OVERLOAD } from '../svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_NO_DEST, schedErr } from './common.js';

export const nq: Scheduler = {
  name: 'nq',

  schedule(svc: Service, _pkt: SchedPacket, env: SchedEnv): Dest | null {
    const dests = svc.dests;
    let least: Dest | null = null;
    let loh = 0;
    for (let i = 0; i < dests.length; i++) {
      const d = dests[i]!;
      if ((d.flags & DEST_F_OVERLOAD) !== 0 || d.weight === 0) continue;
      if (d.activeConns === 0) return d; // an idle server takes the job immediately
      const doh = (d.activeConns + 1) | 0;
      if (least === null || loh * d.weight > doh * least.weight) {
        least = d;
        loh = doh;
      }
    }
    if (least === null) schedErr(env, svc, MSG_NO_DEST);
    return least;
  },
};
