/**
 * Virtual services and real servers ("destinations") as IPVS models them
 * (include/net/ip_vs.h, include/uapi/linux/ip_vs.h). These are control-plane
 * objects; the data plane refers to them by their integer `id` (an index into
 * the registry in svc/table.ts) and reads only numeric fields.
 */
import type { IpAddr } from '../util/ip.js';
import type { Scheduler } from '../sched/types.js';

// Protocols (IPPROTO_*).
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_SCTP = 132;
export const PROTO_ICMP = 1;
export const PROTO_ICMPV6 = 58;

// Service flags (IP_VS_SVC_F_*).
export const SVC_F_PERSISTENT = 0x0001;
export const SVC_F_HASHED = 0x0002;
export const SVC_F_ONEPACKET = 0x0004;
export const SVC_F_SCHED1 = 0x0008;
export const SVC_F_SCHED2 = 0x0010;
export const SVC_F_SCHED3 = 0x0020;
export const SVC_F_SCHED_MASK = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3;
export const SVC_F_SCHED_SH_FALLBACK = SVC_F_SCHED1;
export const SVC_F_SCHED_SH_PORT = SVC_F_SCHED2;
export const SVC_F_SCHED_MH_FALLBACK = SVC_F_SCHED1;
export const SVC_F_SCHED_MH_PORT = SVC_F_SCHED2;

/** Default persistence timeout when `-p` has no value (IPVS_SVC_PERSISTENT_TIMEOUT = 6*60; the man page's 300 is wrong). */
export const DEFAULT_PERSISTENT_TIMEOUT = 360;

// Destination flags (IP_VS_DEST_F_*).
export const DEST_F_AVAILABLE = 0x0001;
export const DEST_F_OVERLOAD = 0x0002;

// Forwarding methods (IP_VS_CONN_F_FWD_MASK values).
export const FWD_MASQ = 0;
export const FWD_LOCALNODE = 1;
export const FWD_TUNNEL = 2;
export const FWD_DROUTE = 3;
export const FWD_BYPASS = 4;

// Tunnel types and checksum modes (IP_VS_CONN_F_TUNNEL_TYPE_*, IP_VS_TUNNEL_ENCAP_FLAG_*).
export const TUN_IPIP = 0;
export const TUN_GUE = 1;
export const TUN_GRE = 2;
export const TUN_F_NOCSUM = 0;
export const TUN_F_CSUM = 1;
export const TUN_F_REMCSUM = 2;

/** Five 64-bit counters (kept as doubles: exact to 2^53) plus the zero point used by `-Z`. */
export const ST_CONNS = 0;
export const ST_INPKTS = 1;
export const ST_OUTPKTS = 2;
export const ST_INBYTES = 3;
export const ST_OUTBYTES = 4;
export const ST_COUNT = 5;

export interface Stats {
  /** Running counters, indexed by ST_*. The hot path only adds to these. */
  readonly cnt: Float64Array;
  /** Values at the last zeroing; reported = cnt - zero. */
  readonly zero: Float64Array;
  /** Estimator state (est/): last totals, and EWMA averages in kernel fixed point. */
  readonly estLast: Float64Array;
  readonly estAvg: Float64Array;
}

export function newStats(): Stats {
  return {
    cnt: new Float64Array(ST_COUNT),
    zero: new Float64Array(ST_COUNT),
    estLast: new Float64Array(ST_COUNT),
    estAvg: new Float64Array(ST_COUNT),
  };
}

export interface Dest {
  /** Registry index, stable for the life of the object (also while in the trash). */
  readonly id: number;
  /** The service this dest belongs (or belonged, if in the trash) to. */
  svc: Service;
  readonly addr: IpAddr;
  /** Host order. */
  readonly port: number;
  fwdMethod: number;
  weight: number;
  /** Last non-zero weight (used by mh). */
  lastWeight: number;
  uThreshold: number;
  lThreshold: number;
  /** DEST_F_AVAILABLE | DEST_F_OVERLOAD. */
  flags: number;
  activeConns: number;
  inactConns: number;
  persistConns: number;
  /** Connections (and templates) referencing this dest; a trashed dest with 0 refs can be freed. */
  refcnt: number;
  tunType: number;
  tunPort: number;
  tunFlags: number;
  stats: Stats;
  /** Monotonic time (s) the dest went to the trash; 0 while linked. */
  trashedAt: number;
}

export interface Service {
  readonly id: number;
  readonly af: 4 | 6;
  /** 6/17/132, or 0 for fwmark services. */
  readonly protocol: number;
  /** Unused (IP*_ANY) for fwmark services. */
  readonly addr: IpAddr;
  readonly port: number;
  /** 0 unless a fwmark service. */
  readonly fwmark: number;
  /** SVC_F_* */
  flags: number;
  /** Persistence timeout in seconds (meaningful with SVC_F_PERSISTENT). */
  timeout: number;
  /** IPv4: netmask as uint32 (0xffffffff default). IPv6: prefix length (128 default). */
  netmask: number;
  /** Persistence engine name or null. */
  pe: string | null;
  schedName: string;
  /** null for scheduler "none". */
  scheduler: Scheduler | null;
  /** Opaque per-service scheduler state, owned by the scheduler. */
  schedData: unknown;
  /** Kernel list order: newest destination first. */
  dests: Dest[];
  stats: Stats;
  /** Number of templates + connections referencing the service. */
  refcnt: number;
}

export function isFwmarkService(s: Service): boolean {
  return s.fwmark !== 0;
}

/** Weight 0 or overloaded: no new connections. */
export function destUsable(d: Dest): boolean {
  return d.weight > 0 && (d.flags & DEST_F_OVERLOAD) === 0;
}
