/**
 * The IPVS sysctls (/proc/sys/net/ipv4/vs/*) of one network namespace, with the
 * kernel's defaults and the kernel's write validation (ip_vs_ctl.c `vs_vars`
 * and its proc handlers; lblc/lblcr expirations from ip_vs_lblc.c/ip_vs_lblcr.c).
 * Time-valued entries are seconds (the kernel keeps jiffies and prints seconds).
 */
import { totalmem } from 'node:os';
import { CtlError } from '../ctl/types.js';

/**
 * HZ assumed where the kernel bounds seconds by INT_MAX / HZ. A build option:
 * 250 is what Debian/Ubuntu generic kernels use (same choice as conn/timeouts.ts).
 */
export const KERNEL_HZ = 250;
export const INT_MAX = 0x7fffffff;
export const INT_MIN = -0x80000000;
/** Largest seconds value a jiffies-backed entry accepts (proc_dointvec_jiffies, ip_vs_set_timeout). */
export const MAX_JIFFIES_SECONDS = Math.floor(INT_MAX / KERNEL_HZ);

export interface Sysctls {
  amemthresh: number;
  am_droprate: number;
  /** Defense modes: 0 off, 1 auto, 2 auto (active), 3 always. */
  drop_entry: number;
  drop_packet: number;
  secure_tcp: number;
  conntrack: number;
  snat_reroute: number;
  sync_version: number;
  sync_ports: number;
  sync_persist_mode: number;
  sync_qlen_max: number;
  sync_sock_size: number;
  cache_bypass: number;
  expire_nodest_conn: number;
  sloppy_tcp: number;
  sloppy_sctp: number;
  expire_quiescent_template: number;
  /** [threshold, period]. */
  sync_threshold: [number, number];
  /** Seconds. */
  sync_refresh_period: number;
  sync_retries: number;
  nat_icmp_send: number;
  pmtu_disc: number;
  backup_only: number;
  conn_reuse_mode: number;
  schedule_icmp: number;
  ignore_tunneled: number;
  run_estimation: number;
  /** CPU list text; null = never written (housekeeping CPUs). An empty list stops estimation. */
  est_cpulist: string | null;
  est_nice: number;
  debug_level: number;
  /** Seconds. */
  lblc_expiration: number;
  lblcr_expiration: number;
}

export type SysctlName = keyof Sysctls;

/** Field names are the /proc/sys/net/ipv4/vs/ entry names; this is the kernel's table order (lblc/lblcr last). */
export const SYSCTL_NAMES: readonly SysctlName[] = [
  'amemthresh', 'am_droprate', 'drop_entry', 'drop_packet', 'conntrack', 'secure_tcp', 'snat_reroute',
  'sync_version', 'sync_ports', 'sync_persist_mode', 'sync_qlen_max', 'sync_sock_size', 'cache_bypass',
  'expire_nodest_conn', 'sloppy_tcp', 'sloppy_sctp', 'expire_quiescent_template', 'sync_threshold',
  'sync_refresh_period', 'sync_retries', 'nat_icmp_send', 'pmtu_disc', 'backup_only', 'conn_reuse_mode',
  'schedule_icmp', 'ignore_tunneled', 'run_estimation', 'est_cpulist', 'est_nice', 'debug_level',
  'lblc_expiration', 'lblcr_expiration',
];

const NAME_SET = new Set<string>(SYSCTL_NAMES);

export function isSysctlName(name: string): name is SysctlName {
  return NAME_SET.has(name);
}

/** The kernel's sync_qlen_max default: nr_free_buffer_pages() / 32, approximated from total RAM in 4 KiB pages. */
function defaultSyncQlenMax(): number {
  return Math.floor(totalmem() / 4096 / 32);
}

export function defaultSysctls(opts: { sync_qlen_max?: number } = {}): Sysctls {
  return {
    amemthresh: 1024,
    am_droprate: 10,
    drop_entry: 0,
    drop_packet: 0,
    secure_tcp: 0,
    conntrack: 0,
    snat_reroute: 1,
    sync_version: 1,
    sync_ports: 1,
    sync_persist_mode: 0,
    sync_qlen_max: opts.sync_qlen_max ?? defaultSyncQlenMax(),
    sync_sock_size: 0,
    cache_bypass: 0,
    expire_nodest_conn: 0,
    sloppy_tcp: 0,
    sloppy_sctp: 0,
    expire_quiescent_template: 0,
    sync_threshold: [3, 50],
    sync_refresh_period: 0,
    sync_retries: 0,
    nat_icmp_send: 0,
    pmtu_disc: 1,
    backup_only: 0,
    conn_reuse_mode: 1,
    schedule_icmp: 0,
    ignore_tunneled: 0,
    run_estimation: 1,
    est_cpulist: null,
    est_nice: 0,
    debug_level: 0,
    lblc_expiration: 24 * 60 * 60,
    lblcr_expiration: 24 * 60 * 60,
  };
}

function einval(name: SysctlName, why: string): CtlError {
  return new CtlError('EINVAL', `${name}: ${why}`);
}

/** proc_dointvec accepts any C int. */
function checkInt(name: SysctlName, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < INT_MIN || v > INT_MAX) {
    throw einval(name, 'not an int');
  }
  return v;
}

function checkRange(name: SysctlName, v: unknown, lo: number, hi: number): number {
  const n = checkInt(name, v);
  if (n < lo || n > hi) throw einval(name, `outside ${lo}..${hi}`);
  return n;
}

/** proc_dointvec_jiffies: seconds that fit in an int of jiffies. */
function checkJiffies(name: SysctlName, v: unknown): number {
  const n = checkInt(name, v);
  if (n > MAX_JIFFIES_SECONDS || n < -MAX_JIFFIES_SECONDS) throw einval(name, 'too large');
  return n;
}

/** A Linux cpulist ("0-3,8,10-11"); empty means no CPUs. */
function checkCpulist(name: SysctlName, v: unknown): string {
  if (typeof v !== 'string') throw einval(name, 'not a cpu list');
  const s = v.trim();
  if (s === '') return '';
  for (const part of s.split(',')) {
    const m = /^(\d+)(?:-(\d+)(?::(\d+)\/(\d+))?)?$/.exec(part);
    if (!m) throw einval(name, 'bad cpu list');
    if (m[2] !== undefined && Number(m[2]) < Number(m[1])) throw einval(name, 'bad cpu range');
  }
  return s;
}

/**
 * Validates a write like the kernel's handler for that entry and returns the
 * value to store. `current` matters for the handlers that only validate a
 * changed value (defense modes, sync_ports): rewriting the current value always succeeds.
 */
export function validateSysctl<K extends SysctlName>(name: K, value: unknown, current: Sysctls): Sysctls[K] {
  switch (name) {
    case 'drop_entry':
    case 'drop_packet':
    case 'secure_tcp': {
      const n = checkInt(name, value);
      if (n !== current[name] && (n < 0 || n > 3)) throw einval(name, 'outside 0..3');
      return n as Sysctls[K];
    }
    case 'sync_version':
      return checkRange(name, value, 0, 1) as Sysctls[K];
    case 'sync_retries':
      return checkRange(name, value, 0, 3) as Sysctls[K];
    case 'sync_ports': {
      const n = checkInt(name, value);
      // proc_do_sync_ports: a power of two >= 1 (clamped to 64 only when a daemon starts).
      if (n !== current.sync_ports && (n < 1 || (n & (n - 1)) !== 0)) throw einval(name, 'not a power of 2');
      return n as Sysctls[K];
    }
    case 'sync_threshold': {
      if (!Array.isArray(value) || value.length !== 2) throw einval(name, 'needs two ints');
      const t = checkInt(name, value[0]);
      const p = checkInt(name, value[1]);
      if (t < 0 || p < 0 || (t >= p && p !== 0)) throw einval(name, 'threshold must be below period');
      return [t, p] as Sysctls[K];
    }
    case 'sync_qlen_max': {
      // proc_doulongvec_minmax: any unsigned long.
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw einval(name, 'not an unsigned long');
      return value as Sysctls[K];
    }
    case 'sync_refresh_period':
    case 'lblc_expiration':
    case 'lblcr_expiration':
      return checkJiffies(name, value) as Sysctls[K];
    case 'est_nice':
      return checkRange(name, value, -20, 19) as Sysctls[K];
    case 'est_cpulist':
      return checkCpulist(name, value) as Sysctls[K];
    default:
      return checkInt(name, value) as Sysctls[K];
  }
}

/** Validates and stores one entry; throws CtlError('EINVAL') and leaves `s` unchanged on a bad value. */
export function setSysctl<K extends SysctlName>(s: Sysctls, name: K, value: unknown): void {
  if (!isSysctlName(name)) throw new CtlError('ENOENT', `unknown sysctl ${String(name)}`);
  s[name] = validateSysctl(name, value, s);
}

/** Estimation runs unless run_estimation is 0 or est_cpulist was set to an empty list (ip_vs_est_stopped_recalc). */
export function estimationStopped(s: Sysctls): boolean {
  return s.run_estimation === 0 || s.est_cpulist === '';
}
