/**
 * Why the engine did what it did with a frame. Drop reasons are counted per
 * reason (`Engine.reasonCount`); forward/pass/reply outcomes are recorded the same
 * way so `--trace` and the stats can explain every frame. Codes 1..10 are the
 * parser's (packet/info.ts PARSE_*), so a malformed frame keeps its parse reason.
 */
import { PARSE_REASON_NAMES } from '../packet/info.js';

export const R_OK = 0;
// 1..10: PARSE_* (malformed frames)
export const R_NOT_OURS = 11; // not for a virtual service and not a NAT reply: left to the kernel
export const R_ARP_REPLY = 12; // ARP request for a VIP answered
export const R_ARP_OTHER = 13; // ARP not for us
export const R_NO_NEIGHBOUR = 14; // next-hop MAC unknown
export const R_CONN_TABLE_FULL = 15;
export const R_NO_DEST = 16; // scheduler found no destination (ICMP port unreachable sent)
export const R_TCP_NOT_SYN = 17; // no connection and not a SYN (sloppy_tcp off)
export const R_SCTP_NOT_INIT = 18;
export const R_TTL_EXCEEDED = 19; // ICMP time exceeded sent
export const R_FRAG_NEEDED = 20; // ICMP fragmentation needed / packet too big sent
export const R_FRAGMENT_NO_CONN = 21; // later fragment whose first fragment was not seen
export const R_DEST_UNAVAILABLE = 22; // connection's real server deleted (expire_nodest_conn=0)
export const R_ICMP_UNRELATED = 23; // ICMP error matching no connection
export const R_NO_HEADROOM = 24; // cannot encapsulate: frame too big for the slot
export const R_PORT_ZERO = 25; // port-0 service without persistence
export const R_FTPDATA = 26; // never schedule active FTP data (source port 20)
export const R_PROTO_UNSUPPORTED = 27; // protocol IPVS does not schedule (not TCP/UDP/SCTP)
export const R_FWD_NAT_IN = 28;
export const R_FWD_NAT_OUT = 29;
export const R_FWD_DR = 30;
export const R_FWD_TUN = 31;
export const R_FWD_ICMP_IN = 32;
export const R_FWD_ICMP_OUT = 33;
export const R_BYPASS = 34; // cache_bypass: forwarded to its original destination
export const R_NO_SERVICE_ADDR = 35; // service without a scheduler ('none')
export const R_ICMP_ERROR_NO_SCHED = 36; // an ICMP error is never scheduled
export const R_TOO_BIG = 37; // frame larger than the egress MTU without DF: dropped (ulvs does not fragment)
export const R_LOOP = 38; // frame we sent ourselves
export const R_FRAG_TUNNELED = 39;
export const REASON_COUNT = 40;

const NAMES: string[] = [];
for (let i = 0; i < PARSE_REASON_NAMES.length; i++) NAMES[i] = PARSE_REASON_NAMES[i]!;
Object.assign(NAMES, {
  [R_NOT_OURS]: 'not-ours', [R_ARP_REPLY]: 'arp-reply', [R_ARP_OTHER]: 'arp-other',
  [R_NO_NEIGHBOUR]: 'no-neighbour', [R_CONN_TABLE_FULL]: 'conn-table-full', [R_NO_DEST]: 'no-destination',
  [R_TCP_NOT_SYN]: 'tcp-not-syn', [R_SCTP_NOT_INIT]: 'sctp-not-init', [R_TTL_EXCEEDED]: 'ttl-exceeded',
  [R_FRAG_NEEDED]: 'frag-needed', [R_FRAGMENT_NO_CONN]: 'fragment-no-conn',
  [R_DEST_UNAVAILABLE]: 'dest-unavailable', [R_ICMP_UNRELATED]: 'icmp-unrelated', [R_NO_HEADROOM]: 'no-headroom',
  [R_PORT_ZERO]: 'port-zero-not-persistent', [R_FTPDATA]: 'ftp-data', [R_PROTO_UNSUPPORTED]: 'protocol-unsupported',
  [R_FWD_NAT_IN]: 'nat-in', [R_FWD_NAT_OUT]: 'nat-out', [R_FWD_DR]: 'dr', [R_FWD_TUN]: 'tunnel',
  [R_FWD_ICMP_IN]: 'icmp-in', [R_FWD_ICMP_OUT]: 'icmp-out', [R_BYPASS]: 'bypass',
  [R_NO_SERVICE_ADDR]: 'no-scheduler', [R_ICMP_ERROR_NO_SCHED]: 'icmp-error-not-scheduled',
  [R_TOO_BIG]: 'too-big', [R_LOOP]: 'own-frame', [R_FRAG_TUNNELED]: 'fragment-tunneled',
});
export const REASON_NAMES: readonly string[] = NAMES;

export function reasonName(code: number): string {
  return NAMES[code] ?? `reason-${code}`;
}
