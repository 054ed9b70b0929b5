/**
 * The IPVS rate estimator (net/netfilter/ipvs/ip_vs_est.c), exactly.
 *
 * Every 2 seconds, for each registered Stats and each of its five counters:
 *   rate = (total_now - total_last) << 9   (conns, inpkts, outpkts: per second, scaled by 2^10)
 *   rate = (total_now - total_last) << 4   (inbytes, outbytes:       per second, scaled by 2^5)
 *   avg += ((s64)rate - (s64)avg) >> 2     (EWMA, weight 1/4, arithmetic shift)
 * Read-out: cps/pps = (avg + 0x1FF) >> 10, bps = (avg + 0xF) >> 5 (bytes per second).
 *
 * State lives in the Stats object itself (estLast, estAvg) so read-out and
 * zeroing need no estimator instance. The arithmetic is done in doubles, which
 * is exact while |rate| and |avg| stay below 2^53 (i.e. below ~8.8e12 packets/s
 * or ~2.8e14 bytes/s); outside that range a step falls back to 64-bit BigInt
 * arithmetic with the kernel's u64/s64 semantics (the stored average is then
 * the nearest double). test/est/estimator.test.ts checks both against a BigInt
 * model of the kernel code.
 */
import { ST_CONNS, ST_COUNT, ST_INBYTES, ST_INPKTS, ST_OUTBYTES, ST_OUTPKTS } from '../svc/types.js';
import type { Stats } from '../svc/types.js';

/** Seconds between estimations (the kernel's 2 * HZ). */
export const EST_INTERVAL = 2;

const TWO53 = 2 ** 53;
/** Rate multiplier per counter: << 9 for conns/pkts, << 4 for bytes. */
const RATE_MUL: readonly number[] = [512, 512, 512, 16, 16];
const RATE_SHIFT: readonly bigint[] = [9n, 9n, 9n, 4n, 4n];

export interface Rates {
  cps: number;
  inpps: number;
  outpps: number;
  /** Bytes per second. */
  inbps: number;
  outbps: number;
}

/** ip_vs_read_estimator: the decoded rates ipvsadm shows. */
export function readRates(stats: Stats): Rates {
  const a = stats.estAvg;
  return {
    cps: readPps(a[ST_CONNS]!),
    inpps: readPps(a[ST_INPKTS]!),
    outpps: readPps(a[ST_OUTPKTS]!),
    inbps: readBps(a[ST_INBYTES]!),
    outbps: readBps(a[ST_OUTBYTES]!),
  };
}

/** (avg + 0x1FF) >> 10 */
export function readPps(avg: number): number {
  if (avg < TWO53 && avg > -TWO53) return Math.floor((avg + 0x1ff) / 1024);
  return Number(BigInt.asUintN(64, BigInt(avg) + 0x1ffn) >> 10n);
}

/** (avg + 0xF) >> 5 */
export function readBps(avg: number): number {
  if (avg < TWO53 && avg > -TWO53) return Math.floor((avg + 0xf) / 32);
  return Number(BigInt.asUintN(64, BigInt(avg) + 0xfn) >> 5n);
}

/** ip_vs_zero_estimator: rates to 0, last totals to the current counters. */
export function zeroEstimator(stats: Stats): void {
  for (let i = 0; i < ST_COUNT; i++) {
    stats.estLast[i] = stats.cnt[i]!;
    stats.estAvg[i] = 0;
  }
}

/** ip_vs_zero_stats: the current counters become the zero point, and the estimator restarts. */
export function zeroStats(stats: Stats): void {
  for (let i = 0; i < ST_COUNT; i++) stats.zero[i] = stats.cnt[i]!;
  zeroEstimator(stats);
}

/** One 2-second estimation of one Stats (ip_vs_chain_estimation's body). */
export function estimateOnce(stats: Stats): void {
  const cnt = stats.cnt;
  const last = stats.estLast;
  const avg = stats.estAvg;
  for (let i = 0; i < ST_COUNT; i++) {
    const now = cnt[i]!;
    const delta = now - last[i]!;
    last[i] = now;
    const rate = delta * RATE_MUL[i]!;
    const a = avg[i]!;
    if (rate < TWO53 && rate > -TWO53 && a < TWO53 && a > -TWO53) {
      // (rate - avg) is exact here and >> 2 on a signed value is floor division by 4.
      avg[i] = a + Math.floor((rate - a) / 4);
    } else {
      avg[i] = bigStep(delta, a, RATE_SHIFT[i]!);
    }
  }
}

/** The same step in u64/s64 arithmetic, for values beyond 2^53. */
function bigStep(delta: number, avg: number, shift: bigint): number {
  const rate = BigInt.asUintN(64, BigInt.asUintN(64, BigInt(delta)) << shift);
  const a = BigInt.asUintN(64, BigInt(avg));
  const diff = BigInt.asIntN(64, BigInt.asIntN(64, rate) - BigInt.asIntN(64, a)) >> 2n;
  return Number(BigInt.asUintN(64, a + diff));
}

/**
 * One estimation with no new traffic, applied `n` times: what the kernel's
 * estimator does over idle periods. Stops early at a fixed point (0).
 */
function decay(stats: Stats, n: number): void {
  const avg = stats.estAvg;
  for (let i = 0; i < ST_COUNT; i++) {
    let a = avg[i]!;
    for (let k = 0; k < n; k++) {
      const next = a < TWO53 && a > -TWO53 ? a + Math.floor(-a / 4) : bigStep(0, a, 0n);
      if (next === a) break; // a fixed point (0): further idle steps change nothing
      a = next;
    }
    avg[i] = a;
  }
  // Counters did not move, so the last totals stay as they are.
}

/**
 * Runs the 2-second estimation over a set of Stats, driven by an injected
 * clock through tick(now). Estimation starts with start(now) (the kernel starts
 * its estimator threads when the first service is added) and can be suspended
 * (sysctl run_estimation = 0 or an empty est_cpulist): rates then freeze.
 */
export class Estimator {
  private readonly list = new Set<Stats>();
  private started = false;
  private nextAt = 0;
  /** True while estimation is suspended; rates keep their last values. */
  suspended = false;

  add(stats: Stats): void {
    this.list.add(stats);
  }

  /** Stops estimating `stats`; its state is kept, so re-adding (a revived dest) continues from it. */
  remove(stats: Stats): void {
    this.list.delete(stats);
  }

  has(stats: Stats): boolean {
    return this.list.has(stats);
  }

  get size(): number {
    return this.list.size;
  }

  get isStarted(): boolean {
    return this.started;
  }

  /** Begins periodic estimation; the first estimation happens EST_INTERVAL seconds later. Idempotent. */
  start(now: number): void {
    if (this.started) return;
    this.started = true;
    this.nextAt = now + EST_INTERVAL;
  }

  /**
   * Runs every estimation due by `now` (as many 2-second steps as elapsed).
   * The first due step sees all traffic since the previous one; later steps of
   * the same catch-up see none, as counters cannot be split back in time.
   */
  tick(now: number): void {
    if (!this.started || now < this.nextAt) return;
    const steps = Math.floor((now - this.nextAt) / EST_INTERVAL) + 1;
    this.nextAt += steps * EST_INTERVAL;
    if (this.suspended) return;
    for (const s of this.list) {
      estimateOnce(s);
      if (steps > 1) decay(s, steps - 1);
    }
  }
}
