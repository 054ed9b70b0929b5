/**
 * rr — round robin (ip_vs_rr.c).
 *
 * The kernel keeps a cursor into the dest list (initially the list head). A pick walks from
 * the element after the cursor to the end, then — unless the cursor was the head — wraps and
 * continues up to and including the cursor's own dest. Deleting the cursor's dest moves the
 * cursor to the previous element, so the next pick is the element that followed it.
 *
 * Here the cursor is an index into svc.dests (-1 = head) plus the Dest it names: new dests
 * are inserted at index 0 (shifting the cursor), deletions before it shift it back.
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_OVERLOAD } from '../svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_NO_DEST, schedErr } from './common.js';

interface RrState {
  /** Index of the last dest picked, -1 for the list head. */
  idx: number;
  /** The dest at `idx` (null for the head), to detect a list changed behind our back. */
  cur: Dest | null;
}

function state(svc: Service): RrState {
  return svc.schedData as RrState;
}

export const rr: Scheduler = {
  name: 'rr',

  init(svc: Service): void {
    const st: RrState = { idx: -1, cur: null };
    svc.schedData = st;
  },

  done(svc: Service): void {
    svc.schedData = null;
  },

  addDest(svc: Service): void {
    // The kernel has no add_dest for rr: the cursor stays on its dest, which moved down one slot.
    const st = state(svc);
    if (st.idx >= 0) st.idx++;
  },

  delDest(svc: Service, dest: Dest, oldIndex: number): void {
    const st = state(svc);
    if (st.cur === dest) {
      // The kernel steps back to the previous element (or the head).
      st.idx = oldIndex - 1;
      st.cur = st.idx >= 0 ? svc.dests[st.idx]! : null;
    } else if (st.idx > oldIndex) {
      st.idx--;
    }
  },

  schedule(svc: Service, _pkt: SchedPacket, env: SchedEnv): Dest | null {
    const st = state(svc);
    const dests = svc.dests;
    const n = dests.length;
    let start = st.idx;
    if (start >= 0 && dests[start] !== st.cur) {
      // Defensive: resynchronise if the list was edited without add/del callbacks.
      start = st.cur === null ? -1 : dests.indexOf(st.cur);
    }
    for (let i = start + 1; i < n; i++) {
      const d = dests[i]!;
      if ((d.flags & DEST_F_OVERLOAD) === 0 && d.weight > 0) {
        st.idx = i;
        st.cur = d;
        return d;
      }
    }
    // Second pass (only when the cursor was not the head): from the first dest up to the cursor.
    if (start >= 0) {
      for (let i = 0; i <= start && i < n; i++) {
        const d = dests[i]!;
        if ((d.flags & DEST_F_OVERLOAD) === 0 && d.weight > 0) {
          st.idx = i;
          st.cur = d;
          return d;
        }
      }
    }
    schedErr(env, svc, MSG_NO_DEST);
    return null;
  },
};
