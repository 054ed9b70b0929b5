/**
 * Names the kernel prints in /proc/net/ip_vs_conn (and ipvsadm -Lc copies):
 * protocol names (ip_vs_proto_name) and state names (ip_vs_state_name with
 * the per-protocol state_name tables). Listing-only code: strings are fine here.
 */
import { CONN_F_TEMPLATE, SCTP_S_LAST, TCP_S_LAST, UDP_S_LAST } from './flags.js';

export const TCP_STATE_NAMES: readonly string[] = [
  'NONE', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT',
  'LAST_ACK', 'LISTEN', 'SYNACK',
];

export const UDP_STATE_NAMES: readonly string[] = ['UDP'];

// The kernel prints abbreviated SCTP names (C- for COOKIE_, S- for SHUTDOWN_).
export const SCTP_STATE_NAMES: readonly string[] = [
  'NONE', 'INIT1', 'INIT', 'C-SENT', 'C-REPLIED', 'C-WAIT', 'COOKIE', 'C-ECHOED', 'ESTABLISHED',
  'S-SENT', 'S-RECEIVED', 'S-ACK-SENT', 'REJECTED', 'CLOSED',
];

/** Templates keep bit flags in `state` (IP_VS_CTPL_S_*): 0 NONE, 1 ASSURED. */
export const TEMPLATE_STATE_NAMES: readonly string[] = ['NONE', 'ASSURED'];

export function tcpStateName(state: number): string {
  return state >= TCP_S_LAST ? 'ERR!' : TCP_STATE_NAMES[state]!;
}

export function udpStateName(state: number): string {
  return state >= UDP_S_LAST ? 'ERR!' : UDP_STATE_NAMES[state]!;
}

export function sctpStateName(state: number): string {
  return state >= SCTP_S_LAST ? 'ERR!' : SCTP_STATE_NAMES[state]!;
}

/** ip_vs_state_name(cp). */
export function stateNameOf(protocol: number, flags: number, state: number): string {
  if (flags & CONN_F_TEMPLATE) return state >= TEMPLATE_STATE_NAMES.length ? 'ERR!' : TEMPLATE_STATE_NAMES[state]!;
  switch (protocol) {
    case 6: return tcpStateName(state);
    case 17: return udpStateName(state);
    case 132: return sctpStateName(state);
    // No protocol module (IPPROTO_IP): NONE; a module without names (AH, ESP) or none at all: ERR!.
    case 0: return 'NONE';
    default: return 'ERR!';
  }
}

/** ip_vs_proto_name: TCP, UDP, SCTP, ICMP, ICMPv6, IP (fwmark templates), else IP_<n>. */
export function protoName(protocol: number): string {
  switch (protocol) {
    case 0: return 'IP';
    case 17: return 'UDP';
    case 6: return 'TCP';
    case 132: return 'SCTP';
    case 1: return 'ICMP';
    case 58: return 'ICMPv6';
    default: return `IP_${protocol}`;
  }
}
