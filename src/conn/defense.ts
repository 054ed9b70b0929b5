/**
 * The drop_entry defense (ip_vs_random_dropentry in ip_vs_conn.c): when
 * active, the defense timer calls this once a second to delete entries that
 * are cheap to lose before memory runs out.
 *
 * The kernel scans 1/32 of its hash buckets picked at random; we sample
 * 1/32 of the hash slots at random, which visits the same expected number of
 * entries (count / 32).
 */
import type { ConnTable } from './table.js';
import {
  CONN_F_TEMPLATE, CTPL_S_ASSURED, SCTP_S_ESTABLISHED, SCTP_S_INIT, SCTP_S_INIT1, TCP_S_ESTABLISHED,
  TCP_S_SYNACK, TCP_S_SYN_RECV,
} from './flags.js';
import { SVC_F_ONEPACKET } from '../svc/types.js';

/**
 * todrop_entry's state: one countdown per in_pkts value 0..8, dropping one of
 * every `rate[i]` candidates with i incoming packets (i = 0 never).
 */
export class DropEntryState {
  readonly counter = new Int8Array(9);
}

const TODROP_RATE = Int8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8]);

/** todrop_entry: idle for at least 60 s and a few incoming packets, rate-limited per packet count. */
function todropEntry(t: ConnTable, id: number, now: number, st: DropEntryState): boolean {
  // Kernel: time_before(cp->timeout + jiffies, cp->timer.expires + 60*HZ) -> keep.
  if (t.timeoutOf(id) + now < t.expiresOf(id) + 60) return false;
  const i = t.inPktsOf(id);
  if (i > 8) return false;
  const rate = TODROP_RATE[i]!;
  if (rate === 0) return false;
  st.counter[i] = st.counter[i]! - 1;
  if (st.counter[i]! > 0) return false;
  st.counter[i] = rate;
  return true;
}

/** Does the entry's service use one-packet scheduling (ip_vs_conn_ops_mode)? */
function opsMode(t: ConnTable, id: number): boolean {
  const dest = t.destOf(id);
  return dest !== undefined && (dest.svc.flags & SVC_F_ONEPACKET) !== 0;
}

/**
 * One round of ip_vs_random_dropentry. `random32` gives uniform uint32s.
 * Returns the number of entries freed.
 */
export function randomDropEntry(t: ConnTable, now: number, random32: () => number, st: DropEntryState): number {
  const before = t.count;
  const mask = t.hashSlots - 1;
  const rounds = t.hashSlots >>> 5;
  for (let r = 0; r < rounds; r++) {
    const id = t.idAtSlot(random32() & mask);
    if (id < 0 || t.nControlled[id]! > 0) continue;
    let drop: boolean;
    if (t.flags[id]! & CONN_F_TEMPLATE) {
      // Templates of one-packet services see in_pkts updates, so the idle rule applies to them.
      if (opsMode(t, id)) drop = todropEntry(t, id, now, st);
      else drop = (t.stateOf(id) & CTPL_S_ASSURED) === 0;
    } else if (t.proto[id] === 6) {
      const s = t.stateOf(id);
      drop = s === TCP_S_SYN_RECV || s === TCP_S_SYNACK || (s === TCP_S_ESTABLISHED && todropEntry(t, id, now, st));
    } else if (t.proto[id] === 132) {
      const s = t.stateOf(id);
      drop = s === SCTP_S_INIT1 || s === SCTP_S_INIT || (s === SCTP_S_ESTABLISHED && todropEntry(t, id, now, st));
    } else {
      drop = todropEntry(t, id, now, st);
    }
    if (drop) t.drop(id, now);
  }
  return before - t.count;
}
