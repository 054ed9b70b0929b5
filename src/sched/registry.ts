/**
 * Scheduler registry by ipvsadm name (register_ip_vs_scheduler / ip_vs_scheduler_get).
 * "none" is a valid scheduler name for the kernel: the service has no scheduler and every
 * new connection gets "no destination" — getScheduler('none') returns undefined for it.
 */
import type { Scheduler } from './types.js';
import { rr } from './rr.js';
import { wrr } from './wrr.js';
import { lc } from './lc.js';
import { wlc } from './wlc.js';
import { lblc } from './lblc.js';
import { lblcr } from './lblcr.js';
import { dh } from './dh.js';
import { sh } from './sh.js';
import { sed } from './sed.js';
import { nq } from './nq.js';
import { fo } from './fo.js';
import { ovf } from './ovf.js';
import { mh } from './mh.js';
import { twos } from './twos.js';

export const SCHED_NONE = 'none';

const ALL: readonly Scheduler[] = [rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos];

/** The names of the 14 kernel schedulers (net/netfilter/ipvs/ip_vs_<name>.c). */
export const SCHEDULER_NAMES: readonly string[] = Object.freeze(ALL.map((s) => s.name));

const BY_NAME: ReadonlyMap<string, Scheduler> = new Map(ALL.map((s) => [s.name, s]));

/** The scheduler object for an ipvsadm name; undefined for "none" and unknown names. */
export function getScheduler(name: string): Scheduler | undefined {
  return BY_NAME.get(name);
}

/** True for the 14 scheduler names and "none". */
export function isKnownScheduler(name: string): boolean {
  return name === SCHED_NONE || BY_NAME.has(name);
}
