import t from 'tap';
import {
  Estimator, EST_INTERVAL, estimateOnce, readBps, readPps, readRates, zeroEstimator, zeroStats,
} from '../../src/est/estimator.js';
import { newStats, ST_CONNS, ST_INBYTES, ST_INPKTS, ST_OUTBYTES, ST_OUTPKTS, type Stats } from '../../src/svc/types.js';

/**
 * An independent model of ip_vs_chain_estimation in u64/s64 BigInt arithmetic,
 * written from the kernel source: rate = delta << shift; avg += ((s64)rate - (s64)avg) >> 2.
 */
const u64 = (x: bigint) => BigInt.asUintN(64, x);
const s64 = (x: bigint) => BigInt.asIntN(64, x);
function modelStep(avg: bigint, delta: bigint, shift: bigint): bigint {
  const rate = u64(delta << shift);
  return u64(avg + (s64(s64(rate) - s64(avg)) >> 2n));
}
function modelPps(avg: bigint): bigint {
  return u64(avg + 0x1ffn) >> 10n;
}
function modelBps(avg: bigint): bigint {
  return u64(avg + 0xfn) >> 5n;
}

/** A small seeded generator so failures are reproducible. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

t.test('steady 1000 conns/s: displayed CPS after each 2 s period', async (t) => {
  const s = newStats();
  const shown: number[] = [];
  for (let n = 0; n < 40; n++) {
    s.cnt[ST_CONNS] += 2000; // 1000 per second over the 2 s period
    estimateOnce(s);
    shown.push(readRates(s).cps);
  }
  // By hand: avg1 = 1024000>>2 = 256000 → (256000+511)>>10 = 250;
  // avg2 = 256000 + (768000>>2) = 448000 → 448511>>10 = 437 (448512 would be 438);
  // avg3 = 448000 + (576000>>2) = 592000 → 592511>>10 = 578.
  t.same(shown.slice(0, 3), [250, 437, 578]);
  t.equal(shown[39], 1000, 'converges to the true rate');
  for (let i = 1; i < shown.length; i++) t.ok(shown[i]! >= shown[i - 1]!, 'monotonic rise');
  // The whole sequence equals the kernel model.
  let avg = 0n;
  for (let n = 0; n < 40; n++) {
    avg = modelStep(avg, 2000n, 9n);
    t.equal(shown[n], Number(modelPps(avg)));
  }
});

t.test('bytes are scaled by 2^5 and read out as bytes per second', async (t) => {
  const s = newStats();
  s.cnt[ST_INBYTES] = 2_000_000; // 1 MB/s during the first 2 s
  s.cnt[ST_OUTBYTES] = 3;
  estimateOnce(s);
  // rate = 2e6 << 4 = 32e6; avg = 8e6; (8e6 + 15) >> 5 = 250000
  t.equal(s.estAvg[ST_INBYTES], 8_000_000);
  t.equal(readRates(s).inbps, 250_000);
  // 3 bytes in 2 s: rate 48, avg 12, shown (12+15)>>5 = 0
  t.equal(s.estAvg[ST_OUTBYTES], 12);
  t.equal(readRates(s).outbps, 0);
  for (let i = 0; i < 60; i++) {
    s.cnt[ST_INBYTES] += 2_000_000;
    estimateOnce(s);
  }
  t.equal(readRates(s).inbps, 1_000_000);
});

t.test('packet counters use the same scaling as connections', async (t) => {
  const s = newStats();
  s.cnt[ST_INPKTS] = 200;
  s.cnt[ST_OUTPKTS] = 100;
  estimateOnce(s);
  // 100 pkt/s: rate 102400, avg 25600 → 25; 50 pkt/s: avg 12800 → 12 (13311>>10)
  t.equal(readRates(s).inpps, 25);
  t.equal(readRates(s).outpps, 12);
});

t.test('decay after traffic stops uses an arithmetic (flooring) shift and reaches 0', async (t) => {
  const s = newStats();
  s.estAvg[ST_CONNS] = 5;
  const seen: number[] = [];
  for (let i = 0; i < 5; i++) {
    estimateOnce(s);
    seen.push(s.estAvg[ST_CONNS]!);
  }
  // (0-5)>>2 = -2 → 3; (0-3)>>2 = -1 → 2; → 1; (0-1)>>2 = -1 → 0; stays 0
  t.same(seen, [3, 2, 1, 0, 0]);
});

t.test('double arithmetic equals the u64/s64 model on random traffic', async (t) => {
  const rnd = lcg(12345);
  const s = newStats();
  const avg = [0n, 0n, 0n, 0n, 0n];
  const shift = [9n, 9n, 9n, 4n, 4n];
  let mismatches = 0;
  for (let step = 0; step < 3000; step++) {
    for (let i = 0; i < 5; i++) {
      // Bursty: mostly small, sometimes huge (up to 2^40 per period), sometimes idle.
      const r = rnd();
      const d = r < 0.2 ? 0 : r < 0.9 ? Math.floor(rnd() * 100000) : Math.floor(rnd() * 2 ** 40);
      s.cnt[i] += d;
    }
    const before = Array.from(s.estLast);
    estimateOnce(s);
    for (let i = 0; i < 5; i++) {
      avg[i] = modelStep(avg[i]!, BigInt(s.cnt[i]! - before[i]!), shift[i]!);
      if (BigInt(s.estAvg[i]!) !== avg[i]) mismatches++;
      const shown = i < 3 ? readPps(s.estAvg[i]!) : readBps(s.estAvg[i]!);
      const want = i < 3 ? modelPps(avg[i]!) : modelBps(avg[i]!);
      if (BigInt(shown) !== want) mismatches++;
    }
  }
  t.equal(mismatches, 0);
});

t.test('beyond 2^53 a step still follows the 64-bit arithmetic', async (t) => {
  const s = newStats();
  // delta 2^50 packets: rate 2^59 (outside doubles' exact range, inside s64).
  s.cnt[ST_INPKTS] = 2 ** 50;
  estimateOnce(s);
  t.equal(BigInt(s.estAvg[ST_INPKTS]!), modelStep(0n, 2n ** 50n, 9n));
  t.equal(s.estAvg[ST_INPKTS], 2 ** 57);
  t.equal(readPps(s.estAvg[ST_INPKTS]!), Number(modelPps(2n ** 57n)));
  s.cnt[ST_INPKTS] += 2 ** 50;
  estimateOnce(s);
  t.equal(BigInt(s.estAvg[ST_INPKTS]!), modelStep(2n ** 57n, 2n ** 50n, 9n));
});

t.test('zeroing: rates drop to 0 and the next estimate only sees new traffic', async (t) => {
  const s = newStats();
  for (let i = 0; i < 10; i++) {
    s.cnt[ST_CONNS] += 2000;
    estimateOnce(s);
  }
  t.ok(readRates(s).cps > 900);
  s.cnt[ST_CONNS] += 777; // arrived after the last estimation, before -Z
  zeroStats(s);
  t.same(readRates(s), { cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 });
  t.equal(s.zero[ST_CONNS], s.cnt[ST_CONNS], 'zero point is the current counter');
  s.cnt[ST_CONNS] += 200; // 100/s
  estimateOnce(s);
  t.equal(readRates(s).cps, 25, 'only the 200 new conns count (100/s → first period 25)');

  const z: Stats = newStats();
  z.cnt[ST_INPKTS] = 50;
  z.estAvg[ST_INPKTS] = 999;
  zeroEstimator(z);
  t.equal(z.estLast[ST_INPKTS], 50);
  t.equal(z.estAvg[ST_INPKTS], 0);
  t.equal(z.zero[ST_INPKTS], 0, 'zeroEstimator leaves the counter zero point alone');
});

t.test('Estimator: starts on demand, runs every 2 s, catches up over idle periods', async (t) => {
  const est = new Estimator();
  const a = newStats();
  est.add(a);
  a.cnt[ST_CONNS] = 2000;
  est.tick(100);
  t.equal(a.estAvg[ST_CONNS], 0, 'nothing before start()');
  est.start(100);
  est.tick(101.9);
  t.equal(a.estAvg[ST_CONNS], 0, 'first estimation is 2 s after start');
  est.tick(102);
  t.equal(a.estAvg[ST_CONNS], 256000);

  // Jump 10 s: 5 estimations; the first sees the traffic, the other four see none.
  a.cnt[ST_CONNS] += 4000;
  est.tick(112);
  const ref = newStats();
  ref.cnt[ST_CONNS] = 2000;
  estimateOnce(ref);
  ref.cnt[ST_CONNS] += 4000;
  for (let i = 0; i < 5; i++) estimateOnce(ref);
  t.equal(a.estAvg[ST_CONNS], ref.estAvg[ST_CONNS]);
  t.equal(a.estLast[ST_CONNS], 6000);

  // Schedule is kept: the next estimation is at 114.
  a.cnt[ST_CONNS] += 100;
  est.tick(113.5);
  t.equal(a.estLast[ST_CONNS], 6000);
  est.tick(114);
  t.equal(a.estLast[ST_CONNS], 6100);

  // A very long idle gap is cheap and ends at exactly 0.
  est.tick(114 + EST_INTERVAL * 1e6);
  t.equal(a.estAvg[ST_CONNS], 0);
});

t.test('Estimator: removed stats freeze; suspended estimation freezes all', async (t) => {
  const est = new Estimator();
  const a = newStats();
  const b = newStats();
  est.add(a);
  est.add(b);
  est.start(0);
  a.cnt[ST_CONNS] = 2000;
  b.cnt[ST_CONNS] = 2000;
  est.remove(b);
  est.tick(2);
  t.equal(a.estAvg[ST_CONNS], 256000);
  t.equal(b.estAvg[ST_CONNS], 0, 'not estimated after remove()');
  est.add(b);
  est.suspended = true;
  a.cnt[ST_CONNS] += 2000;
  est.tick(4);
  t.equal(a.estAvg[ST_CONNS], 256000, 'rates frozen while suspended');
  est.suspended = false;
  est.tick(6);
  // Re-added b continues from its old state: the delta covers everything since its last estimate.
  t.equal(b.estLast[ST_CONNS], 2000);
  t.equal(b.estAvg[ST_CONNS], 256000);
  t.equal(a.estLast[ST_CONNS], 4000);
});
