/**
 * sh — source hashing (ip_vs_sh.c).
 *
 * A 256-bucket table (CONFIG_IP_VS_SH_TAB_BITS = 8) filled by walking the dest list
 * cyclically, each dest taking max(weight, 1) consecutive buckets; rebuilt on init, add, del
 * and edit. The client address (plus, with sh-port, the client port of TCP/UDP/SCTP packets)
 * picks bucket hash_32(port + addr, 8). A dest is unavailable when weight <= 0 or overloaded
 * (AVAILABLE is not checked: after a rebuild the table only holds linked dests).
 * sh-fallback: when the bucket's dest is unavailable, try buckets (offset + 2*ihash) & 255 for
 * offset = 0..255 and take the first available one; an empty bucket ends the search.
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_OVERLOAD, PROTO_SCTP, PROTO_TCP, PROTO_UDP, SVC_F_SCHED_SH_FALLBACK, SVC_F_SCHED_SH_PORT } from '../svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_NO_DEST, schedErr } from './common.js';
import { foldAddr, hash32 } from './hash.js';

export const SH_TAB_BITS = 8;
export const SH_TAB_SIZE = 1 << SH_TAB_BITS;
const SH_TAB_MASK = SH_TAB_SIZE - 1;

export interface ShState {
  readonly buckets: (Dest | null)[];
}

function unavailable(d: Dest): boolean {
  return d.weight <= 0 || (d.flags & DEST_F_OVERLOAD) !== 0;
}

/** ip_vs_sh_reassign(). */
function reassign(svc: Service): void {
  const st = svc.schedData as ShState;
  const dests = svc.dests;
  const n = dests.length;
  let p = 0;
  let count = 0;
  for (let i = 0; i < SH_TAB_SIZE; i++) {
    if (n === 0) {
      st.buckets[i] = null;
      continue;
    }
    const d = dests[p]!;
    st.buckets[i] = d;
    // Don't move to the next dest until it filled `weight` buckets (weight 0 still gets one).
    if (++count >= d.weight) {
      p = p + 1 === n ? 0 : p + 1;
      count = 0;
    }
  }
}

/** ip_vs_sh_hashkey() with offset 0: hash_32(ntohs(port) + ntohl(addr_fold), 8). */
function shHash(svc: Service, pkt: SchedPacket, port: number): number {
  return hash32((port + foldAddr(svc.af, pkt.saddr)) >>> 0, SH_TAB_BITS);
}

export const sh: Scheduler = {
  name: 'sh',

  init(svc: Service): void {
    const st: ShState = { buckets: new Array<Dest | null>(SH_TAB_SIZE).fill(null) };
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

  updDest(svc: Service): void {
    reassign(svc);
  },

  schedule(svc: Service, pkt: SchedPacket, env: SchedEnv): Dest | null {
    const st = svc.schedData as ShState;
    let port = 0;
    if ((svc.flags & SVC_F_SCHED_SH_PORT) !== 0) {
      const p = pkt.protocol;
      if (p === PROTO_TCP || p === PROTO_UDP || p === PROTO_SCTP) port = pkt.sport;
    }
    const ihash = shHash(svc, pkt, port);
    let d = st.buckets[ihash];
    if (d !== null && !unavailable(d)) return d;
    if (d !== null && (svc.flags & SVC_F_SCHED_SH_FALLBACK) !== 0) {
      for (let offset = 0; offset < SH_TAB_SIZE; offset++) {
        const roffset = (offset + ihash) % SH_TAB_SIZE;
        d = st.buckets[(roffset + ihash) & SH_TAB_MASK];
        if (d === null) break;
        if (!unavailable(d)) return d;
      }
    }
    schedErr(env, svc, MSG_NO_DEST);
    return null;
  },
};
