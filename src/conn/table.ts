/**
 * The connection table (ip_vs_conn.c): connections and persistence templates
 * in struct-of-arrays form, indexed by an integer connection id.
 *
 * Layout (DESIGN rule 2):
 *  - Per-connection fields live in typed arrays of fixed capacity; free ids
 *    are kept on a free list threaded through the timer-wheel `next` array.
 *  - One open-addressing hash (linear probing, backward-shift deletion, load
 *    factor <= 1/2) holds ONE 24-byte record per hashed entry with everything a
 *    probe compares: client, virtual and dest keys, the three ports, protocol,
 *    kind bits and the id. Like the kernel, an entry is hashed by its client
 *    side (protocol, caddr, cport) only, so the same record answers the
 *    inbound lookup (client -> VIP) and the reply lookup (RS -> client).
 *  - IPv4 addresses are stored inline. IPv6 conns keep a 32-bit digest inline
 *    (used by the hash and the probe) and their full addresses in a side store
 *    of `v6Capacity` entries, read only to confirm a digest match.
 *  - What every packet of a connection reads or writes (state, timeout,
 *    expiry, incoming-packet count, dest and service ids, forwarding method)
 *    sits in one 32-byte "hot" record per id, two per cache line: with the
 *    hash record that is two cache lines per packet, where parallel arrays
 *    cost one miss each at 100k+ flows. Those fields are read and written
 *    through small methods (stateOf, setState, timeoutOf, expiresOf,
 *    inPktsOf, countInPkt, ...); the colder fields stay public typed arrays.
 *  - Expiry runs from one coarse clock through a timing wheel of one-second
 *    ticks with lazy re-queueing: refreshing a conn is one store to its expiry.
 *
 * Everything on the packet path (lookups, create, touch, state changes) works
 * on numbers and typed arrays only; nothing allocates.
 */
import type { Dest } from '../svc/types.js';
import * as svcTypes from '../svc/types.js';
import * as flagConsts from './flags.js';
import { stateNameOf } from './names.js';
import * as timeouts from './timeouts.js';
import { Timeouts } from './timeouts.js';

// Module-local copies of the imported constants (as in core/fastpath.ts): an imported
// binding is a live cell that optimized code loads and checks for the hole at every use
// (about 5 instructions; create() used nine per new connection), a local const is folded.
const DEST_F_OVERLOAD = svcTypes.DEST_F_OVERLOAD;
const CONN_F_FWD_MASK = flagConsts.CONN_F_FWD_MASK;
const CONN_F_HASHED = flagConsts.CONN_F_HASHED;
const CONN_F_INACTIVE = flagConsts.CONN_F_INACTIVE;
const CONN_F_MASQ = flagConsts.CONN_F_MASQ;
const CONN_F_NOOUTPUT = flagConsts.CONN_F_NOOUTPUT;
const CONN_F_NO_CPORT = flagConsts.CONN_F_NO_CPORT;
const CONN_F_ONE_PACKET = flagConsts.CONN_F_ONE_PACKET;
const CONN_F_SYNC = flagConsts.CONN_F_SYNC;
const CONN_F_TEMPLATE = flagConsts.CONN_F_TEMPLATE;
const CTPL_S_ASSURED = flagConsts.CTPL_S_ASSURED;
const CONTROL_POSTPONE = timeouts.CONTROL_POSTPONE;
const NEW_CONN_TIMEOUT = timeouts.NEW_CONN_TIMEOUT;

/** How the table finds the Dest object behind a dest id (also for dests in the trash). */
export interface DestLookup {
  destById(id: number): Dest | undefined;
}

export interface ConnTableOptions {
  /** Maximum number of entries (connections + templates). */
  capacity: number;
  dests: DestLookup;
  /** Entries that may involve an IPv6 address at the same time. Default capacity / 4. */
  v6Capacity?: number;
  /** Timeout tables the state machines read. Default: a fresh kernel-default store. */
  timeouts?: Timeouts;
  /** Hash seed (the kernel's random ip_vs_conn_rnd). Default: random. */
  seed?: number;
  /** Timing wheel size in one-second ticks, a power of two. Default 4096. */
  wheelSize?: number;
}

/** Which address `getAddr` returns. */
export const ADDR_C = 0;
export const ADDR_V = 1;
export const ADDR_D = 2;

// Hash record: 6 uint32 words (24 bytes), everything a probe compares.
export const REC = 6;
/** Client key: IPv4 caddr, or the IPv6 digest. */
const R_C = 0;
/** Virtual key: IPv4 vaddr, IPv6 digest, or (protocol 0 templates) the fwmark word. */
const R_V = 1;
/** Dest key: IPv4 daddr or the IPv6 digest (NAT replies compare it). */
const R_D = 2;
/** cport << 16 | vport. */
const R_P = 3;
/** dport << 16 | protocol << 8 | meta bits. */
const R_M = 4;
/** Connection id. */
const R_ID = 5;
const M_USED = 0x01;
const M_TPL = 0x02;
const M_NOCPORT = 0x04;
const M_AF6 = 0x08;
const M_MASQ = 0x10;
/** Inbound match: protocol and USED|TPL|NOCPORT|AF6 (templates never match: TPL must be clear). */
const IN_MASK = 0xff00 | M_USED | M_TPL | M_NOCPORT | M_AF6;
/** Reply and template matches ignore NO_CPORT, as the kernel does. */
const TPL_MASK = 0xff00 | M_USED | M_TPL | M_AF6;
/** Same client key (for newest-first ordering): protocol and family. */
const CLIENT_MASK = 0xff00 | M_AF6;

/** The R_M word of an entry with these flags, family, protocol and dport. */
function recordMetaOf(flags: number, af: number, proto: number, dport: number): number {
  let m = M_USED;
  if (flags & CONN_F_TEMPLATE) m |= M_TPL;
  if (flags & CONN_F_NO_CPORT) m |= M_NOCPORT;
  if (af === 6) m |= M_AF6;
  if ((flags & CONN_F_FWD_MASK) === CONN_F_MASQ) m |= M_MASQ;
  return ((dport << 16) | (proto << 8) | m) >>> 0;
}

/** IPv6 side store entry: caddr[4], vaddr[4], daddr[4]. */
const V6W = 12;

// Hot record: 32 bytes per id (HOT uint32 words), viewed as uint32, int32, float64 and bytes.
const HOT = 8;
const HOT_BYTES = HOT * 4;
/** Seconds; the expiry is re-armed to now + timeout on every use (uint32 word). */
const H_TIMEOUT = 0;
/** Incoming packets (uint32 word). */
const H_INPKTS = 1;
/** Expiry (clock seconds): float64 at byte 8, i.e. float64 index id * 4 + 1. */
const H_EXPIRES64 = 1;
/** Bound dest id or -1 (int32 word; mirrors destId). */
const H_DEST = 4;
/** Service id (int32 word; mirrors svcId). */
const H_SVC = 5;
/** Protocol state (byte). */
const HB_STATE = 24;
/** Forwarding method, flags & CONN_F_FWD_MASK (byte; fixed once the dest is bound). */
const HB_FWD = 25;
/** Family of daddr (byte). */
const HB_DAF = 26;

/**
 * Home slot of a client key (af, protocol, client key, cport) in a table of mask + 1
 * slots hashed with `seed`: the kernel's ip_vs_conn_hashkey. A plain function so batch
 * code can hold seed and mask in locals (ConnTable.seed, ConnTable.slotMask). A module
 * `const` (not a function declaration, not read through the export) so callers here
 * get it as a constant: no binding load and identity check before the inlined body.
 */
const hashHome = (seed: number, mask: number, af: number, proto: number, ckey: number, cport: number): number => {
  let h = Math.imul(ckey ^ seed, 0xcc9e2d51);
  h = (h << 15) | (h >>> 17);
  h = Math.imul(h, 0x1b873593);
  h ^= cport | (proto << 16) | (af << 24);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & mask;
};
/** hashHome for other modules (bind it to a module `const` there too). */
export const homeHash = hashHome;

/**
 * The hash and hot record layouts, for batch code that holds the record arrays in locals
 * (FastPath.run, through ConnTable.hashRecords and the hot* accessors). Bind the fields it
 * uses to module consts there, as with the other imported constants.
 */
export const recordLayout = {
  REC, R_C, R_V, R_D, R_P, R_M, R_ID, M_USED, M_NOCPORT, M_MASQ, IN_MASK, TPL_MASK,
  HOT, H_TIMEOUT, H_INPKTS, H_EXPIRES64, H_DEST, H_SVC, HB_STATE, HB_FWD, HB_DAF,
} as const;

export class ConnTable {
  readonly capacity: number;
  readonly dests: DestLookup;
  readonly timeouts: Timeouts;

  // Per-connection fields. Read freely; change them only through the methods
  // (state machines write state/flags through their own modules).
  /** 4 or 6; 0 marks a free id. */
  readonly af: Uint8Array;
  /** Family of daddr (differs from af only for mixed-family tunnel dests). */
  readonly daf: Uint8Array;
  readonly proto: Uint8Array;
  /** For the sync daemon (cp->old_state); the table only zeroes it. */
  readonly oldState: Uint8Array;
  readonly flags: Uint32Array;
  /** IPv4 addresses (host order); for IPv6 a digest: use getAddr for the words. */
  readonly caddr: Uint32Array;
  readonly vaddr: Uint32Array;
  readonly daddr: Uint32Array;
  readonly cport: Uint16Array;
  readonly vport: Uint16Array;
  readonly dport: Uint16Array;
  readonly fwmark: Uint32Array;
  readonly svcId: Int32Array;
  readonly destId: Int32Array;
  /** Controlling template (or control conn) id, or -1. */
  readonly control: Int32Array;
  /** Number of entries this one controls. */
  readonly nControlled: Uint32Array;

  // The hot records (see the header): one buffer, four views.
  private readonly hot32: Uint32Array;
  private readonly hotI32: Int32Array;
  private readonly hot64: Float64Array;
  private readonly hot8: Uint8Array;

  private readonly v6Idx: Int32Array;
  private readonly v6: Uint32Array;
  private readonly v6Next: Int32Array;
  private v6Free: number;
  readonly v6Capacity: number;

  private readonly slots: Uint32Array;
  /** The record being placed by hashInsert (scratch, so inserting allocates nothing). */
  private readonly carry = new Uint32Array(REC);
  /** hashSlots - 1 (read by FastPath.prepare into a local for homeHash). */
  readonly slotMask: number;
  readonly hashSlots: number;
  /** The hash seed (read by FastPath.prepare into a local for homeHash). */
  readonly seed: number;

  // Timing wheel: ids 0..capacity-1 are entries; capacity + b is the list head of
  // bucket b; capacity + wheelSize is the scratch list runExpiry drains.
  private readonly wnext: Int32Array;
  private readonly wprev: Int32Array;
  private readonly wheelSize: number;
  private readonly wheelMask: number;
  private readonly scratch: number;
  private lastTick = -1;

  private freeHead: number;
  private highWater = 0;
  private live = 0;
  private noCport = 0;
  private onFree: ((id: number) => void) | null = null;

  constructor(opts: ConnTableOptions) {
    const cap = Math.floor(opts.capacity);
    if (!(cap >= 1 && cap <= 0x7ffffff)) throw new RangeError(`conn table capacity out of range: ${opts.capacity}`);
    this.capacity = cap;
    this.dests = opts.dests;
    this.timeouts = opts.timeouts ?? new Timeouts();
    this.af = new Uint8Array(cap);
    this.daf = new Uint8Array(cap);
    this.proto = new Uint8Array(cap);
    this.oldState = new Uint8Array(cap);
    this.flags = new Uint32Array(cap);
    this.caddr = new Uint32Array(cap);
    this.vaddr = new Uint32Array(cap);
    this.daddr = new Uint32Array(cap);
    this.cport = new Uint16Array(cap);
    this.vport = new Uint16Array(cap);
    this.dport = new Uint16Array(cap);
    this.fwmark = new Uint32Array(cap);
    this.svcId = new Int32Array(cap);
    this.destId = new Int32Array(cap);
    this.control = new Int32Array(cap);
    this.nControlled = new Uint32Array(cap);
    const hot = new ArrayBuffer(cap * HOT_BYTES);
    this.hot32 = new Uint32Array(hot);
    this.hotI32 = new Int32Array(hot);
    this.hot64 = new Float64Array(hot);
    this.hot8 = new Uint8Array(hot);

    const v6cap = Math.max(1, Math.floor(opts.v6Capacity ?? Math.max(16, cap >>> 2)));
    this.v6Capacity = v6cap;
    this.v6Idx = new Int32Array(cap).fill(-1);
    this.v6 = new Uint32Array(v6cap * V6W);
    this.v6Next = new Int32Array(v6cap);
    for (let i = 0; i < v6cap; i++) this.v6Next[i] = i + 1 < v6cap ? i + 1 : -1;
    this.v6Free = 0;

    let n = 16;
    while (n < cap * 2) n *= 2;
    this.hashSlots = n;
    this.slotMask = n - 1;
    this.slots = new Uint32Array(n * REC);
    this.seed = (opts.seed ?? Math.floor(Math.random() * 0x100000000)) >>> 0;

    const w = opts.wheelSize ?? 4096;
    if (!(w >= 2 && (w & (w - 1)) === 0)) throw new RangeError('wheelSize must be a power of two');
    this.wheelSize = w;
    this.wheelMask = w - 1;
    this.scratch = cap + w;
    this.wnext = new Int32Array(cap + w + 1);
    this.wprev = new Int32Array(cap + w + 1);
    for (let s = cap; s <= cap + w; s++) { this.wnext[s] = s; this.wprev[s] = s; }
    // Free list threaded through wnext, ascending ids first.
    for (let i = 0; i < cap; i++) { this.wnext[i] = i + 1 < cap ? i + 1 : -1; this.wprev[i] = -1; }
    this.freeHead = 0;
  }

  /** Live entries (connections and templates), like the kernel's conn_count. */
  get count(): number {
    return this.live;
  }

  /** All typed-array bytes divided by capacity (hash, wheel and IPv6 side store included). */
  bytesPerConn(): number {
    const arrays: ArrayBufferView[] = [
      this.af, this.daf, this.proto, this.oldState, this.flags, this.caddr, this.vaddr,
      this.daddr, this.cport, this.vport, this.dport, this.fwmark, this.svcId, this.destId, this.control,
      this.nControlled, this.hot32, this.v6Idx, this.v6, this.v6Next,
      this.slots, this.wnext, this.wprev,
    ];
    let bytes = 0;
    for (const a of arrays) bytes += a.byteLength;
    return bytes / this.capacity;
  }

  isLive(id: number): boolean {
    return id >= 0 && id < this.capacity && this.af[id] !== 0;
  }

  // ---------------------------------------------------------------- hot fields

  /** Protocol state (TCP_S_*, UDP_S_*, SCTP_S_*; template bits like CTPL_S_ASSURED). */
  stateOf(id: number): number {
    return this.hot8[id * HOT_BYTES + HB_STATE]!;
  }

  /** For the state machines and tests: sets the state byte, nothing else. */
  setState(id: number, state: number): void {
    this.hot8[id * HOT_BYTES + HB_STATE] = state;
  }

  /** Seconds; the expiry is re-armed to now + timeout on every use. */
  timeoutOf(id: number): number {
    return this.hot32[id * HOT + H_TIMEOUT]!;
  }

  /** Clock value (seconds) at which the entry expires. */
  expiresOf(id: number): number {
    return this.hot64[id * 4 + H_EXPIRES64]!;
  }

  /** Incoming packets (the engine counts; sync and defenses read). */
  inPktsOf(id: number): number {
    return this.hot32[id * HOT + H_INPKTS]!;
  }

  setInPkts(id: number, n: number): void {
    this.hot32[id * HOT + H_INPKTS] = n;
  }

  /** Counts one incoming packet (atomic_inc_return(&cp->in_pkts)); returns the new count, wrapping like a uint32. */
  countInPkt(id: number): number {
    const k = id * HOT + H_INPKTS;
    const n = (this.hot32[k]! + 1) >>> 0;
    this.hot32[k] = n;
    return n;
  }

  /** The service id: the same value as svcId[id], read from the hot record. */
  svcIdOf(id: number): number {
    return this.hotI32[id * HOT + H_SVC]!;
  }

  // ---------------------------------------------------------------- keys

  /** A 32-bit digest of an IPv6 address (seeded; equal addresses give equal digests). */
  private digest6(a: Uint32Array): number {
    let h = Math.imul(this.seed ^ a[0]!, 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h ^ a[1]!, 0x85ebca77);
    h ^= h >>> 13;
    h = Math.imul(h ^ a[2]!, 0xc2b2ae3d);
    h ^= h >>> 16;
    h = Math.imul(h ^ a[3]!, 0x27d4eb2f);
    h ^= h >>> 15;
    return h >>> 0;
  }

  /** Home slot of a client key (af, protocol, client key, cport): the kernel's ip_vs_conn_hashkey. */
  private home(af: number, proto: number, ckey: number, cport: number): number {
    return hashHome(this.seed, this.slotMask, af, proto, ckey, cport);
  }

  /** Confirms the full IPv6 words behind a digest match. `vWords` 0: skip vaddr, 1: word 0 only, 4: all. */
  private v6Equal(id: number, caddr: Uint32Array, vaddr: Uint32Array | null, vWords: number): boolean {
    const b = this.v6Idx[id]! * V6W;
    const s = this.v6;
    if (s[b] !== caddr[0] || s[b + 1] !== caddr[1] || s[b + 2] !== caddr[2] || s[b + 3] !== caddr[3]) return false;
    if (vaddr === null || vWords === 0) return true;
    if (s[b + 4] !== vaddr[0]) return false;
    if (vWords === 1) return true;
    return s[b + 5] === vaddr[1] && s[b + 6] === vaddr[2] && s[b + 7] === vaddr[3];
  }

  // ---------------------------------------------------------------- lookups

  /**
   * ip_vs_conn_in_get: the connection of a client -> virtual service packet, or -1.
   * A NO_CPORT conn (cport not known yet) answers when nothing matches the real
   * cport, through a second lookup with cport 0, as the kernel does.
   */
  lookupIn(af: number, proto: number, caddr: Uint32Array, cport: number, vaddr: Uint32Array, vport: number): number {
    if (af === 4) {
      const r4 = this.findIn4(proto, caddr[0]!, cport, vaddr[0]!, vport);
      return r4 < 0 ? -1 : this.slots[r4 + R_ID]!;
    }
    const ck = this.digest6(caddr);
    const vk = proto === 0 ? vaddr[0]! : this.digest6(vaddr);
    let r = this.probeIn(af, proto, ck, cport, vk, vport, caddr, vaddr);
    if (r < 0 && this.noCport > 0 && cport !== 0) r = this.probeIn(af, proto, ck, 0, vk, vport, caddr, vaddr);
    return r < 0 ? -1 : this.slots[r + R_ID]!;
  }

  /** The matched hash record's position, or -1. */
  private probeIn(af: number, proto: number, ck: number, cport: number, vk: number, vport: number,
    caddr: Uint32Array, vaddr: Uint32Array): number {
    const s = this.slots;
    const mask = this.slotMask;
    const ports = ((cport << 16) | vport) >>> 0;
    // Kernel: (!p->cport) ^ (!(cp->flags & NO_CPORT)) — cport 0 only finds NO_CPORT conns and vice versa.
    const meta = (proto << 8) | M_USED | (af === 6 ? M_AF6 : 0) | (cport === 0 ? M_NOCPORT : 0);
    let i = this.home(af, proto, ck, cport);
    for (;;) {
      const b = i * REC;
      const m = s[b + R_M]!;
      if ((m & M_USED) === 0) return -1;
      if (s[b + R_C] === ck && s[b + R_P] === ports && (m & IN_MASK) === meta && s[b + R_V] === vk) {
        if (af === 4 || this.v6Equal(s[b + R_ID]!, caddr, vaddr, proto === 0 ? 1 : 4)) return b;
      }
      i = (i + 1) & mask;
    }
  }

  /**
   * ip_vs_conn_out_get: the connection a reply from daddr:dport (the packet's
   * source) to caddr:cport (its destination, the client) belongs to, or -1.
   * NAT conns match on their real server address:port. Like the kernel, other
   * methods match on their virtual address:port (a reply the director sees from
   * the VIP itself); ip_vs_out ignores such a hit for non-NAT conns.
   * Templates never match.
   */
  lookupOut(af: number, proto: number, daddr: Uint32Array, dport: number, caddr: Uint32Array, cport: number): number {
    if (af === 4) {
      const r4 = this.findOut4(proto, daddr[0]!, dport, caddr[0]!, cport);
      return r4 < 0 ? -1 : this.slots[r4 + R_ID]!;
    }
    const r = this.probeOut(af, proto, this.digest6(daddr), dport, this.digest6(caddr), cport, daddr, caddr);
    return r < 0 ? -1 : this.slots[r + R_ID]!;
  }

  /** The matched hash record's position, or -1. */
  private probeOut(af: number, proto: number, dk: number, dport: number, ck: number, cport: number,
    daddr: Uint32Array, caddr: Uint32Array): number {
    const s = this.slots;
    const mask = this.slotMask;
    const meta = (proto << 8) | M_USED | (af === 6 ? M_AF6 : 0);
    let i = this.home(af, proto, ck, cport);
    for (;;) {
      const b = i * REC;
      const m = s[b + R_M]!;
      if ((m & M_USED) === 0) return -1;
      if (s[b + R_C] === ck && (s[b + R_P]! >>> 16) === cport && (m & TPL_MASK) === meta) {
        if (m & M_MASQ) {
          if ((m >>> 16) === dport && s[b + R_D] === dk) {
            if (af === 4 || (this.v6Equal(s[b + R_ID]!, caddr, null, 0) && this.daddrEquals(s[b + R_ID]!, af, daddr))) return b;
          }
        } else if ((s[b + R_P]! & 0xffff) === dport && s[b + R_V] === dk) {
          if (af === 4 || this.v6Equal(s[b + R_ID]!, caddr, daddr, 4)) return b;
        }
      }
      i = (i + 1) & mask;
    }
  }

  // ---------------------------------------------------------------- IPv4 record lookups (the fast path)

  /**
   * lookupIn(4, ...) with the addresses as numbers, answering the matched hash
   * record's position instead of the id (or -1), so the caller reads the NAT
   * rewrite data from the line the probe already loaded (recordLayout). A
   * position is valid until the next insert or removal.
   */
  findIn4(proto: number, caddr: number, cport: number, vaddr: number, vport: number): number {
    return this.findIn4At(this.home(4, proto, caddr, cport) * REC, proto, caddr, cport, vaddr, vport);
  }

  /**
   * findIn4 from the key's home record position (home(4, proto, caddr, cport) * REC).
   */
  findIn4At(home: number, proto: number, caddr: number, cport: number, vaddr: number, vport: number): number {
    const r = this.probeIn4(home, proto, caddr, cport, vaddr, vport);
    if (r >= 0 || this.noCport === 0 || cport === 0) return r;
    return this.probeIn4(this.home(4, proto, caddr, 0) * REC, proto, caddr, 0, vaddr, vport);
  }

  /** probeIn for IPv4 from record position b: the words are the keys, nothing to confirm. Kept small so it inlines. */
  private probeIn4(b: number, proto: number, caddr: number, cport: number, vaddr: number, vport: number): number {
    const s = this.slots;
    const ports = ((cport << 16) | vport) >>> 0;
    const meta = (proto << 8) | M_USED | (cport === 0 ? M_NOCPORT : 0);
    const wrap = s.length;
    for (;;) {
      const m = s[b + R_M]!;
      if ((m & M_USED) === 0) return -1;
      if (s[b + R_C] === caddr && s[b + R_P] === ports && (m & IN_MASK) === meta && s[b + R_V] === vaddr) return b;
      b += REC;
      if (b === wrap) b = 0;
    }
  }

  /** lookupOut(4, ...) answering the record position (see findIn4). */
  findOut4(proto: number, daddr: number, dport: number, caddr: number, cport: number): number {
    return this.findOut4At(this.home(4, proto, caddr, cport) * REC, proto, daddr, dport, caddr, cport);
  }

  /** findOut4 from the home record position of (proto, caddr, cport) (see findIn4At). */
  findOut4At(b: number, proto: number, daddr: number, dport: number, caddr: number, cport: number): number {
    const s = this.slots;
    const meta = (proto << 8) | M_USED;
    const wrap = s.length;
    for (;;) {
      const m = s[b + R_M]!;
      if ((m & M_USED) === 0) return -1;
      if (s[b + R_C] === caddr && (s[b + R_P]! >>> 16) === cport && (m & TPL_MASK) === meta &&
          ((m & M_MASQ) !== 0 ? (m >>> 16) === dport && s[b + R_D] === daddr
            : (s[b + R_P]! & 0xffff) === dport && s[b + R_V] === daddr)) return b;
      b += REC;
      if (b === wrap) b = 0;
    }
  }

  /**
   * Loads, for each of the first n entries of `homes` — a record position shifted left by
   * one, the low bit the caller's own (FastPath: which lookup it is for); -1: skip — the record
   * there, then the hot record of the entry found in it, and answers bits of them that
   * the caller folds into a sink so the loads are kept: batch code touches every frame's
   * slots before the first lookup, so their cache misses overlap (two tight loops, the
   * second's loads depending on the first's lines). A quarter of the 24-byte records
   * straddle two cache lines: both ends are loaded. The arrays sit in locals for the
   * whole batch (one call per batch instead of per-frame accessors).
   */
  touchHomes(homes: Int32Array, n: number): number {
    const s = this.slots;
    const hot = this.hot32;
    let sink = 0;
    for (let i = 0; i < n; i++) {
      const r = homes[i]! >> 1;
      if (r >= 0) sink ^= s[r + R_C]! ^ s[(r + R_ID) | 0]!;
    }
    for (let i = 0; i < n; i++) {
      const r = homes[i]! >> 1;
      // `| 0`: int32 index arithmetic, no overflow checks (r is a record position). An unused
      // record's id is 0 or a freed entry's, below the capacity either way: a wasted load,
      // cheaper than testing M_USED first.
      if (r >= 0) sink ^= hot[(s[(r + R_ID) | 0]! * HOT + H_TIMEOUT) | 0]!;
    }
    return sink;
  }


  // ---------------------------------------------------------------- batch access (FastPath.run)

  // The record arrays themselves, for a loop over a whole batch that keeps them in locals:
  // through the per-record methods above (findIn4, stateOf, countInPkt, touch, ...)
  // every use reloads the array from `this` and re-checks its map, after each store or call
  // of the frame. Layout: recordLayout. The caller reads, and writes only what countInPkt
  // and touch write (the in-packet count and, when not moving earlier, the expiry).

  /** The hash records (REC words each). */
  get hashRecords(): Uint32Array {
    return this.slots;
  }

  /** The hot records as uint32 words (HOT per id; the int32 and byte fields read from them too). */
  get hotWords(): Uint32Array {
    return this.hot32;
  }

  /** The hot records as float64 (the expiry at id * 4 + H_EXPIRES64). */
  get hotFloats(): Float64Array {
    return this.hot64;
  }

  /** Hashed entries without a client port: while non-zero, a missed inbound lookup retries with cport 0 (findIn4At). */
  get noCportCount(): number {
    return this.noCport;
  }

  private daddrEquals(id: number, af: number, a: Uint32Array): boolean {
    if (af === 4) return this.daf[id] === 4 && this.daddr[id] === a[0];
    if (this.daf[id] !== 6) return false;
    const b = this.v6Idx[id]! * V6W + 8;
    const s = this.v6;
    return s[b] === a[0] && s[b + 1] === a[1] && s[b + 2] === a[2] && s[b + 3] === a[3];
  }

  /**
   * ip_vs_ct_in_get: the persistence template with exactly this key, or -1.
   * For fwmark templates `proto` is 0 (IPPROTO_IP) and only word 0 of vaddr
   * (the fwmark) is compared.
   */
  lookupTemplate(af: number, proto: number, caddr: Uint32Array, cport: number, vaddr: Uint32Array, vport: number): number {
    const s = this.slots;
    const mask = this.slotMask;
    const ck = af === 4 ? caddr[0]! : this.digest6(caddr);
    const vk = af === 4 || proto === 0 ? vaddr[0]! : this.digest6(vaddr);
    const ports = ((cport << 16) | vport) >>> 0;
    const meta = (proto << 8) | M_USED | M_TPL | (af === 6 ? M_AF6 : 0);
    let i = this.home(af, proto, ck, cport);
    for (;;) {
      const b = i * REC;
      const m = s[b + R_M]!;
      if ((m & M_USED) === 0) return -1;
      if (s[b + R_C] === ck && s[b + R_P] === ports && (m & TPL_MASK) === meta && s[b + R_V] === vk) {
        const id = s[b + R_ID]!;
        if (af === 4 || this.v6Equal(id, caddr, vaddr, proto === 0 ? 1 : 4)) return id;
      }
      i = (i + 1) & mask;
    }
  }

  // ---------------------------------------------------------------- hash maintenance

  private recordMeta(id: number): number {
    return recordMetaOf(this.flags[id]!, this.af[id]!, this.proto[id]!, this.dport[id]!);
  }

  /** ip_vs_conn_hash. Entries with the same client key are kept newest first, like hlist_add_head. */
  private hashInsert(id: number): void {
    const af = this.af[id]!;
    this.hashPlace(id, af, this.proto[id]!, this.caddr[id]!, this.cport[id]!, this.vaddr[id]!, this.vport[id]!,
      this.daddr[id]!, this.recordMeta(id));
  }

  /**
   * hashInsert with the record's words given: create() has them in registers already, and
   * reading them back from the arrays it just wrote cost ~100 instructions a new connection.
   * `meta` is recordMeta(id); sets CONN_F_HASHED.
   */
  private hashPlace(id: number, af: number, proto: number, ck: number, cport: number, vk: number, vport: number,
    dk: number, meta: number): void {
    const s = this.slots;
    const mask = this.slotMask;
    const client = (proto << 8) | (af === 6 ? M_AF6 : 0);
    const rec = this.carry;
    rec[R_C] = ck;
    rec[R_V] = vk;
    rec[R_D] = dk;
    rec[R_P] = ((cport << 16) | vport) >>> 0;
    rec[R_M] = meta;
    rec[R_ID] = id;
    let i = this.home(af, proto, ck, cport);
    for (;;) {
      const b = i * REC;
      const m = s[b + R_M]!;
      if ((m & M_USED) === 0) {
        s[b] = rec[0]!; s[b + 1] = rec[1]!; s[b + 2] = rec[2]!; s[b + 3] = rec[3]!; s[b + 4] = rec[4]!; s[b + 5] = rec[5]!;
        break;
      }
      if (s[b + R_C] === ck && (s[b + R_P]! >>> 16) === cport && (m & CLIENT_MASK) === client) {
        // Same client key: the carried (newer) record takes this place, the older one moves on.
        for (let k = 0; k < REC; k++) {
          const old = s[b + k]!;
          s[b + k] = rec[k]!;
          rec[k] = old;
        }
      }
      i = (i + 1) & mask;
    }
    this.flags[id] = this.flags[id]! | CONN_F_HASHED;
  }

  /** ip_vs_conn_unhash: remove the record and close the gap (backward-shift deletion). */
  private hashRemove(id: number): void {
    const s = this.slots;
    const mask = this.slotMask;
    let i = this.home(this.af[id]!, this.proto[id]!, this.caddr[id]!, this.cport[id]!);
    for (;;) {
      const b = i * REC;
      if ((s[b + R_M]! & M_USED) === 0) throw new Error(`conn ${id} flagged HASHED but not in the hash`);
      if (s[b + R_ID] === id) break;
      i = (i + 1) & mask;
    }
    let hole = i;
    let j = (i + 1) & mask;
    for (;;) {
      const bj = j * REC;
      const m = s[bj + R_M]!;
      if ((m & M_USED) === 0) break;
      const h = this.home(m & M_AF6 ? 6 : 4, (m >>> 8) & 0xff, s[bj + R_C]!, s[bj + R_P]! >>> 16);
      // The record at j may fill the hole unless its home lies cyclically in (hole, j].
      if (((j - h) & mask) >= ((j - hole) & mask)) {
        const bh = hole * REC;
        s[bh] = s[bj]!; s[bh + 1] = s[bj + 1]!; s[bh + 2] = s[bj + 2]!;
        s[bh + 3] = s[bj + 3]!; s[bh + 4] = s[bj + 4]!; s[bh + 5] = s[bj + 5]!;
        hole = j;
      }
      j = (j + 1) & mask;
    }
    s[hole * REC + R_M] = 0;
    this.flags[id] = this.flags[id]! & ~CONN_F_HASHED;
  }

  // ---------------------------------------------------------------- timing wheel

  private wheelLink(id: number, when: number): void {
    let tick = Math.ceil(when);
    if (tick <= this.lastTick) tick = this.lastTick + 1;
    const head = this.capacity + (tick & this.wheelMask);
    const tail = this.wprev[head]!;
    this.wnext[tail] = id;
    this.wprev[id] = tail;
    this.wnext[id] = head;
    this.wprev[head] = id;
  }

  private wheelUnlink(id: number): void {
    const p = this.wprev[id]!;
    if (p < 0) return;
    const n = this.wnext[id]!;
    this.wnext[p] = n;
    this.wprev[n] = p;
    this.wprev[id] = -1;
    this.wnext[id] = -1;
  }

  /** Sets the expiry; only an earlier expiry needs the entry moved (later ones are re-queued lazily). */
  private rearm(id: number, when: number): void {
    const old = this.hot64[id * 4 + H_EXPIRES64]!;
    this.hot64[id * 4 + H_EXPIRES64] = when;
    if (when < old) {
      this.wheelUnlink(id);
      this.wheelLink(id, when);
    }
  }

  /**
   * Re-arm the expiry: now + timeout (what ip_vs_conn_put does after each packet). The
   * usual case — the new expiry is not earlier, so the wheel entry stays (lazy re-queueing)
   * — is written out here rather than calling rearm, so this stays small enough for V8 to
   * inline into the fast path (rearm itself was left a call there: ~30 instructions a frame).
   */
  touch(id: number, now: number): void {
    const when = now + this.hot32[id * HOT + H_TIMEOUT]!;
    const i = id * 4 + H_EXPIRES64;
    const old = this.hot64[i]!;
    this.hot64[i] = when;
    if (when < old) this.requeue(id, when);
  }

  /** The expiry moved earlier: the entry's wheel slot must move too. */
  private requeue(id: number, when: number): void {
    this.wheelUnlink(id);
    this.wheelLink(id, when);
  }

  /** Set the timeout (seconds) and re-arm the expiry from now. */
  setTimeout(id: number, seconds: number, now: number): void {
    this.hot32[id * HOT + H_TIMEOUT] = seconds;
    this.rearm(id, now + seconds);
  }

  /** Seconds left as /proc/net/ip_vs_conn prints them (truncated, never negative). */
  remaining(id: number, now: number): number {
    const left = this.hot64[id * 4 + H_EXPIRES64]! - now;
    return left <= 0 ? 0 : Math.floor(left + 1e-6);
  }

  /**
   * Expire every entry whose time has come (call it with the engine's coarse
   * clock, e.g. once a second or between batches). Expiry has one-second
   * granularity: an entry due at 20.4 goes at the call with now >= 21; one due
   * at exactly 20 goes at now >= 20. Returns the number freed.
   * `onExpire(id)` runs just before an entry is freed, fields still intact.
   */
  runExpiry(now: number, onExpire?: (id: number) => void): number {
    const to = Math.floor(now);
    if (to <= this.lastTick) return 0;
    let from = this.lastTick + 1;
    if (to - from >= this.wheelSize) from = to - this.wheelSize + 1;
    const before = this.live;
    const prevCb = this.onFree;
    this.onFree = onExpire ?? null;
    const sc = this.scratch;
    const wn = this.wnext;
    const wp = this.wprev;
    for (let t = from; t <= to; t++) {
      this.lastTick = t;
      const head = this.capacity + (t & this.wheelMask);
      const first = wn[head]!;
      if (first === head) continue;
      // Move the whole bucket to the scratch list, then drain it from the front: expiring an entry
      // may free others (its template) wherever they are queued, so never hold a `next` pointer.
      const last = wp[head]!;
      wn[sc] = first; wp[first] = sc;
      wp[sc] = last; wn[last] = sc;
      wn[head] = head; wp[head] = head;
      while (wn[sc] !== sc) {
        const id = wn[sc]!;
        this.wheelUnlink(id);
        // Entries fire at their tick, as kernel timers would have, even when the clock jumped ahead:
        // a postponed template is re-armed from its tick and may fire again within this call.
        if (this.hot64[id * 4 + H_EXPIRES64]! <= t) this.expireEntry(id, t);
        else this.wheelLink(id, this.hot64[id * 4 + H_EXPIRES64]!);
      }
    }
    this.onFree = prevCb;
    return before - this.live;
  }

  // ---------------------------------------------------------------- create / bind

  /**
   * ip_vs_conn_new: a new entry, hashed (unless ONE_PACKET) and bound to its
   * dest (destId -1 for none). Starts in state 0 with a 3 s timeout until the
   * protocol's first state transition. Returns the id, or -1 when the table (or
   * the IPv6 side store) is full: the caller counts a drop.
   *
   * For fwmark templates pass proto 0 and the fwmark in vaddr word 0.
   */
  create(af: number, proto: number, caddr: Uint32Array, cport: number, vaddr: Uint32Array, vport: number,
    daddr: Uint32Array, dport: number, flags: number, fwmark: number, svcId: number, destId: number,
    now: number): number {
    const dest = destId >= 0 ? this.dests.destById(destId) : undefined;
    const daf = dest !== undefined ? dest.addr.af : af;
    const id = this.freeHead;
    if (id < 0) return -1;
    let v6i = -1;
    if (af === 6 || daf === 6) {
      v6i = this.v6Free;
      if (v6i < 0) return -1;
      this.v6Free = this.v6Next[v6i]!;
    }
    this.freeHead = this.wnext[id]!;
    this.wnext[id] = -1;
    this.wprev[id] = -1;
    if (id >= this.highWater) this.highWater = id + 1;

    this.af[id] = af;
    this.daf[id] = daf;
    this.proto[id] = proto;
    this.v6Idx[id] = v6i;
    if (v6i >= 0) {
      const b = v6i * V6W;
      const s = this.v6;
      if (af === 6) {
        s[b] = caddr[0]!; s[b + 1] = caddr[1]!; s[b + 2] = caddr[2]!; s[b + 3] = caddr[3]!;
        // Kernel: a fwmark template (protocol 0) copies only the first word of vaddr.
        s[b + 4] = vaddr[0]!;
        if (proto === 0) { s[b + 5] = 0; s[b + 6] = 0; s[b + 7] = 0; } else { s[b + 5] = vaddr[1]!; s[b + 6] = vaddr[2]!; s[b + 7] = vaddr[3]!; }
      } else {
        s[b] = caddr[0]!; s[b + 1] = 0; s[b + 2] = 0; s[b + 3] = 0;
        s[b + 4] = vaddr[0]!; s[b + 5] = 0; s[b + 6] = 0; s[b + 7] = 0;
      }
      if (daf === 6) { s[b + 8] = daddr[0]!; s[b + 9] = daddr[1]!; s[b + 10] = daddr[2]!; s[b + 11] = daddr[3]!; } else { s[b + 8] = daddr[0]!; s[b + 9] = 0; s[b + 10] = 0; s[b + 11] = 0; }
    }
    // The keys as stored (the typed arrays' conversions), kept for the hash record below.
    const ck = af === 6 ? this.digest6(caddr) : caddr[0]!;
    const vk = af === 6 && proto !== 0 ? this.digest6(vaddr) : vaddr[0]!;
    const dk = daf === 6 ? this.digest6(daddr) : daddr[0]!;
    const cp = cport & 0xffff, vp = vport & 0xffff, dp = dport & 0xffff;
    this.caddr[id] = ck;
    this.vaddr[id] = vk;
    this.daddr[id] = dk;
    this.cport[id] = cp;
    this.vport[id] = vp;
    this.dport[id] = dp;
    // The flags are written once, below, after bindDest added the dest's.
    let f = flags & ~CONN_F_HASHED;
    this.fwmark[id] = fwmark;
    this.svcId[id] = svcId;
    this.hotI32[id * HOT + H_SVC] = svcId;
    this.control[id] = -1;
    this.nControlled[id] = 0;
    this.hot32[id * HOT + H_INPKTS] = 0;
    this.live++;
    if (flags & CONN_F_NO_CPORT) this.noCport++;

    if (dest !== undefined) {
      f = this.bindDest(id, dest, destId, f);
    } else {
      this.destId[id] = -1;
      this.hotI32[id * HOT + H_DEST] = -1;
    }
    this.flags[id] = f;
    this.hot8[id * HOT_BYTES + HB_FWD] = f & CONN_F_FWD_MASK;
    this.hot8[id * HOT_BYTES + HB_DAF] = daf;

    this.hot8[id * HOT_BYTES + HB_STATE] = 0;
    this.oldState[id] = 0;
    this.hot32[id * HOT + H_TIMEOUT] = NEW_CONN_TIMEOUT;
    this.hot64[id * 4 + H_EXPIRES64] = now + NEW_CONN_TIMEOUT;
    this.wheelLink(id, now + NEW_CONN_TIMEOUT);

    // Kernel: one-packet conns are never hashed; they live for the packet that created them.
    if ((f & CONN_F_ONE_PACKET) === 0) {
      const af8 = af & 0xff, proto8 = proto & 0xff;
      this.hashPlace(id, af8, proto8, ck, cp, vk, vp, dk, recordMetaOf(f, af8, proto8, dp));
    }
    return id;
  }

  /**
   * ip_vs_bind_dest: take the dest's forwarding flags and count the entry on it. `flags` are
   * the entry's flags so far; returns them with the dest's, for the caller to store.
   */
  private bindDest(id: number, dest: Dest, destId: number, flags: number): number {
    dest.refcnt++;
    const fwd = dest.fwdMethod & CONN_F_FWD_MASK;
    // The dest's conn_flags: method | INACTIVE | NOOUTPUT unless NAT (__ip_vs_update_dest).
    let connFlags = fwd | CONN_F_INACTIVE | (fwd !== CONN_F_MASQ ? CONN_F_NOOUTPUT : 0);
    let f = flags;
    if (f & CONN_F_SYNC) {
      // A synced conn keeps its own activity flag and takes the method from the dest.
      if ((f & CONN_F_TEMPLATE) === 0) connFlags &= ~CONN_F_INACTIVE;
      f &= ~(CONN_F_FWD_MASK | CONN_F_NOOUTPUT);
    }
    f |= connFlags;
    this.destId[id] = destId;
    this.hotI32[id * HOT + H_DEST] = destId;
    if ((f & CONN_F_TEMPLATE) === 0) {
      if (f & CONN_F_INACTIVE) dest.inactConns++;
      else dest.activeConns++;
    } else {
      dest.persistConns++;
    }
    if (dest.uThreshold !== 0 && dest.activeConns + dest.inactConns >= dest.uThreshold) {
      dest.flags |= DEST_F_OVERLOAD;
    }
    return f;
  }

  /** ip_vs_unbind_dest: uncount the entry and re-evaluate the overload flag. */
  private unbindDest(id: number): void {
    const did = this.destId[id]!;
    if (did < 0) return;
    const dest = this.dests.destById(did);
    this.destId[id] = -1;
    this.hotI32[id * HOT + H_DEST] = -1;
    if (dest === undefined) return;
    const f = this.flags[id]!;
    if ((f & CONN_F_TEMPLATE) === 0) {
      if (f & CONN_F_INACTIVE) dest.inactConns--;
      else dest.activeConns--;
    } else {
      dest.persistConns--;
    }
    const total = dest.activeConns + dest.inactConns;
    if (dest.lThreshold !== 0) {
      if (total < dest.lThreshold) dest.flags &= ~DEST_F_OVERLOAD;
    } else if (dest.uThreshold !== 0) {
      // No lower threshold: clear below 3/4 of the upper one.
      if (total * 4 < dest.uThreshold * 3) dest.flags &= ~DEST_F_OVERLOAD;
    } else {
      dest.flags &= ~DEST_F_OVERLOAD;
    }
    dest.refcnt--;
  }

  /** The Dest an entry is bound to, if any. */
  destOf(id: number): Dest | undefined {
    const did = this.destId[id]!;
    return did < 0 ? undefined : this.dests.destById(did);
  }

  /**
   * Move a connection between the dest's active and inactive counters (what
   * the TCP/SCTP state machines do when a transition crosses the boundary).
   */
  setActive(id: number, active: boolean): void {
    const f = this.flags[id]!;
    const inactive = (f & CONN_F_INACTIVE) !== 0;
    if (active !== inactive) return;
    const dest = this.destOf(id);
    if (dest === undefined) return;
    if (active) {
      dest.activeConns++;
      dest.inactConns--;
      this.flags[id] = f & ~CONN_F_INACTIVE;
    } else {
      dest.activeConns--;
      dest.inactConns++;
      this.flags[id] = f | CONN_F_INACTIVE;
    }
  }

  // ---------------------------------------------------------------- control (templates)

  /** ip_vs_control_add (templateId -1: ip_vs_control_del). */
  setControl(connId: number, templateId: number): void {
    const old = this.control[connId]!;
    if (old >= 0) {
      this.nControlled[old] = this.nControlled[old]! - 1;
      this.control[connId] = -1;
    }
    if (templateId >= 0) {
      this.control[connId] = templateId;
      this.nControlled[templateId] = this.nControlled[templateId]! + 1;
    }
  }

  /** ip_vs_control_assure_ct: mark the controlling template ASSURED. */
  assureControl(id: number): void {
    const ct = this.control[id]!;
    if (ct >= 0 && (this.flags[ct]! & CONN_F_TEMPLATE) !== 0) this.hot8[ct * HOT_BYTES + HB_STATE] = this.hot8[ct * HOT_BYTES + HB_STATE]! | CTPL_S_ASSURED;
  }

  /**
   * ip_vs_check_template's invalidation: rehash the template with vport and
   * dport 0xffff and cport 0 so no lookup finds it again; it keeps its timer.
   */
  invalidateTemplate(id: number): void {
    if (this.vport[id] === 0xffff) return;
    if ((this.flags[id]! & CONN_F_HASHED) === 0) return;
    this.hashRemove(id);
    this.dport[id] = 0xffff;
    this.vport[id] = 0xffff;
    this.cport[id] = 0;
    this.hashInsert(id);
  }

  /** ip_vs_conn_fill_cport: give a NO_CPORT conn its client port. */
  fillCport(id: number, cport: number): void {
    if ((this.flags[id]! & CONN_F_HASHED) === 0) return;
    this.hashRemove(id);
    if (this.flags[id]! & CONN_F_NO_CPORT) {
      this.noCport--;
      this.flags[id] = this.flags[id]! & ~CONN_F_NO_CPORT;
      this.cport[id] = cport;
    }
    this.hashInsert(id);
  }

  // ---------------------------------------------------------------- expiry / removal

  /**
   * The timer handler (ip_vs_conn_expire): an entry that still controls others
   * is kept another 60 s (and its timeout becomes 60 s); otherwise it leaves the
   * hash, releases its controller, is uncounted from its dest and freed.
   * Returns true when freed.
   */
  private expireEntry(id: number, now: number): boolean {
    if (this.nControlled[id]! > 0) {
      this.hot32[id * HOT + H_TIMEOUT] = CONTROL_POSTPONE;
      this.hot64[id * 4 + H_EXPIRES64] = now + CONTROL_POSTPONE;
      this.wheelUnlink(id);
      this.wheelLink(id, now + CONTROL_POSTPONE);
      return false;
    }
    this.release(id, now);
    return true;
  }

  private release(id: number, now: number): void {
    if (this.onFree !== null) this.onFree(id);
    if (this.flags[id]! & CONN_F_HASHED) this.hashRemove(id);
    const ct = this.control[id]!;
    if (ct >= 0) {
      // Timeout 0 marks a deletion (flush, nodest, drop): then a controller that is no longer
      // needed goes too, except an ASSURED template.
      const dropping = this.hot32[id * HOT + H_TIMEOUT] === 0;
      this.setControl(id, -1);
      if (dropping && this.nControlled[ct] === 0 &&
        ((this.flags[ct]! & CONN_F_TEMPLATE) === 0 || (this.hot8[ct * HOT_BYTES + HB_STATE]! & CTPL_S_ASSURED) === 0)) {
        this.del(ct, now);
      }
    }
    this.unbindDest(id);
    if (this.flags[id]! & CONN_F_NO_CPORT) this.noCport--;
    this.wheelUnlink(id);
    const v6i = this.v6Idx[id]!;
    if (v6i >= 0) {
      this.v6Next[v6i] = this.v6Free;
      this.v6Free = v6i;
      this.v6Idx[id] = -1;
    }
    this.af[id] = 0;
    this.flags[id] = 0;
    this.nControlled[id] = 0;
    this.wnext[id] = this.freeHead;
    this.wprev[id] = -1;
    this.freeHead = id;
    this.live--;
  }

  /** ip_vs_conn_del: delete now; a controlled entry is marked (timeout 0) so its controller may go too. */
  private del(id: number, now: number): void {
    if (this.af[id] === 0) return;
    if (this.control[id]! >= 0) this.hot32[id * HOT + H_TIMEOUT] = 0;
    this.expireEntry(id, now);
  }

  /**
   * ip_vs_conn_del, for the defenses (drop_entry): delete now; if the entry is
   * controlled, its controller goes too once unused (unless an ASSURED
   * template). Returns true if the entry was freed.
   */
  drop(id: number, now: number, onExpire?: (id: number) => void): boolean {
    if (this.af[id] === 0) return false;
    const prev = this.onFree;
    if (onExpire !== undefined) this.onFree = onExpire;
    this.del(id, now);
    this.onFree = prev;
    return this.af[id] === 0;
  }

  /** The entry hashed in slot `slot` (0..hashSlots-1), or -1 when empty: for random sampling. */
  idAtSlot(slot: number): number {
    const b = slot * REC;
    return (this.slots[b + R_M]! & M_USED) === 0 ? -1 : this.slots[b + R_ID]!;
  }

  /**
   * ip_vs_conn_expire_now, run synchronously: the entry's timer fires now.
   * Returns true if it was freed, false if it still controls others (then it
   * is kept 60 s more, as in the kernel).
   */
  expire(id: number, now: number, onExpire?: (id: number) => void): boolean {
    if (this.af[id] === 0) return false;
    const prev = this.onFree;
    if (onExpire !== undefined) this.onFree = onExpire;
    const freed = this.expireEntry(id, now);
    this.onFree = prev;
    return freed;
  }

  /**
   * Free an entry right after use (one-packet conns: ip_vs_conn_put with no
   * timer pending). Entries that still control others are not freed (false).
   */
  free(id: number, onExpire?: (id: number) => void): boolean {
    if (this.af[id] === 0 || this.nControlled[id]! > 0) return false;
    const prev = this.onFree;
    if (onExpire !== undefined) this.onFree = onExpire;
    this.release(id, this.hot64[id * 4 + H_EXPIRES64]!);
    this.onFree = prev;
    return true;
  }

  // ---------------------------------------------------------------- iteration and bulk removal

  /** Calls cb for every live entry (connections and templates), in id order. */
  forEach(cb: (id: number) => void): void {
    const hw = this.highWater;
    for (let id = 0; id < hw; id++) if (this.af[id] !== 0) cb(id);
  }

  /**
   * The kernel's flush pattern (ip_vs_conn_flush / ip_vs_expire_nodest_conn_flush):
   * skip entries that still control others, delete the rest, and delete a
   * controller left with nothing to control.
   */
  private sweep(match: ((id: number) => boolean) | null, now: number): number {
    const before = this.live;
    const hw = this.highWater;
    for (let id = 0; id < hw; id++) {
      if (this.af[id] === 0 || this.nControlled[id]! > 0) continue;
      if (match !== null && !match(id)) continue;
      const ctl = this.control[id]!;
      this.del(id, now);
      if (ctl >= 0 && this.af[ctl] !== 0 && this.nControlled[ctl] === 0) this.del(ctl, now);
    }
    return before - this.live;
  }

  /** Delete every entry (netns cleanup). Returns the number freed. */
  flush(now = 0, onExpire?: (id: number) => void): number {
    const prev = this.onFree;
    if (onExpire !== undefined) this.onFree = onExpire;
    let freed = 0;
    // Each pass frees at least the entries controlling nothing; chains are short and acyclic.
    for (let pass = 0; this.live > 0 && pass < 64; pass++) {
      const n = this.sweep(null, now);
      freed += n;
      if (n === 0) break;
    }
    this.onFree = prev;
    return freed;
  }

  /** expire_nodest_conn's job: delete the entries bound to a dest. Returns the number freed. */
  expireByDest(destId: number, now: number, onExpire?: (id: number) => void): number {
    const prev = this.onFree;
    if (onExpire !== undefined) this.onFree = onExpire;
    const n = this.sweep((id) => this.destId[id] === destId, now);
    this.onFree = prev;
    return n;
  }

  /** Delete the entries created for a service. Returns the number freed. */
  expireBySvc(svcId: number, now: number, onExpire?: (id: number) => void): number {
    const prev = this.onFree;
    if (onExpire !== undefined) this.onFree = onExpire;
    const n = this.sweep((id) => this.svcId[id] === svcId, now);
    this.onFree = prev;
    return n;
  }

  // ---------------------------------------------------------------- field access for listings

  /** The address words of caddr (0), vaddr (1) or daddr (2); IPv4 in word 0, other words 0. */
  getAddr(id: number, which: number, out: Uint32Array): Uint32Array {
    const fam = which === ADDR_D ? this.daf[id] : this.af[id];
    if (fam === 6) {
      const b = this.v6Idx[id]! * V6W + which * 4;
      out[0] = this.v6[b]!; out[1] = this.v6[b + 1]!; out[2] = this.v6[b + 2]!; out[3] = this.v6[b + 3]!;
      return out;
    }
    out[0] = which === ADDR_C ? this.caddr[id]! : which === ADDR_V ? this.vaddr[id]! : this.daddr[id]!;
    out[1] = 0; out[2] = 0; out[3] = 0;
    return out;
  }

  /** The state name /proc/net/ip_vs_conn prints (ip_vs_state_name). */
  stateName(id: number): string {
    return stateNameOf(this.proto[id]!, this.flags[id]!, this.hot8[id * HOT_BYTES + HB_STATE]!);
  }

  isTemplate(id: number): boolean {
    return (this.flags[id]! & CONN_F_TEMPLATE) !== 0;
  }
}
