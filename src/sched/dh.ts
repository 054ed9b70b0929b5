/**
 * dh — destination hashing (ip_vs_dh.c).
 *
 * A 256-bucket table (CONFIG_IP_VS_DH_TAB_BITS = 8) filled by walking the dest list
 * cyclically, one bucket per dest (weights are not used), rebuilt on init, add and del —
 * not on edits. The packet's destination address picks the bucket via hash_32(addr, 8);
 * the dest there must be AVAILABLE, have weight > 0 and not be overloaded. No fallback.
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD } from '../svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_NO_DEST, schedErr } from './common.js';
import { foldAddr, hash32 } from './hash.js';

export const DH_TAB_BITS = 8;
export const DH_TAB_SIZE = 1 << DH_TAB_BITS;

export interface DhState {
  /** Bucket -> dest (null when the service has no dests). */
  readonly buckets: (Dest | null)[];
}

/** ip_vs_dh_reassign(): bucket i gets list[i mod n]. */
function reassign(svc: Service): void {
  const st = svc.schedData as DhState;
  const dests = svc.dests;
  const n = dests.length;
  for (let i = 0; i < DH_TAB_SIZE; i++) st.buckets[i] = n === 0 ? null : dests[i % n]!;
}

export const dh: Scheduler = {
  name: 'dh',

  init(svc: Service): void {
    const st: DhState = { buckets: new Array<Dest | null>(DH_TAB_SIZE).fill(null) };
    svc.schedData = st;
    reassign(svc);
  },

  done(svc: Service): void {
    svc.schedData = null;
  },

  addDest(svc: Service): void {
    reassign(svc);
  },

  delDest(svc: Service): void {
    reassign(svc);
  },

  schedule(svc: Service, pkt: SchedPacket, env: SchedEnv): Dest | null {
    const st = svc.schedData as DhState;
    const d = st.buckets[hash32(foldAddr(svc.af, pkt.daddr), DH_TAB_BITS)];
    if (d === null || (d.flags & DEST_F_AVAILABLE) === 0 || d.weight <= 0 || (d.flags & DEST_F_OVERLOAD) !== 0) {
      schedErr(env, svc, MSG_NO_DEST);
      return null;
    }
    return d;
  },
};
