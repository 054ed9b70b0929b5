/**
 * Per-protocol, per-state connection timeouts in seconds (the kernel's
 * tcp_timeouts / udp_timeouts / sctp_timeouts tables, which it keeps in
 * jiffies) and the three values `ipvsadm --set tcp tcpfin udp` changes.
 *
 * One mutable `Timeouts` store per director; the state machines read the
 * arrays on every transition, so a `--set` applies to the next packet of
 * every connection (as in the kernel, existing timers are not re-armed).
 *
 * No other protocol has a table in current kernels: ICMP is only handled as
 * errors related to existing connections (ip_vs_in_icmp) and AH/ESP reuse
 * the UDP/500 (ISAKMP) connection, so neither ever owns a connection entry.
 */
import {
  SCTP_S_CLOSED, SCTP_S_COOKIE, SCTP_S_COOKIE_ECHOED, SCTP_S_COOKIE_REPLIED, SCTP_S_COOKIE_SENT,
  SCTP_S_COOKIE_WAIT, SCTP_S_ESTABLISHED, SCTP_S_INIT, SCTP_S_INIT1, SCTP_S_LAST, SCTP_S_NONE,
  SCTP_S_REJECTED, SCTP_S_SHUTDOWN_ACK_SENT, SCTP_S_SHUTDOWN_RECEIVED, SCTP_S_SHUTDOWN_SENT,
  TCP_S_CLOSE, TCP_S_CLOSE_WAIT, TCP_S_ESTABLISHED, TCP_S_FIN_WAIT, TCP_S_LAST, TCP_S_LAST_ACK,
  TCP_S_LISTEN, TCP_S_NONE, TCP_S_SYNACK, TCP_S_SYN_RECV, TCP_S_SYN_SENT, TCP_S_TIME_WAIT,
  UDP_S_LAST, UDP_S_NORMAL,
} from './flags.js';
import type { Timeouts as UserTimeouts } from '../ctl/types.js';

/** Timeout of a new entry until its first state transition (ip_vs_conn_new: 3*HZ). */
export const NEW_CONN_TIMEOUT = 3;
/** How long an expiring entry that still controls others is kept (ip_vs_conn_expire: 60*HZ). */
export const CONTROL_POSTPONE = 60;

/** IP_VS_SCTP_MAX_RTO = (60 + 1) s. */
const SCTP_MAX_RTO = 61;

function tcpDefaults(): Uint32Array {
  const t = new Uint32Array(TCP_S_LAST);
  t[TCP_S_NONE] = 2;
  t[TCP_S_ESTABLISHED] = 15 * 60;
  t[TCP_S_SYN_SENT] = 2 * 60;
  t[TCP_S_SYN_RECV] = 60;
  t[TCP_S_FIN_WAIT] = 2 * 60;
  t[TCP_S_TIME_WAIT] = 2 * 60;
  t[TCP_S_CLOSE] = 10;
  t[TCP_S_CLOSE_WAIT] = 60;
  t[TCP_S_LAST_ACK] = 30;
  t[TCP_S_LISTEN] = 2 * 60;
  t[TCP_S_SYNACK] = 120;
  return t;
}

function udpDefaults(): Uint32Array {
  const t = new Uint32Array(UDP_S_LAST);
  t[UDP_S_NORMAL] = 5 * 60;
  return t;
}

function sctpDefaults(): Uint32Array {
  const t = new Uint32Array(SCTP_S_LAST);
  t[SCTP_S_NONE] = 2;
  t[SCTP_S_INIT1] = 0 + 3 + 1;
  t[SCTP_S_INIT] = SCTP_MAX_RTO;
  t[SCTP_S_COOKIE_SENT] = SCTP_MAX_RTO;
  t[SCTP_S_COOKIE_REPLIED] = SCTP_MAX_RTO;
  t[SCTP_S_COOKIE_WAIT] = SCTP_MAX_RTO;
  t[SCTP_S_COOKIE] = SCTP_MAX_RTO;
  t[SCTP_S_COOKIE_ECHOED] = SCTP_MAX_RTO;
  t[SCTP_S_ESTABLISHED] = 15 * 60;
  t[SCTP_S_SHUTDOWN_SENT] = SCTP_MAX_RTO;
  t[SCTP_S_SHUTDOWN_RECEIVED] = SCTP_MAX_RTO;
  t[SCTP_S_SHUTDOWN_ACK_SENT] = SCTP_MAX_RTO;
  t[SCTP_S_REJECTED] = 0 + 3 + 1;
  t[SCTP_S_CLOSED] = SCTP_MAX_RTO;
  return t;
}

/** Default tables, for listings and tests; never mutated. */
export const DEFAULT_TCP_TIMEOUTS: Readonly<Uint32Array> = tcpDefaults();
export const DEFAULT_UDP_TIMEOUTS: Readonly<Uint32Array> = udpDefaults();
export const DEFAULT_SCTP_TIMEOUTS: Readonly<Uint32Array> = sctpDefaults();

/** The three user-settable timeouts (struct ip_vs_timeout_user), seconds. */
export type { Timeouts as UserTimeouts } from '../ctl/types.js';

/**
 * The kernel rejects a value above INT_MAX / HZ (it stores jiffies in an int).
 * HZ is a kernel build option; 250 is what Debian/Ubuntu generic kernels use.
 */
export const KERNEL_HZ = 250;
export const MAX_USER_TIMEOUT = Math.floor(0x7fffffff / KERNEL_HZ);

export class Timeouts {
  /** Seconds per TCP state (index TCP_S_*). */
  readonly tcp: Uint32Array = tcpDefaults();
  /** Seconds per UDP state (one state). */
  readonly udp: Uint32Array = udpDefaults();
  /** Seconds per SCTP state (index SCTP_S_*). */
  readonly sctp: Uint32Array = sctpDefaults();

  /**
   * ip_vs_set_timeout: 0 keeps the current value; a negative value or one above
   * MAX_USER_TIMEOUT rejects the whole request (EINVAL) and changes nothing.
   * Returns false on EINVAL.
   */
  setUser(tcp: number, tcpFin: number, udp: number): boolean {
    const bad = (v: number) => !Number.isInteger(v) || v < 0 || v > MAX_USER_TIMEOUT;
    if (bad(tcp) || bad(tcpFin) || bad(udp)) return false;
    if (tcp) this.tcp[TCP_S_ESTABLISHED] = tcp;
    if (tcpFin) this.tcp[TCP_S_FIN_WAIT] = tcpFin;
    if (udp) this.udp[UDP_S_NORMAL] = udp;
    return true;
  }

  /** __ip_vs_get_timeouts: what `ipvsadm -L --timeout` prints. */
  getUser(): UserTimeouts {
    return { tcp: this.tcp[TCP_S_ESTABLISHED]!, tcpFin: this.tcp[TCP_S_FIN_WAIT]!, udp: this.udp[UDP_S_NORMAL]! };
  }

  /** Back to the kernel defaults (a fresh netns). */
  reset(): void {
    this.tcp.set(DEFAULT_TCP_TIMEOUTS);
    this.udp.set(DEFAULT_UDP_TIMEOUTS);
    this.sctp.set(DEFAULT_SCTP_TIMEOUTS);
  }
}
