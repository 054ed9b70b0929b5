/**
 * The address-keyed entry table shared by lblc and lblcr (ip_vs_lblc.c / ip_vs_lblcr.c):
 * 1024 hash buckets (CONFIG_IP_VS_LBLC[R]_TAB_BITS = 10) indexed by hash_32(addr_fold, 10),
 * entries inserted at the bucket head, and the garbage collector the kernel runs from a timer
 * every 60 s:
 *  - every 30th run (counted only over runs that found the table within max_size) a full
 *    check removes every entry with now >= lastuse + expiration (sysctl lblc[r]_expiration);
 *  - otherwise, only when the entry counter exceeds max_size = 16384, entries idle for
 *    ENTRY_TIMEOUT = 6 min are removed bucket by bucket from a rover until
 *    goal = min((entries - max_size) * 4/3, max_size/2) is met.
 *
 * Entries live in struct-of-arrays pools with a free list, so scheduling does not allocate
 * (the pools double when full, which happens a logarithmic number of times).
 * Why not lru-cache: the kernel neither evicts on insert nor in LRU order; it keeps every entry
 * until this timer-driven collector (with its counter, rover and goal) removes it, and a lookup
 * only refreshes `lastuse`. lru-cache's synchronous max/TTL eviction would change which entries
 * survive, and it allocates per entry.
 */
import type { Dest } from '../svc/types.js';
import { hash32 } from './hash.js';

export const LOC_TAB_BITS = 10;
export const LOC_TAB_SIZE = 1 << LOC_TAB_BITS;
const LOC_TAB_MASK = LOC_TAB_SIZE - 1;
/** Seconds between collector runs (CHECK_EXPIRE_INTERVAL). */
export const CHECK_EXPIRE_INTERVAL = 60;
/** Idle time after which the over-size collector may drop an entry (ENTRY_TIMEOUT). */
export const ENTRY_TIMEOUT = 6 * 60;
export const COUNT_FOR_FULL_EXPIRATION = 30;
export const LOC_MAX_SIZE = LOC_TAB_SIZE * 16;

const INITIAL_CAPACITY = 64;

/** ip_vs_dest_hold()/ip_vs_dest_put(): a table entry keeps a (possibly trashed) dest alive. */
export function destHold(d: Dest): void {
  d.refcnt++;
}
export function destPut(d: Dest): void {
  d.refcnt--;
}

export abstract class LocalityTable {
  readonly af: 4 | 6;
  /** Bucket -> first entry index, -1 if empty. */
  readonly head = new Int32Array(LOC_TAB_SIZE).fill(-1);
  next: Int32Array;
  /** Four words per entry (IPv4 uses word 0 only). */
  addr: Uint32Array;
  lastuse: Float64Array;
  capacity: number;
  private freeHead = -1;
  /** Entries actually in the table. */
  live = 0;
  /** The kernel's `tbl->entries` counter, which drives the collector (see lblc's replace quirk). */
  entries = 0;
  readonly maxSize = LOC_MAX_SIZE;
  rover = 0;
  counter = 1;
  /** Next time (env seconds) the collector timer fires. */
  nextCheck: number;

  constructor(af: 4 | 6, now: number) {
    this.af = af;
    this.capacity = INITIAL_CAPACITY;
    this.next = new Int32Array(INITIAL_CAPACITY);
    this.addr = new Uint32Array(INITIAL_CAPACITY * 4);
    this.lastuse = new Float64Array(INITIAL_CAPACITY);
    this.threadFree(0, INITIAL_CAPACITY);
    this.nextCheck = now + CHECK_EXPIRE_INTERVAL;
  }

  /** Release whatever the entry holds (dest references); called before it is unlinked. */
  protected abstract releasePayload(e: number): void;
  /** Grow the subclass's per-entry arrays to `cap` entries, keeping contents. */
  protected abstract growPayload(cap: number): void;

  bucketOf(words: Uint32Array): number {
    const fold = this.af === 6 ? (words[0]! ^ words[1]! ^ words[2]! ^ words[3]!) >>> 0 : words[0]! >>> 0;
    return hash32(fold, LOC_TAB_BITS);
  }

  /** ip_vs_lblc[r]_get(): entry index for the address, or -1. */
  find(words: Uint32Array): number {
    const addr = this.addr;
    let e = this.head[this.bucketOf(words)]!;
    if (this.af === 4) {
      const w0 = words[0]!;
      while (e !== -1) {
        if (addr[e * 4] === w0) return e;
        e = this.next[e]!;
      }
    } else {
      const w0 = words[0]!, w1 = words[1]!, w2 = words[2]!, w3 = words[3]!;
      while (e !== -1) {
        const b = e * 4;
        if (addr[b] === w0 && addr[b + 1] === w1 && addr[b + 2] === w2 && addr[b + 3] === w3) return e;
        e = this.next[e]!;
      }
    }
    return -1;
  }

  /** Allocate an entry for the address at the head of its bucket (hlist_add_head) and count it. */
  insert(words: Uint32Array, now: number): number {
    if (this.freeHead === -1) this.grow();
    const e = this.freeHead;
    this.freeHead = this.next[e]!;
    const b = e * 4;
    this.addr[b] = words[0]!;
    if (this.af === 6) {
      this.addr[b + 1] = words[1]!;
      this.addr[b + 2] = words[2]!;
      this.addr[b + 3] = words[3]!;
    }
    this.lastuse[e] = now;
    const bucket = this.bucketOf(words);
    this.next[e] = this.head[bucket]!;
    this.head[bucket] = e;
    this.live++;
    this.entries++;
    return e;
  }

  /** Unlink entry `e` (whose predecessor in bucket `bucket` is `prev`, -1 if first) and free it. */
  private removeAt(bucket: number, prev: number, e: number): void {
    this.releasePayload(e);
    const nx = this.next[e]!;
    if (prev === -1) this.head[bucket] = nx;
    else this.next[prev] = nx;
    this.next[e] = this.freeHead;
    this.freeHead = e;
    this.live--;
  }

  /** Drop every entry (done_service / flush). */
  flush(): void {
    for (let j = 0; j < LOC_TAB_SIZE; j++) {
      while (this.head[j] !== -1) this.removeAt(j, -1, this.head[j]!);
    }
    this.entries = 0;
  }

  /** Remove, in bucket j, the entries with now >= lastuse + timeout; returns how many. */
  private expireBucket(j: number, now: number, timeout: number): number {
    let removed = 0;
    let prev = -1;
    let e = this.head[j]!;
    while (e !== -1) {
      const nx = this.next[e]!;
      if (now < this.lastuse[e]! + timeout) {
        prev = e;
      } else {
        this.removeAt(j, prev, e);
        removed++;
      }
      e = nx;
    }
    return removed;
  }

  /** ip_vs_lblc[r]_full_check(): the rover ends where it started. */
  private fullCheck(now: number, expiration: number): void {
    let j = this.rover;
    for (let i = 0; i < LOC_TAB_SIZE; i++) {
      j = (j + 1) & LOC_TAB_MASK;
      this.entries -= this.expireBucket(j, now, expiration);
    }
    this.rover = j;
  }

  /** ip_vs_lblc[r]_check_expire(): one run of the 60 s collector timer. */
  checkExpire(now: number, expiration: number): void {
    if (this.counter % COUNT_FOR_FULL_EXPIRATION === 0) {
      this.fullCheck(now, expiration);
      this.counter = 1;
      return;
    }
    if (this.entries <= this.maxSize) {
      this.counter++;
      return;
    }
    let goal = Math.trunc(((this.entries - this.maxSize) * 4) / 3);
    if (goal > this.maxSize / 2) goal = this.maxSize / 2;
    let j = this.rover;
    for (let i = 0; i < LOC_TAB_SIZE; i++) {
      j = (j + 1) & LOC_TAB_MASK;
      const removed = this.expireBucket(j, now, ENTRY_TIMEOUT);
      this.entries -= removed;
      goal -= removed;
      if (goal <= 0) break;
    }
    this.rover = j;
  }

  /** Drive the timer from the control plane's ~1 s tick: fire once when due, re-arm 60 s later. */
  tick(now: number, expiration: number): void {
    if (now < this.nextCheck) return;
    this.checkExpire(now, expiration);
    this.nextCheck = now + CHECK_EXPIRE_INTERVAL;
  }

  private grow(): void {
    const old = this.capacity;
    const cap = old * 2;
    const next = new Int32Array(cap);
    next.set(this.next);
    const addr = new Uint32Array(cap * 4);
    addr.set(this.addr);
    const lastuse = new Float64Array(cap);
    lastuse.set(this.lastuse);
    this.next = next;
    this.addr = addr;
    this.lastuse = lastuse;
    this.capacity = cap;
    this.growPayload(cap);
    this.threadFree(old, cap);
  }

  /** Put entries [from, to) on the free list. */
  private threadFree(from: number, to: number): void {
    for (let e = to - 1; e >= from; e--) {
      this.next[e] = this.freeHead;
      this.freeHead = e;
    }
  }
}
