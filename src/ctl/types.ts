/**
 * The control protocol's data types: what libipvs passes to and from the
 * kernel (ipvs_service_t, ipvs_dest_t, ipvs_service_entry_t, ipvs_dest_entry_t,
 * ipvs_timeout_t, ipvs_daemon_t, ipvs_info_t). Plain JSON-able records: they
 * cross the daemon socket, feed the ipvsadm formatter and the save writer.
 * Addresses travel as text (inet_ntop form) so JSON stays readable.
 */

/** Identifies a virtual service: either (protocol, addr, port) or fwmark (+ af). */
export interface ServiceKey {
  af: 4 | 6;
  /** 6, 17, 132; 0 for fwmark services. */
  protocol: number;
  addr: string;
  port: number;
  fwmark: number;
}

/** add/edit service arguments (ipvs_service_t). */
export interface ServiceSpec extends ServiceKey {
  schedName: string;
  /** SVC_F_* flags: PERSISTENT, ONEPACKET, SCHED1..3. */
  flags: number;
  /** Persistence timeout, seconds. */
  timeout: number;
  /** IPv4: dotted mask text; IPv6: prefix length as decimal text. */
  netmask: string;
  pe: string;
}

/** add/edit/delete dest arguments (ipvs_dest_t). */
export interface DestSpec {
  af: 4 | 6;
  addr: string;
  port: number;
  fwdMethod: number;
  weight: number;
  uThreshold: number;
  lThreshold: number;
  tunType: number;
  tunPort: number;
  tunFlags: number;
}

export interface StatsEntry {
  conns: number;
  inpkts: number;
  outpkts: number;
  inbytes: number;
  outbytes: number;
  cps: number;
  inpps: number;
  outpps: number;
  inbps: number;
  outbps: number;
}

export interface DestEntry extends DestSpec {
  activeConns: number;
  inactConns: number;
  persistConns: number;
  stats: StatsEntry;
}

export interface ServiceEntry extends ServiceSpec {
  numDests: number;
  stats: StatsEntry;
  /** Kernel list order: newest first. */
  dests: DestEntry[];
}

export interface ConnEntry {
  /** Protocol text as /proc/net/ip_vs_conn prints it: TCP, UDP, SCTP, IP (fwmark templates), IP_<n>. */
  protoName: string;
  af: 4 | 6;
  caddr: string;
  cport: number;
  vaddr: string;
  vport: number;
  daddr: string;
  dport: number;
  /** State name as the kernel prints it (ESTABLISHED, SYN_RECV, NONE, ASSURED, ...). */
  state: string;
  /** Remaining seconds until expiry. */
  expires: number;
  peName: string;
  peData: string;
}

export interface Timeouts {
  tcp: number;
  tcpFin: number;
  udp: number;
}

export interface SyncDaemon {
  state: 'master' | 'backup';
  mcastIfn: string;
  syncId: number;
  syncMaxlen: number;
  mcastGroup: string;
  mcastPort: number;
  mcastTtl: number;
}

export interface Info {
  /** 0x010201 for 1.2.1 */
  version: number;
  /** Connection hash table size shown in the banner. */
  connTabSize: number;
  numServices: number;
}

/**
 * Errors are reported as errno names; the ipvsadm layer maps (operation, errno)
 * to ipvs_strerror text exactly like libipvs.
 */
export type Errno = 'EPERM' | 'EEXIST' | 'ESRCH' | 'ENOENT' | 'EINVAL' | 'ERANGE' | 'ENOMEM' |
  'EBUSY' | 'ENODEV' | 'EOPNOTSUPP' | 'EAFNOSUPPORT' | 'ENOPROTOOPT' | 'EMSGSIZE' | 'ENOSYS';

export class CtlError extends Error {
  constructor(readonly errno: Errno, message?: string) {
    super(message ?? errno);
  }
}
