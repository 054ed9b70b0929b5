/**
 * Why the engine did what it did with a frame. Drop reasons are counted per
 * reason (`Engine.reasonCount`); forward/pass/reply outcomes are recorded the same
 * way so `--trace` and the stats can explain every frame. Codes 1..11 are the
 * parser's (packet/info.ts PARSE_*), so a malformed frame keeps its parse reason;
 * the engine's own codes start after them (checked below).
 */
import { PARSE_REASON_NAMES } from '../packet/info.js';

export const R_OK = 0;
// 1..11: PARSE_* (malformed frames)
export const R_NOT_OURS = 12; // not for a virtual service and not a NAT reply: left to the kernel
export const R_ARP_REPLY = 13; // ARP request for a VIP answered
export const R_ARP_OTHER = 14; // ARP not for us
export const R_NO_NEIGHBOUR = 15; // next-hop MAC unknown
export const R_CONN_TABLE_FULL = 16;
export const R_NO_DEST = 17; // scheduler found no destination (ICMP port unreachable sent)
export const R_TCP_NOT_SYN = 18; // no connection and not a SYN (sloppy_tcp off)
export const R_SCTP_NOT_INIT = 19;
export const R_TTL_EXCEEDED = 20; // ICMP time exceeded sent
export const R_FRAG_NEEDED = 21; // ICMP fragmentation needed / packet too big sent
export const R_FRAGMENT_NO_CONN = 22; // later fragment whose first fragment was not seen
export const R_DEST_UNAVAILABLE = 23; // connection's real server deleted (expire_nodest_conn=0)
export const R_ICMP_UNRELATED = 24; // ICMP error matching no connection
export const R_NO_HEADROOM = 25; // cannot encapsulate: not enough headroom in front of the frame
export const R_PORT_ZERO = 26; // port-0 service without persistence
export const R_FTPDATA = 27; // never schedule active FTP data (source port 20)
export const R_PROTO_UNSUPPORTED = 28; // protocol IPVS does not schedule (not TCP/UDP/SCTP)
export const R_FWD_NAT_IN = 29;
export const R_FWD_NAT_OUT = 30;
export const R_FWD_DR = 31;
export const R_FWD_TUN = 32;
export const R_FWD_ICMP_IN = 33;
export const R_FWD_ICMP_OUT = 34;
export const R_BYPASS = 35; // cache_bypass: forwarded to its original destination
export const R_NO_SERVICE_ADDR = 36; // service without a scheduler ('none')
export const R_ICMP_ERROR_NO_SCHED = 37; // an ICMP error is never scheduled
export const R_TOO_BIG = 38; // frame larger than the egress MTU without DF: dropped (ulvs does not fragment)
export const R_LOOP = 39; // frame we sent ourselves
export const R_FRAG_TUNNELED = 40;
export const R_OVERSIZE = 41; // frame larger than any batch slot (replay input)
export const R_CANNOT_REWRITE = 42; // NAT cannot rewrite the packet (L4 header cut short, SCTP fragment needing a new CRC)
export const R_NO_SOURCE_ADDR = 43; // IPv6 tunnel or error message needed, but the director has no IPv6 address
export const R_ND_REPLY = 44; // Neighbor Solicitation for an IPv6 VIP answered
export const R_ND_OTHER = 45; // NDP not for us (left to the kernel)
export const REASON_COUNT = 46;

// The parser's codes double as drop reasons: they must not run into the engine's.
if (PARSE_REASON_NAMES.length > R_NOT_OURS) throw new Error('reasons.ts: PARSE_* codes overlap the engine reason codes');

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
  [R_OVERSIZE]: 'oversize', [R_CANNOT_REWRITE]: 'cannot-rewrite', [R_NO_SOURCE_ADDR]: 'no-source-address',
  [R_ND_REPLY]: 'nd-reply', [R_ND_OTHER]: 'nd-other',
});
export const REASON_NAMES: readonly string[] = NAMES;

export function reasonName(code: number): string {
  return NAMES[code] ?? `reason-${code}`;
}
