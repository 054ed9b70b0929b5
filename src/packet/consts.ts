/**
 * Wire constants shared by the packet layer and its users: EtherTypes (`ETH_P_*`), IP protocol
 * numbers (`IPPROTO_*`), IPv6 extension header numbers (`NEXTHDR_*`), TCP flag bits (`TCP_*`),
 * ICMP/ICMPv6 types used by IPVS, SCTP chunk types (`SCTP_CID_*`), header sizes (`*_HLEN`) and
 * the AF_PACKET status bit that marks a partial checksum.
 */

export const ETH_HLEN = 14;
export const VLAN_HLEN = 4;
export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_IPV6 = 0x86dd;

export const IPV4_HLEN = 20;
export const IPV6_HLEN = 40;
export const ARP_HLEN = 28;
export const TCP_HLEN = 20;
export const UDP_HLEN = 8;
export const SCTP_HLEN = 12;
export const ICMP_HLEN = 8;

export const IPPROTO_IPIP = 4;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_GRE = 47;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;

export const NEXTHDR_HOP = 0;
export const NEXTHDR_ROUTING = 43;
export const NEXTHDR_FRAGMENT = 44;
export const NEXTHDR_ESP = 50;
export const NEXTHDR_AUTH = 51;
export const NEXTHDR_NONE = 59;
export const NEXTHDR_DEST = 60;

/** IPv4 flags/fragment-offset field bits. */
export const IP_DF = 0x4000;
export const IP_MF = 0x2000;
export const IP_OFFMASK = 0x1fff;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export const ICMP_ECHOREPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAMETERPROB = 12;
/** Code of ICMP_DEST_UNREACH: fragmentation needed and DF set. */
export const ICMP_FRAG_NEEDED = 4;
export const ICMP_PORT_UNREACH = 3;

export const ICMPV6_DEST_UNREACH = 1;
export const ICMPV6_PKT_TOOBIG = 2;
export const ICMPV6_TIME_EXCEED = 3;
export const ICMPV6_PARAMPROB = 4;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const ICMPV6_NDISC_NS = 135;
export const ICMPV6_NDISC_NA = 136;

export const SCTP_CID_DATA = 0;
export const SCTP_CID_INIT = 1;
export const SCTP_CID_INIT_ACK = 2;
export const SCTP_CID_SACK = 3;
export const SCTP_CID_HEARTBEAT = 4;
export const SCTP_CID_HEARTBEAT_ACK = 5;
export const SCTP_CID_ABORT = 6;
export const SCTP_CID_SHUTDOWN = 7;
export const SCTP_CID_SHUTDOWN_ACK = 8;
export const SCTP_CID_ERROR = 9;
export const SCTP_CID_COOKIE_ECHO = 10;
export const SCTP_CID_COOKIE_ACK = 11;
export const SCTP_CID_SHUTDOWN_COMPLETE = 14;

export const ARPOP_REQUEST = 1;
export const ARPOP_REPLY = 2;

/** tpacket_hdr tp_status bit: the frame carries a partial (pseudo-header only) L4 checksum. */
export const TP_STATUS_CSUMNOTREADY = 1 << 3;
