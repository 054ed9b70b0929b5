/**
 * mh — Maglev hashing (ip_vs_mh.c).
 *
 * A lookup table of M = 4093 slots (CONFIG_IP_VS_MH_TAB_INDEX = 12 -> primes[4]). Each dest
 * (list order) gets a permutation of the slots from two SipHash-1-3 values of its address and
 * port: offset = h(hash1) % M, skip = h(hash2) % (M - 1) + 1. Dests take turns claiming their
 * next free preferred slot, `turns` slots per turn, until all M slots are taken.
 * turns = (last_weight / gcd) >> rshift (at least 1 when last_weight != 0), where gcd is over
 * the positive last_weights and rshift = max(0, fls(max_last_weight / gcd) - 6). Because
 * last_weight is used, a dest edited to weight 0 keeps its slots (and is then skipped at lookup,
 * or with mh-fallback, passed over).
 * The client address (plus the client port with mh-port) is hashed with hash1 to pick a slot.
 * Rebuilt on init, add, del and edit; never per packet.
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_OVERLOAD, PROTO_SCTP, PROTO_TCP, PROTO_UDP, SVC_F_SCHED_MH_FALLBACK, SVC_F_SCHED_MH_PORT } from '../svc/types.js';
import type { IpAddr } from '../util/ip.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_NO_DEST, SchedInitError, gcd, schedErr } from './common.js';
import { foldAddr, hsiphash32, sipKey } from './hash.js';

/** The primes the kernel may use for M; CONFIG_IP_VS_MH_TAB_INDEX (default 12) - 8 indexes them. */
export const MH_PRIMES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071] as const;
const MH_TAB_INDEX_CONFIG = 12;
export const MH_TAB_SIZE = MH_PRIMES[MH_TAB_INDEX_CONFIG - 8]; // 4093
const MH_TAB_BITS = MH_TAB_INDEX_CONFIG >> 1; // 6

/** generate_hash_secret(): fixed keys, not random (so every director builds the same table). */
export const MH_HASH1 = sipKey(0, 2654435761, 0, 2654435761);
export const MH_HASH2 = sipKey(0, 2654446892, 0, 2654446892);

export interface MhState {
  /** Slot -> dest; all null when no dest has a non-zero last_weight. */
  readonly lookup: (Dest | null)[];
  gcd: number;
  rshift: number;
  /** Scratch "slot taken" bitmap for rebuilds. */
  readonly taken: Uint8Array;
}

function unavailable(d: Dest): boolean {
  return d.weight <= 0 || (d.flags & DEST_F_OVERLOAD) !== 0;
}

/** ip_vs_mh_hashkey() for a dest address (svc->af decides the IPv6 fold, as in the kernel). */
function destHash(af: 4 | 6, a: IpAddr, port: number, key: Uint32Array): number {
  const fold = af === 6 ? (a.w0 ^ a.w1 ^ a.w2 ^ a.w3) >>> 0 : a.w0 >>> 0;
  return hsiphash32((port + fold) >>> 0, key);
}

/** ip_vs_mh_hashkey() for the client of a packet. */
function pktHash(svc: Service, pkt: SchedPacket, port: number, offset: number): number {
  return hsiphash32((offset + port + foldAddr(svc.af, pkt.saddr)) >>> 0, MH_HASH1);
}

function gcdWeight(svc: Service): number {
  let g = 0;
  for (const d of svc.dests) {
    const w = d.lastWeight;
    if (w > 0) g = g > 0 ? gcd(w, g) : w;
  }
  return g;
}

/** fls(): 1-based index of the highest set bit, 0 for 0. */
function fls(x: number): number {
  return x === 0 ? 0 : 32 - Math.clz32(x);
}

function shiftWeight(svc: Service, g: number): number {
  if (g < 1) return 0;
  let m = 0;
  for (const d of svc.dests) if (d.lastWeight > m) m = d.lastWeight;
  const shift = fls(Math.trunc(m / g)) - MH_TAB_BITS;
  return shift >= 0 ? shift : 0;
}

/** ip_vs_mh_permutate() + ip_vs_mh_populate(). */
function populate(st: MhState, svc: Service): void {
  const M = MH_TAB_SIZE;
  if (st.gcd < 1) {
    st.lookup.fill(null);
    return;
  }
  const dests = svc.dests;
  const n = dests.length;
  const skip = new Uint32Array(n);
  const perm = new Uint32Array(n);
  const turns = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const d = dests[i]!;
    perm[i] = destHash(svc.af, d.addr, d.port, MH_HASH1) % M;
    skip[i] = (destHash(svc.af, d.addr, d.port, MH_HASH2) % (M - 1)) + 1;
    const lw = d.lastWeight;
    const t = Math.trunc(lw / st.gcd) >> st.rshift;
    turns[i] = t !== 0 ? t : lw !== 0 ? 1 : 0;
  }
  const taken = st.taken;
  taken.fill(0);
  let filled = 0;
  let dtCount = 0;
  // Dests take turns in list order, each claiming `turns` slots per turn, until all M are taken.
  for (;;) {
    for (let i = 0; i < n; ) {
      if (turns[i]! < 1) {
        // dests added with zero weight get no slot
        i++;
        continue;
      }
      let c = perm[i]!;
      while (taken[c] !== 0) {
        c += skip[i]!;
        if (c >= M) c -= M;
      }
      perm[i] = c; // the kernel does not advance past a slot it just claimed
      taken[c] = 1;
      st.lookup[c] = dests[i]!;
      if (++filled === M) return;
      if (++dtCount >= turns[i]!) {
        dtCount = 0;
        i++;
      }
    }
  }
}

/** ip_vs_mh_dest_changed() / the reassign part of init. Returns false where the kernel returns -EINVAL. */
function reassign(svc: Service): boolean {
  const st = svc.schedData as MhState;
  st.gcd = gcdWeight(svc);
  st.rshift = shiftWeight(svc, st.gcd);
  // More dests than slots: the kernel refuses (-EINVAL) and leaves the old table in place.
  if (svc.dests.length > MH_TAB_SIZE) return false;
  populate(st, svc);
  return true;
}

export const mh: Scheduler = {
  name: 'mh',

  init(svc: Service): void {
    const st: MhState = {
      lookup: new Array<Dest | null>(MH_TAB_SIZE).fill(null),
      gcd: 0,
      rshift: 0,
      taken: new Uint8Array(MH_TAB_SIZE),
    };
    svc.schedData = st;
    if (!reassign(svc)) {
      svc.schedData = null;
      throw new SchedInitError('EINVAL', `mh: more than ${MH_TAB_SIZE} destinations`);
    }
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
    const st = svc.schedData as MhState;
    const M = MH_TAB_SIZE;
    let port = 0;
    if ((svc.flags & SVC_F_SCHED_MH_PORT) !== 0) {
      const p = pkt.protocol;
      if (p === PROTO_TCP || p === PROTO_UDP || p === PROTO_SCTP) port = pkt.sport;
    }
    const ihash = pktHash(svc, pkt, port, 0) % M;
    let d = st.lookup[ihash];
    if (d !== null && !unavailable(d)) return d;
    if (d !== null && (svc.flags & SVC_F_SCHED_MH_FALLBACK) !== 0) {
      // Walk the table from a deterministic "random" start: slot = hash(addr, offset) % M.
      for (let offset = 0; offset < M; offset++) {
        const roffset = (offset + ihash) % M;
        d = st.lookup[pktHash(svc, pkt, port, roffset) % M];
        if (d === null) break;
        if (!unavailable(d)) return d;
      }
    }
    schedErr(env, svc, MSG_NO_DEST);
    return null;
  },
};
