/**
 * Helpers shared by several schedulers (include/net/ip_vs.h and the copies of the same
 * loops in ip_vs_wlc.c, ip_vs_lblc.c, ip_vs_lblcr.c).
 *
 * Ratio comparisons: the kernel compares `(s64)loh * w_d > (s64)doh * w_least`. We use plain
 * JS numbers: |overhead| < 2^31 and weights are at most 65535 (ipvsadm's range), so products
 * stay below 2^47, well inside the 2^53 doubles represent exactly.
 */
import type { Dest, Service } from '../svc/types.js';
import { DEST_F_OVERLOAD } from '../svc/types.js';
import type { SchedEnv } from './types.js';

export const MSG_NO_DEST = 'no destination available';
export const MSG_ALL_OVERLOADED = 'no destination available: all destinations are overloaded';

/** ip_vs_scheduler_err(): hand the constant message to the engine's (rate-limited) logger, if any. */
export function schedErr(env: SchedEnv, svc: Service, msg: string): void {
  if (env.schedError !== undefined) env.schedError(svc, msg);
}

/**
 * ip_vs_dest_conn_overhead(): activeconns*256 + inactconns, as a C `int`
 * (the `| 0` reproduces its 32-bit wrap-around for absurd counts).
 */
export function connOverhead(d: Dest): number {
  return ((d.activeConns << 8) + d.inactConns) | 0;
}

/**
 * The service-wide weighted least-connection pick used by wlc, lblc and lblcr:
 * stage 1 takes the first dest (list order) that is not overloaded and has weight > 0;
 * stage 2 walks the rest skipping only overloaded dests (weight 0 is not tested: its
 * product is 0 so it can never win) and replaces on a strictly smaller ratio.
 */
export function wlcPick(svc: Service): Dest | null {
  const dests = svc.dests;
  const n = dests.length;
  let i = 0;
  let least: Dest | null = null;
  for (; i < n; i++) {
    const d = dests[i]!;
    if ((d.flags & DEST_F_OVERLOAD) === 0 && d.weight > 0) {
      least = d;
      break;
    }
  }
  if (least === null) return null;
  let loh = connOverhead(least);
  for (i++; i < n; i++) {
    const d = dests[i]!;
    if ((d.flags & DEST_F_OVERLOAD) !== 0) continue;
    const doh = connOverhead(d);
    if (loh * d.weight > doh * least.weight) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

/**
 * lblc/lblcr's own notion of "overloaded" (their is_overloaded()): more active connections
 * than its weight, while some dest of the service has activeconns*2 < weight.
 * (This walks all dests, including weight-0, overloaded and never-AVAILABLE ones, as the kernel does.)
 */
export function lblcOverloaded(d: Dest, svc: Service): boolean {
  if (d.activeConns > d.weight) {
    const dests = svc.dests;
    for (let i = 0; i < dests.length; i++) {
      const o = dests[i]!;
      if (o.activeConns * 2 < o.weight) return true;
    }
  }
  return false;
}

/** gcd() from lib/math/gcd.c (both arguments > 0). */
export function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/** Thrown by init() when the kernel's init_service would fail (mh with more dests than table slots). */
export class SchedInitError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'SchedInitError';
    this.code = code;
  }
}
