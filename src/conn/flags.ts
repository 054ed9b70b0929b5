/**
 * Connection flags, directions and state numbers exactly as the kernel defines
 * them (include/uapi/linux/ip_vs.h IP_VS_CONN_F_*, include/net/ip_vs.h
 * IP_VS_DIR_*, IP_VS_*_S_*, IP_VS_CTPL_S_*). Only bits 0..15 travel in sync
 * messages; NFCT (bit 16) is local.
 */

// Forwarding method: the low three bits (IP_VS_CONN_F_FWD_MASK).
export const CONN_F_FWD_MASK = 0x0007;
export const CONN_F_MASQ = 0x0000;
export const CONN_F_LOCALNODE = 0x0001;
export const CONN_F_TUNNEL = 0x0002;
export const CONN_F_DROUTE = 0x0003;
export const CONN_F_BYPASS = 0x0004;

export const CONN_F_SYNC = 0x0020;
export const CONN_F_HASHED = 0x0040;
export const CONN_F_NOOUTPUT = 0x0080;
export const CONN_F_INACTIVE = 0x0100;
export const CONN_F_OUT_SEQ = 0x0200;
export const CONN_F_IN_SEQ = 0x0400;
export const CONN_F_SEQ_MASK = 0x0600;
export const CONN_F_NO_CPORT = 0x0800;
export const CONN_F_TEMPLATE = 0x1000;
export const CONN_F_ONE_PACKET = 0x2000;

/** Initial bits a backup accepts from a sync message (IP_VS_CONN_F_BACKUP_MASK). */
export const CONN_F_BACKUP_MASK =
  CONN_F_FWD_MASK | CONN_F_NOOUTPUT | CONN_F_INACTIVE | CONN_F_SEQ_MASK | CONN_F_NO_CPORT | CONN_F_TEMPLATE;
/** Bits a backup updates on an existing conn (IP_VS_CONN_F_BACKUP_UPD_MASK). */
export const CONN_F_BACKUP_UPD_MASK = CONN_F_INACTIVE | CONN_F_SEQ_MASK;

/** Keep netfilter conntrack (not sent to backups). */
export const CONN_F_NFCT = 1 << 16;

/** Connection flags a dest may carry that user space can change (IP_VS_CONN_F_DEST_MASK). */
export const CONN_F_DEST_MASK = CONN_F_FWD_MASK | CONN_F_ONE_PACKET | CONN_F_NFCT;

// Tunnel types (IP_VS_CONN_F_TUNNEL_TYPE_*): a dest attribute, not conn flag bits.
export const CONN_F_TUNNEL_TYPE_IPIP = 0;
export const CONN_F_TUNNEL_TYPE_GUE = 1;
export const CONN_F_TUNNEL_TYPE_GRE = 2;
export const CONN_F_TUNNEL_TYPE_MAX = 3;

// Packet directions (IP_VS_DIR_*).
export const DIR_INPUT = 0;
export const DIR_OUTPUT = 1;
export const DIR_INPUT_ONLY = 2;

// Template "states" are bits (IP_VS_CTPL_S_*).
export const CTPL_S_NONE = 0x0000;
export const CTPL_S_ASSURED = 0x0001;

// TCP states (IP_VS_TCP_S_*).
export const TCP_S_NONE = 0;
export const TCP_S_ESTABLISHED = 1;
export const TCP_S_SYN_SENT = 2;
export const TCP_S_SYN_RECV = 3;
export const TCP_S_FIN_WAIT = 4;
export const TCP_S_TIME_WAIT = 5;
export const TCP_S_CLOSE = 6;
export const TCP_S_CLOSE_WAIT = 7;
export const TCP_S_LAST_ACK = 8;
export const TCP_S_LISTEN = 9;
export const TCP_S_SYNACK = 10;
export const TCP_S_LAST = 11;

// UDP has one state (IP_VS_UDP_S_NORMAL).
export const UDP_S_NORMAL = 0;
export const UDP_S_LAST = 1;

// SCTP states (IP_VS_SCTP_S_*).
export const SCTP_S_NONE = 0;
export const SCTP_S_INIT1 = 1;
export const SCTP_S_INIT = 2;
export const SCTP_S_COOKIE_SENT = 3;
export const SCTP_S_COOKIE_REPLIED = 4;
export const SCTP_S_COOKIE_WAIT = 5;
export const SCTP_S_COOKIE = 6;
export const SCTP_S_COOKIE_ECHOED = 7;
export const SCTP_S_ESTABLISHED = 8;
export const SCTP_S_SHUTDOWN_SENT = 9;
export const SCTP_S_SHUTDOWN_RECEIVED = 10;
export const SCTP_S_SHUTDOWN_ACK_SENT = 11;
export const SCTP_S_REJECTED = 12;
export const SCTP_S_CLOSED = 13;
export const SCTP_S_LAST = 14;

// TCP header flag bits as they appear in the flags byte (PacketInfo.tcpFlags).
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

/** The forwarding method of a flags word. */
export function fwdMethod(flags: number): number {
  return flags & CONN_F_FWD_MASK;
}

/** ip_vs_fwd_tag: the one-letter method tag the kernel uses in debug output. */
export function fwdTag(flags: number): string {
  switch (flags & CONN_F_FWD_MASK) {
    case CONN_F_LOCALNODE: return 'L';
    case CONN_F_TUNNEL: return 'T';
    case CONN_F_DROUTE: return 'R';
    case CONN_F_MASQ: return 'M';
    case CONN_F_BYPASS: return 'B';
    default: return '?';
  }
}
