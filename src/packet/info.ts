/**
 * The result of parsing one frame: offsets and decoded header fields.
 * One instance is allocated per engine and refilled for every frame
 * (packet/parse.ts `parseFrame`), so the hot path never allocates.
 * All multi-byte fields are host order numbers; addresses are uint32 words
 * (IPv4 in word 0 of the Uint32Array(4); IPv6 words most significant first).
 */
export class PacketInfo {
  /** Frame bounds in the buffer. */
  frameOff = 0;
  frameLen = 0;
  /** Offset of the EtherType field's successor: the L3 header. */
  l3Off = 0;
  /** Ethernet type after an optional 802.1Q tag (0x0800, 0x86dd, 0x0806, ...). */
  ethType = 0;
  /** 802.1Q TCI, or -1 when untagged. */
  vlanTci = -1;
  /** 4 or 6 for IP frames, 0 otherwise. */
  af: 0 | 4 | 6 = 0;
  /** IP header length (IPv4 IHL*4; IPv6: 40 + extension headers walked). */
  l3HdrLen = 0;
  /** IP total length from the header (IPv4 tot_len; IPv6 40 + payload_len). */
  ipLen = 0;
  /** Upper-layer protocol after IPv6 extension headers. */
  proto = 0;
  ttl = 0;
  /** IPv4 DF bit. */
  df = false;
  /** Fragment: offset in bytes and more-fragments flag (IPv4 header or IPv6 fragment header). */
  fragOff = 0;
  moreFrags = false;
  /** True when this is a fragment but not the first one (no L4 header present). */
  isLaterFrag = false;
  /** Offset of the IPv6 fragment header, or -1. */
  fragHdrOff = -1;
  saddr = new Uint32Array(4);
  daddr = new Uint32Array(4);
  /** L4 header offset (-1 when absent: later fragment or unknown). */
  l4Off = -1;
  /** Bytes available from l4Off to the end of the IP packet. */
  l4Len = 0;
  /** TCP/UDP/SCTP ports (0 when absent). */
  sport = 0;
  dport = 0;
  /** TCP flags byte (FIN=1 SYN=2 RST=4 PSH=8 ACK=16). */
  tcpFlags = 0;
  /** SCTP: first chunk type, or -1. */
  sctpChunk = -1;
  /** ICMP/ICMPv6 type and code, or -1. */
  icmpType = -1;
  icmpCode = -1;
  /** For ICMP errors: offset of the embedded IP header, or -1, and the embedded packet's decoded fields. */
  innerL3Off = -1;
  innerL3HdrLen = 0;
  innerProto = 0;
  innerSaddr = new Uint32Array(4);
  innerDaddr = new Uint32Array(4);
  innerL4Off = -1;
  /** Embedded ports; -1 when the embedded packet is too short to hold them. */
  innerSport = -1;
  innerDport = -1;
  /** ARP: opcode, sender/target protocol addresses (IPv4), offset of the ARP header. */
  arpOp = 0;
  arpSpa = 0;
  arpTpa = 0;
  /**
   * For a GSO super-frame (set by the engine from the I/O layer's metadata, never by the parser):
   * the IP length of each segment it stands for (headers + gso_size), which MTU checks use
   * instead of ipLen. 0 for ordinary packets.
   */
  gsoSegLen = 0;
}

/** Why a frame was not (fully) parsed. 0 = ok. Used as drop reasons too. */
export const PARSE_OK = 0;
export const PARSE_TRUNC_ETH = 1;
export const PARSE_TRUNC_VLAN = 2;
export const PARSE_BAD_IP_VERSION = 3;
export const PARSE_TRUNC_IP = 4;
export const PARSE_BAD_IHL = 5;
export const PARSE_BAD_IP_LEN = 6;
export const PARSE_TRUNC_L4 = 7;
export const PARSE_BAD_EXTHDR = 8;
export const PARSE_TRUNC_ARP = 9;
export const PARSE_NOT_IP = 10;
/** L4 header present but inconsistent (TCP data offset < 5 words or past the packet end). */
export const PARSE_BAD_L4 = 11;
export const PARSE_REASON_NAMES = [
  'ok', 'truncated-ethernet', 'truncated-vlan', 'bad-ip-version', 'truncated-ip', 'bad-ihl',
  'bad-ip-length', 'truncated-l4', 'bad-ipv6-exthdr', 'truncated-arp', 'not-ip', 'bad-l4-header',
] as const;
