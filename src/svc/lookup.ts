/**
 * Numeric indexes for the packet path: virtual services by (af, protocol,
 * address, port) and by (af, fwmark) in an open-addressing table, and NAT real
 * servers by (af, address, port) (the kernel's rs_table) in Map buckets keyed
 * by a 30-bit hash (a V8 small integer, so Map.get allocates nothing). A hit is
 * confirmed by comparing every field. The control plane edits these between
 * batches; lookups never allocate.
 */
import type { IpAddr } from '../util/ip.js';
import { FWD_MASQ, type Dest, type Service } from './types.js';

/** Mixes an address fold with a 32-bit tag into a non-negative 30-bit key. */
function hashKey(fold: number, tag: number): number {
  return Math.imul(fold ^ Math.imul(tag, 0x85ebca6b), 0x9e3779b1) >>> 2;
}

function foldOf(a: IpAddr): number {
  return a.af === 4 ? a.w0 : (a.w0 ^ a.w1 ^ a.w2 ^ a.w3) >>> 0;
}

function pushHead<T>(m: Map<number, T[]>, key: number, v: T): void {
  const list = m.get(key);
  if (list === undefined) m.set(key, [v]);
  else list.unshift(v); // newest first, like hlist_add_head
}

function removeFrom<T>(m: Map<number, T[]>, key: number, v: T): boolean {
  const list = m.get(key);
  if (list === undefined) return false;
  const i = list.indexOf(v);
  if (i < 0) return false;
  list.splice(i, 1);
  if (list.length === 0) m.delete(key);
  return true;
}

function addrMatches(a: IpAddr, af: number, w: Uint32Array): boolean {
  if (a.w0 !== w[0]) return false;
  return af === 4 || (a.w1 === w[1] && a.w2 === w[2] && a.w3 === w[3]);
}

// Slot layout of the service hash: one interleaved record per slot, so a probe touches one cache line.
const STRIDE = 8;
const S_TAG = 0; // 0 = empty; else T_USED | kind | af | port << 8 | protocol
const S_W0 = 1; // address words (IPv4: w0 only, others 0); fwmark entries: the mark in w0
const S_W1 = 2;
const S_W2 = 3;
const S_W3 = 4;
const S_HASH = 5; // the entry's home hash, for deletion by backward shift
const T_USED = 1 << 26;
const T_FWMARK = 1 << 25;
const T_AF6 = 1 << 24;

function exactTag(af: number, protocol: number, port: number): number {
  return T_USED | (af === 6 ? T_AF6 : 0) | (port << 8) | protocol;
}

function fwmarkTag(af: number): number {
  return T_USED | T_FWMARK | (af === 6 ? T_AF6 : 0);
}

/**
 * Services hashed by <af, protocol, addr, port> and by <af, fwmark>: linear
 * probing over an Int32Array kept at most half full, deletion by backward shift.
 */
export class ServiceIndex {
  private cap = 64;
  private mask = 63;
  private count = 0;
  private slots = new Int32Array(64 * STRIDE);
  private svcAt: (Service | null)[] = new Array<Service | null>(64).fill(null);

  add(svc: Service): void {
    if ((this.count + 1) * 2 > this.cap) this.grow();
    this.insert(svc);
    this.count++;
  }

  remove(svc: Service): boolean {
    const slots = this.slots;
    const mask = this.mask;
    let i = this.homeOf(svc) & mask;
    for (;;) {
      if (slots[i * STRIDE + S_TAG] === 0) return false;
      if (this.svcAt[i] === svc) break;
      i = (i + 1) & mask;
    }
    // Backward-shift deletion: pull later members of the probe run into the hole.
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const bj = j * STRIDE;
      if (slots[bj + S_TAG] === 0) break;
      const home = slots[bj + S_HASH]! & mask;
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      slots.copyWithin(hole * STRIDE, bj, bj + STRIDE);
      this.svcAt[hole] = this.svcAt[j]!;
      hole = j;
    }
    slots.fill(0, hole * STRIDE, hole * STRIDE + STRIDE);
    this.svcAt[hole] = null;
    this.count--;
    return true;
  }

  clear(): void {
    this.slots.fill(0);
    this.svcAt.fill(null);
    this.count = 0;
  }

  /** Exact <af, protocol, addr, port> match. IPv4 reads only daddr[0]. No allocation. */
  findExact(af: number, protocol: number, daddr: Uint32Array, port: number): Service | null {
    if ((af !== 4 && af !== 6) || protocol > 0xff || port > 0xffff) return null;
    const tag = exactTag(af, protocol, port);
    const a0 = daddr[0]! | 0;
    const slots = this.slots;
    const mask = this.mask;
    if (af === 4) {
      let i = hashKey(a0, tag) & mask;
      for (;;) {
        const b = i * STRIDE;
        const t = slots[b + S_TAG]!;
        if (t === 0) return null;
        if (t === tag && slots[b + S_W0] === a0) return this.svcAt[i]!;
        i = (i + 1) & mask;
      }
    }
    const a1 = daddr[1]! | 0;
    const a2 = daddr[2]! | 0;
    const a3 = daddr[3]! | 0;
    let i = hashKey(a0 ^ a1 ^ a2 ^ a3, tag) & mask;
    for (;;) {
      const b = i * STRIDE;
      const t = slots[b + S_TAG]!;
      if (t === 0) return null;
      if (t === tag && slots[b + S_W0] === a0 && slots[b + S_W1] === a1 && slots[b + S_W2] === a2 &&
          slots[b + S_W3] === a3) return this.svcAt[i]!;
      i = (i + 1) & mask;
    }
  }

  /** The same lookup from a control-plane address record. */
  findExactAddr(protocol: number, addr: IpAddr, port: number): Service | null {
    const w = Uint32Array.of(addr.w0, addr.w1, addr.w2, addr.w3);
    return this.findExact(addr.af, protocol, w, port);
  }

  findFwmark(af: number, fwmark: number): Service | null {
    if (af !== 4 && af !== 6) return null;
    const tag = fwmarkTag(af);
    const m = fwmark | 0;
    const slots = this.slots;
    const mask = this.mask;
    let i = hashKey(m, tag) & mask;
    for (;;) {
      const b = i * STRIDE;
      const t = slots[b + S_TAG]!;
      if (t === 0) return null;
      if (t === tag && slots[b + S_W0] === m) return this.svcAt[i]!;
      i = (i + 1) & mask;
    }
  }

  private homeOf(svc: Service): number {
    if (svc.fwmark !== 0) return hashKey(svc.fwmark | 0, fwmarkTag(svc.af));
    return hashKey(foldOf(svc.addr) | 0, exactTag(svc.af, svc.protocol, svc.port));
  }

  private insert(svc: Service): void {
    const slots = this.slots;
    const mask = this.mask;
    const home = this.homeOf(svc);
    let i = home & mask;
    while (slots[i * STRIDE + S_TAG] !== 0) i = (i + 1) & mask;
    const b = i * STRIDE;
    const fw = svc.fwmark !== 0;
    slots[b + S_TAG] = fw ? fwmarkTag(svc.af) : exactTag(svc.af, svc.protocol, svc.port);
    slots[b + S_W0] = fw ? svc.fwmark : svc.addr.w0;
    slots[b + S_W1] = fw || svc.af === 4 ? 0 : svc.addr.w1;
    slots[b + S_W2] = fw || svc.af === 4 ? 0 : svc.addr.w2;
    slots[b + S_W3] = fw || svc.af === 4 ? 0 : svc.addr.w3;
    slots[b + S_HASH] = home;
    this.svcAt[i] = svc;
  }

  private grow(): void {
    const old = this.svcAt.filter((s): s is Service => s !== null);
    this.cap *= 2;
    this.mask = this.cap - 1;
    this.slots = new Int32Array(this.cap * STRIDE);
    this.svcAt = new Array<Service | null>(this.cap).fill(null);
    for (const s of old) this.insert(s);
  }
}

/**
 * NAT real servers by <af, addr, port> (the kernel's rs_table restricted to
 * masquerading dests, which is all its lookups ask for): lets the packet path
 * recognise replies from real servers. Newest hashed first; first match wins.
 */
export class RealServerIndex {
  private readonly map = new Map<number, Dest[]>();
  private readonly members = new Set<Dest>();

  has(d: Dest): boolean {
    return this.members.has(d);
  }

  add(d: Dest): void {
    if (this.members.has(d)) return;
    this.members.add(d);
    pushHead(this.map, hashKey(foldOf(d.addr), d.port), d);
  }

  remove(d: Dest): void {
    if (!this.members.delete(d)) return;
    removeFrom(this.map, hashKey(foldOf(d.addr), d.port), d);
  }

  clear(): void {
    this.map.clear();
    this.members.clear();
  }

  /**
   * ip_vs_find_real_service: a masquerading dest with this address and port whose
   * service has this protocol (or is a fwmark service, which matches any protocol).
   */
  find(af: number, protocol: number, daddr: Uint32Array, port: number): Dest | null {
    const fold = af === 4 ? daddr[0]! : (daddr[0]! ^ daddr[1]! ^ daddr[2]! ^ daddr[3]!) >>> 0;
    const list = this.map.get(hashKey(fold, port));
    if (list === undefined) return null;
    for (let i = 0; i < list.length; i++) {
      const d = list[i]!;
      if (d.port === port && d.addr.af === af && addrMatches(d.addr, af, daddr) &&
          (d.svc.protocol === protocol || d.svc.fwmark !== 0) && d.fwdMethod === FWD_MASQ) return d;
    }
    return null;
  }
}
