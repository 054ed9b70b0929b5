/**
 * wlc — weighted least connection, the default scheduler (ip_vs_wlc.c).
 *
 * Smallest (activeconns*256 + inactconns) / weight, compared by cross-multiplication with a
 * strict `>` so the earlier dest in list order wins ties. See wlcPick() for the two stages.
 */
import type { Dest, Service } from '../svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_NO_DEST, schedErr, wlcPick } from './common.js';

export const wlc: Scheduler = {
  name: 'wlc',

  schedule(svc: Service, _pkt: SchedPacket, env: SchedEnv): Dest | null {
    const d = wlcPick(svc);
    if (d === null) schedErr(env, svc, MSG_NO_DEST);
    return d;
  },
};
