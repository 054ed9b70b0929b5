/**
 * The scheduler interface (ip_vs_scheduler in include/net/ip_vs.h).
 * One scheduler per file under src/sched/, registered by its ipvsadm name.
 */
import type { Dest, Service } from '../svc/types.js';

/**
 * What a scheduler may look at in the packet that needs a new connection.
 * One mutable instance is reused by the engine (no allocation per packet).
 * Addresses: IPv4 in word 0 only; IPv6 in words 0..3 (most significant first).
 */
export interface SchedPacket {
  af: 4 | 6;
  protocol: number;
  /** Client (source) address words. */
  saddr: Uint32Array; // length 4
  /** Destination address words (the VIP, or the original destination for fwmark services). */
  daddr: Uint32Array; // length 4
  /** Host order; 0 when the protocol has no ports. */
  sport: number;
  dport: number;
}

export function newSchedPacket(): SchedPacket {
  return { af: 4, protocol: 0, saddr: new Uint32Array(4), daddr: new Uint32Array(4), sport: 0, dport: 0 };
}

/** The seconds clock and random source a scheduler may use; injected so tests are deterministic. */
export interface SchedEnv {
  /** Coarse monotonic time in seconds (the engine clock). */
  now(): number;
  /** Uniform random uint32 (twos). Seedable. */
  random32(): number;
  /** Kernel sysctls read by schedulers (lblc_expiration, lblcr_expiration), seconds. */
  lblcExpiration: number;
  lblcrExpiration: number;
  /**
   * Optional sink for the kernel's rate-limited `ip_vs_scheduler_err(svc, msg)` lines
   * ("no destination available", wrr's "...: all destinations are overloaded").
   * `msg` is always a constant string (no allocation); the caller formats the log line.
   */
  schedError?(svc: Service, msg: string): void;
}

export interface Scheduler {
  readonly name: string;
  /** init_service: attach per-service state to svc.schedData. */
  init?(svc: Service, env: SchedEnv): void;
  /** done_service: release state. */
  done?(svc: Service): void;
  /** add_dest / del_dest / upd_dest: svc.dests already reflects the change. */
  addDest?(svc: Service, dest: Dest, env: SchedEnv): void;
  /** Called after `dest` was removed from svc.dests; `oldIndex` is where it was (kernel list position). */
  delDest?(svc: Service, dest: Dest, oldIndex: number, env: SchedEnv): void;
  updDest?(svc: Service, dest: Dest, env: SchedEnv): void;
  /** Pick a destination or return null ("no destination available"). */
  schedule(svc: Service, pkt: SchedPacket, env: SchedEnv): Dest | null;
  /** Periodic work (lblc/lblcr garbage collection); called by the control plane about once a second. */
  tick?(svc: Service, env: SchedEnv): void;
}
