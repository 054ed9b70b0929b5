/**
 * twos — power of two choices (ip_vs_twos.c, kernel >= 6.2).
 *
 * total = sum of the weights of the non-overloaded dests with weight > 0. Two independent
 * numbers r1, r2 uniform in [0, total] are drawn; walking the eligible dests in list order and
 * subtracting each weight, choice1/choice2 are the first dests where r1/r2 drop to <= 0.
 * choice2 wins when weight2 * overhead1 > weight1 * overhead2, else choice1.
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_OVERLOAD } from '../svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from './types.js';
import { MSG_NO_DEST, connOverhead, schedErr } from './common.js';

/**
 * get_random_u32_below(ceil) for a non-constant ceil (drivers/char/random.c): the high half of
 * ceil * rand (Lemire's method), rejecting draws whose low half falls below 2^32 mod ceil.
 * (The first twos version used `prandom_u32() % total`; current kernels use this.)
 * ceil * rand needs 64 bits, so it is split on rand's 16-bit halves to stay exact in doubles.
 */
export function randomBelow(env: SchedEnv, ceil: number): number {
  let rand = env.random32() >>> 0;
  if (ceil === 0) return rand;
  let lo = Math.imul(ceil, rand) >>> 0;
  if (lo < ceil) {
    const bound = (0x100000000 - ceil) % ceil; // (-ceil) % ceil in u32
    while (lo < bound) {
      rand = env.random32() >>> 0;
      lo = Math.imul(ceil, rand) >>> 0;
    }
  }
  // high 32 bits of ceil * rand
  const a = ceil * (rand & 0xffff); // < 2^48
  const b = ceil * (rand >>> 16); // < 2^48
  return Math.floor(b / 65536) + Math.floor(((b % 65536) * 65536 + a) / 0x100000000);
}

export const twos: Scheduler = {
  name: 'twos',

  schedule(svc: Service, _pkt: SchedPacket, env: SchedEnv): Dest | null {
    const dests = svc.dests;
    const n = dests.length;
    let total = 0;
    let any = false;
    for (let i = 0; i < n; i++) {
      const d = dests[i]!;
      if ((d.flags & DEST_F_OVERLOAD) === 0 && d.weight > 0) {
        total += d.weight;
        any = true;
      }
    }
    if (!any) {
      schedErr(env, svc, MSG_NO_DEST);
      return null;
    }
    // +1 so that the draws are inclusive of total (a draw of 0 picks the first eligible dest)
    total += 1;
    let r1 = randomBelow(env, total);
    let r2 = randomBelow(env, total);
    let choice1: Dest | null = null;
    let choice2: Dest | null = null;
    let weight1 = -1, weight2 = -1, overhead1 = 0, overhead2 = 0;
    for (let i = 0; i < n; i++) {
      const d = dests[i]!;
      if ((d.flags & DEST_F_OVERLOAD) !== 0) continue;
      const w = d.weight;
      if (w <= 0) continue;
      r1 -= w;
      r2 -= w;
      if (r1 <= 0 && weight1 === -1) {
        choice1 = d;
        weight1 = w;
        overhead1 = connOverhead(d);
      }
      if (r2 <= 0 && weight2 === -1) {
        choice2 = d;
        weight2 = w;
        overhead2 = connOverhead(d);
      }
      if (weight1 !== -1 && weight2 !== -1) break;
    }
    // The kernel multiplies in C `int` here (not s64 as in wlc), so Math.imul keeps its wrap-around.
    if (choice2 !== null && Math.imul(weight2, overhead1) > Math.imul(weight1, overhead2)) return choice2;
    return choice1;
  },
};
