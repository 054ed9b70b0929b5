/**
 * lc — least connection (ip_vs_lc.c).
 *
 * Among dests that are not overloaded and have weight != 0, the smallest
 * activeconns*256 + inactconns wins (compared as C `unsigned int`); ties keep the earlier
 * dest in list order. The weight value itself is otherwise ignored.
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_OVERLOAD } from '../svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_NO_DEST, connOverhead, schedErr } from './common.js';

export const lc: Scheduler = {
  name: 'lc',

  schedule(svc: Service, _pkt: SchedPacket, env: SchedEnv): Dest | null {
    const dests = svc.dests;
    let least: Dest | null = null;
    let loh = 0;
    for (let i = 0; i < dests.length; i++) {
      const d = dests[i]!;
      if ((d.flags & DEST_F_OVERLOAD) !== 0 || d.weight === 0) continue;
      const doh = connOverhead(d) >>> 0;
      if (least === null || doh < loh) {
        least = d;
        loh = doh;
      }
    }
    if (least === null) schedErr(env, svc, MSG_NO_DEST);
    return least;
  },
};
