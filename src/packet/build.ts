/**
 * Frame builders for tests, fixtures and the lab (they allocate; never use them per packet).
 * Every builder takes an options object (`FrameOptions` plus protocol fields) and returns a new
 * Ethernet frame as a Uint8Array with correct IPv4 header and L4 checksums unless asked otherwise:
 * `buildTcp`, `buildUdp`, `buildSctp` (named chunks 'init', 'init-ack', 'data', 'sack',
 * 'heartbeat', 'abort', 'shutdown', 'shutdown-ack', 'cookie-echo', 'cookie-ack',
 * 'shutdown-complete', or raw `chunks`), `buildIcmpEcho`, `buildIcmp` (any type/code/body),
 * `buildIcmpError` (quotes a given IP packet: see `ipPacketOf`; `mtu` for frag-needed / packet
 * too big), `buildArp`, `buildUdpFragments` and `fragmentFrame` (IPv4 fragments, or IPv6 with a
 * fragment header), and `buildIpFrame` for any protocol number with a ready L4 payload.
 * The family comes from the address text (`saddr`/`daddr`, parsed with util/ip.ts parseIp) or
 * `family`; defaults are 02:00:00:00:00:01 -> 02:00:00:00:00:02, 10.0.0.1 -> 10.0.0.2
 * (2001:db8::1 -> 2001:db8::2), ports 12345 -> 80, TTL 64, TCP flags SYN. `l4Checksum: 'partial'`
 * writes what an offloading sender leaves (TCP/UDP: the folded pseudo-header sum; SCTP: zero;
 * ICMP: ignored, valid); 'bad' writes a checksum that is always wrong, 'zero' writes 0.
 * Misuse (bad address text, oversize packets) throws.
 */
import { parseIp } from '../util/ip.js';
import { parseMac } from '../util/mac.js';
import { rd16, wr16, wr32 } from './bytes.js';
import { l4CsumOffset, setIpv4HeaderChecksum, setL4Checksum, setPartialL4Checksum } from './checksum.js';
import {
  ETH_P_8021Q, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, ICMPV6_PKT_TOOBIG,
  ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_ECHOREPLY, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP,
  IPPROTO_UDP, IP_DF, IP_MF, IP_OFFMASK, NEXTHDR_AUTH, NEXTHDR_FRAGMENT, NEXTHDR_HOP,
  NEXTHDR_ROUTING, TCP_SYN,
} from './consts.js';
import { sctpChecksumSet } from './crc32c.js';

export type L4ChecksumMode = 'valid' | 'partial' | 'bad' | 'zero';

/** One IPv6 extension header. `len` is its total size in bytes (multiple of 8; AH: of 4, >= 12). */
export type Ipv6ExtSpec =
  | { type: 0 | 43 | 60 | 51; len?: number }
  | { type: 44; fragOff?: number; more?: boolean; id?: number };

export interface FrameOptions {
  srcMac?: string | Uint8Array;
  dstMac?: string | Uint8Array;
  /** 802.1Q TCI (priority/DEI/VLAN id); untagged when absent. */
  vlan?: number;
  /** Picks the default addresses when neither saddr nor daddr is given. */
  family?: 4 | 6;
  saddr?: string;
  daddr?: string;
  /** TTL / hop limit. */
  ttl?: number;
  /** IPv4 TOS / IPv6 traffic class. */
  tos?: number;
  df?: boolean;
  /** IPv4 identification. */
  ipId?: number;
  flowLabel?: number;
  /** IPv4 options, zero-padded to a multiple of 4 bytes (at most 40). */
  ipOptions?: Uint8Array;
  /** IPv6 extension headers, in order, between the fixed header and L4. */
  ipv6Ext?: Ipv6ExtSpec[];
  ipChecksum?: 'valid' | 'bad';
  l4Checksum?: L4ChecksumMode;
  sport?: number;
  dport?: number;
  payload?: Uint8Array | string;
  /** Pads the frame with zero bytes to this length (Ethernet minimum is 60 without FCS). */
  padTo?: number;
}

export interface TcpOptions extends FrameOptions {
  flags?: number;
  seq?: number;
  ack?: number;
  window?: number;
  urgent?: number;
  /** TCP options, padded with EOL (0) to a multiple of 4 bytes. */
  tcpOptions?: Uint8Array;
}

export type SctpChunkName =
  | 'data' | 'init' | 'init-ack' | 'sack' | 'heartbeat' | 'heartbeat-ack' | 'abort' | 'shutdown'
  | 'shutdown-ack' | 'error' | 'cookie-echo' | 'cookie-ack' | 'shutdown-complete';

export interface SctpChunkSpec {
  type: number;
  flags?: number;
  body?: Uint8Array;
}

export interface SctpOptions extends FrameOptions {
  /** First (only) chunk, by name or type number; default 'init'. Ignored when `chunks` is given. */
  chunk?: SctpChunkName | number;
  chunkFlags?: number;
  /** Replaces the default body of `chunk`. */
  chunkBody?: Uint8Array;
  /** Explicit chunk list (each padded to 4 bytes). */
  chunks?: SctpChunkSpec[];
  /** Verification tag of the common header; default 0 for INIT, else 0x01020304. */
  vtag?: number;
  /** Initiate tag of INIT / INIT-ACK; default 0x0a0b0c0d. */
  initTag?: number;
  /** TSN of DATA, initial TSN of INIT, cumulative TSN of SACK / SHUTDOWN; default 1. */
  tsn?: number;
}

export interface IcmpOptions extends FrameOptions {
  icmpType: number;
  icmpCode?: number;
  /** Bytes 4..7 of the ICMP header (echo id/seq, MTU, pointer ...). */
  rest?: number;
  body?: Uint8Array;
}

export interface IcmpEchoOptions extends FrameOptions {
  reply?: boolean;
  echoId?: number;
  echoSeq?: number;
}

export interface IcmpErrorOptions extends FrameOptions {
  /** The offending IP packet (from its IP header on), e.g. `ipPacketOf(frame)`. */
  original: Uint8Array;
  icmpType: number;
  icmpCode?: number;
  /** Next-hop MTU (ICMP frag-needed, bytes 6..7) or MTU (ICMPv6 packet too big, bytes 4..7). */
  mtu?: number;
  /** Raw bytes 4..7 of the ICMP header; overrides `mtu`. */
  rest?: number;
  /** Most bytes of `original` to quote; default as Linux: 576 (IPv4) / 1280 (IPv6) minus headers. */
  quoteLimit?: number;
}

export interface ArpOptions {
  op?: 'request' | 'reply' | number;
  srcMac?: string | Uint8Array;
  /** Ethernet destination; default broadcast for requests, targetMac for replies. */
  dstMac?: string | Uint8Array;
  vlan?: number;
  senderMac?: string | Uint8Array;
  senderIp?: string;
  /** Default 00:00:00:00:00:00 for requests, 02:00:00:00:00:02 for replies. */
  targetMac?: string | Uint8Array;
  targetIp?: string;
  padTo?: number;
}

const DEFAULT_SRC_MAC = '02:00:00:00:00:01';
const DEFAULT_DST_MAC = '02:00:00:00:00:02';
const enc = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// small helpers

function mac(m: string | Uint8Array | undefined, dflt: string): Uint8Array {
  if (m instanceof Uint8Array) {
    if (m.length !== 6) throw new Error('MAC address must be 6 bytes');
    return m;
  }
  const p = parseMac(m ?? dflt);
  if (p === null) throw new Error(`bad MAC address: ${m}`);
  return p;
}

function bytesOf(p: Uint8Array | string | undefined): Uint8Array {
  if (p === undefined) return new Uint8Array(0);
  return typeof p === 'string' ? enc.encode(p) : p;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function pad4(b: Uint8Array): Uint8Array {
  const n = (b.length + 3) & ~3;
  if (n === b.length) return b;
  const out = new Uint8Array(n);
  out.set(b);
  return out;
}

interface Addrs {
  af: 4 | 6;
  s: Uint32Array;
  d: Uint32Array;
}

function addrWords(text: string): { af: 4 | 6; w: Uint32Array } {
  const a = parseIp(text);
  if (a === null) throw new Error(`bad IP address: ${text}`);
  return { af: a.af, w: Uint32Array.of(a.w0, a.w1, a.w2, a.w3) };
}

function resolveAddrs(o: FrameOptions): Addrs {
  const fam = o.saddr !== undefined ? addrWords(o.saddr).af : o.daddr !== undefined ? addrWords(o.daddr).af : (o.family ?? 4);
  const s = addrWords(o.saddr ?? (fam === 4 ? '10.0.0.1' : '2001:db8::1'));
  const d = addrWords(o.daddr ?? (fam === 4 ? '10.0.0.2' : '2001:db8::2'));
  if (s.af !== d.af) throw new Error('saddr and daddr are of different families');
  return { af: s.af, s: s.w, d: d.w };
}

function ethHeader(src: Uint8Array, dst: Uint8Array, vlan: number | undefined, ethType: number): Uint8Array {
  const h = new Uint8Array(vlan === undefined ? 14 : 18);
  h.set(dst, 0);
  h.set(src, 6);
  if (vlan === undefined) {
    wr16(h, 12, ethType);
  } else {
    wr16(h, 12, ETH_P_8021Q);
    wr16(h, 14, vlan);
    wr16(h, 16, ethType);
  }
  return h;
}

function padFrame(f: Uint8Array, padTo: number | undefined): Uint8Array {
  if (padTo === undefined || f.length >= padTo) return f;
  const out = new Uint8Array(padTo);
  out.set(f);
  return out;
}

function ipv4Header(o: FrameOptions, a: Addrs, proto: number, payloadLen: number): Uint8Array {
  const opts = pad4(o.ipOptions ?? new Uint8Array(0));
  if (opts.length > 40) throw new Error('IPv4 options longer than 40 bytes');
  const hl = 20 + opts.length;
  if (hl + payloadLen > 0xffff) throw new Error('IPv4 packet longer than 65535 bytes');
  const h = new Uint8Array(hl);
  h[0] = 0x40 | (hl >>> 2);
  h[1] = o.tos ?? 0;
  wr16(h, 2, hl + payloadLen);
  wr16(h, 4, o.ipId ?? 0x1234);
  wr16(h, 6, o.df ? IP_DF : 0);
  h[8] = o.ttl ?? 64;
  h[9] = proto;
  wr32(h, 12, a.s[0]!);
  wr32(h, 16, a.d[0]!);
  h.set(opts, 20);
  return h;
}

/** The extension header chain; its last header's next-header field is `upper`. */
function ipv6ExtChain(list: Ipv6ExtSpec[], upper: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!;
    const next = i + 1 < list.length ? list[i + 1]!.type : upper;
    let h: Uint8Array;
    if (e.type === NEXTHDR_FRAGMENT) {
      h = new Uint8Array(8);
      const off = e.fragOff ?? 0;
      if (off % 8 !== 0) throw new Error('fragment offset must be a multiple of 8');
      wr16(h, 2, (off & 0xfff8) | (e.more ? 1 : 0));
      wr32(h, 4, e.id ?? 0x12345678);
    } else if (e.type === NEXTHDR_AUTH) {
      const len = e.len ?? 24;
      if (len < 12 || len % 4 !== 0 || len > 1028) throw new Error('bad AH length');
      h = new Uint8Array(len);
      h[1] = len / 4 - 2;
      wr32(h, 4, 0x100); // SPI
      wr32(h, 8, 1); // sequence number
    } else {
      const len = e.len ?? 8;
      if (len < 8 || len % 8 !== 0 || len > 2048) throw new Error('bad extension header length');
      h = new Uint8Array(len);
      h[1] = len / 8 - 1;
      if (e.type === NEXTHDR_ROUTING) {
        // Type 0 with no segments left: receivers skip it.
        h[2] = 0;
        h[3] = 0;
      } else {
        // Options headers: fill with one PadN option (or Pad1 + PadN) so the options parse.
        const fill = len - 2;
        h[2] = 1;
        h[3] = fill - 2;
      }
    }
    h[0] = next;
    parts.push(h);
  }
  return concat(parts);
}

function ipv6Header(o: FrameOptions, a: Addrs, next: number, payloadLen: number): Uint8Array {
  if (payloadLen > 0xffff) throw new Error('IPv6 payload longer than 65535 bytes');
  const h = new Uint8Array(40);
  const tc = o.tos ?? 0;
  wr32(h, 0, ((6 << 28) | (tc << 20) | ((o.flowLabel ?? 0) & 0xfffff)) >>> 0);
  wr16(h, 4, payloadLen);
  h[6] = next;
  h[7] = o.ttl ?? 64;
  for (let i = 0; i < 4; i++) {
    wr32(h, 8 + 4 * i, a.s[i]!);
    wr32(h, 24 + 4 * i, a.d[i]!);
  }
  return h;
}

// ---------------------------------------------------------------------------------------------
// generic IP frame

/**
 * Wraps a ready L4 segment (`l4`, checksum field as given) in IPv4/IPv6 + Ethernet, then fills
 * the checksums per `o.l4Checksum` / `o.ipChecksum`. For TCP/UDP/ICMP/ICMPv6/SCTP the L4
 * checksum is computed; other protocols are left untouched.
 */
export function buildIpFrame(o: FrameOptions, proto: number, l4: Uint8Array): Uint8Array {
  const a = resolveAddrs(o);
  const eth = ethHeader(mac(o.srcMac, DEFAULT_SRC_MAC), mac(o.dstMac, DEFAULT_DST_MAC), o.vlan,
    a.af === 4 ? ETH_P_IP : ETH_P_IPV6);
  let l3: Uint8Array;
  if (a.af === 4) {
    l3 = ipv4Header(o, a, proto, l4.length);
  } else {
    const ext = ipv6ExtChain(o.ipv6Ext ?? [], proto);
    const first = o.ipv6Ext && o.ipv6Ext.length > 0 ? o.ipv6Ext[0]!.type : proto;
    l3 = concat([ipv6Header(o, a, first, ext.length + l4.length), ext]);
  }
  const f = concat([eth, l3, l4]);
  const l3Off = eth.length;
  const l4Off = l3Off + l3.length;
  fillL4Checksum(f, a.af, l3Off, proto, l4Off, l4.length, o.l4Checksum ?? 'valid');
  if (a.af === 4) {
    const c = setIpv4HeaderChecksum(f, l3Off);
    if (o.ipChecksum === 'bad') wr16(f, l3Off + 10, c ^ 0x0101);
  }
  return padFrame(f, o.padTo);
}

function fillL4Checksum(f: Uint8Array, af: 4 | 6, l3Off: number, proto: number, l4Off: number, l4Len: number, mode: L4ChecksumMode): void {
  if (proto === IPPROTO_SCTP) {
    if (l4Len < 12) return;
    if (mode === 'partial' || mode === 'zero') {
      wr32(f, l4Off + 8, 0);
    } else {
      const c = sctpChecksumSet(f, l4Off, l4Len);
      // Flipping one bit of a CRC always makes it wrong.
      if (mode === 'bad') f[l4Off + 8] = (c & 0xff) ^ 1;
    }
    return;
  }
  const co = l4CsumOffset(af, proto);
  if (co < 0 || l4Len < co + 2) return;
  if (mode === 'zero') {
    wr16(f, l4Off + co, 0);
  } else if (mode === 'partial' && (proto === IPPROTO_TCP || proto === IPPROTO_UDP)) {
    // What the Linux stack leaves for the device.
    setPartialL4Checksum(f, af, l3Off, proto, l4Off, l4Len);
  } else {
    const c = setL4Checksum(f, af, l3Off, proto, l4Off, l4Len);
    // XOR 0x0101 never yields the other one's-complement zero (0x0000 <-> 0xffff), so it is always wrong.
    if (mode === 'bad') wr16(f, l4Off + co, c ^ 0x0101);
  }
}

// ---------------------------------------------------------------------------------------------
// TCP / UDP

export function buildTcp(o: TcpOptions = {}): Uint8Array {
  const opts = pad4(o.tcpOptions ?? new Uint8Array(0));
  if (opts.length > 40) throw new Error('TCP options longer than 40 bytes');
  const payload = bytesOf(o.payload);
  const hl = 20 + opts.length;
  const t = new Uint8Array(hl + payload.length);
  wr16(t, 0, o.sport ?? 12345);
  wr16(t, 2, o.dport ?? 80);
  wr32(t, 4, o.seq ?? 1);
  wr32(t, 8, o.ack ?? 0);
  t[12] = (hl >>> 2) << 4;
  t[13] = o.flags ?? TCP_SYN;
  wr16(t, 14, o.window ?? 65535);
  wr16(t, 18, o.urgent ?? 0);
  t.set(opts, 20);
  t.set(payload, hl);
  return buildIpFrame(o, IPPROTO_TCP, t);
}

function udpSegment(o: FrameOptions): Uint8Array {
  const payload = bytesOf(o.payload);
  const u = new Uint8Array(8 + payload.length);
  wr16(u, 0, o.sport ?? 12345);
  wr16(u, 2, o.dport ?? 80);
  wr16(u, 4, u.length > 0xffff ? 0 : u.length);
  u.set(payload, 8);
  return u;
}

export function buildUdp(o: FrameOptions = {}): Uint8Array {
  return buildIpFrame(o, IPPROTO_UDP, udpSegment(o));
}

// ---------------------------------------------------------------------------------------------
// SCTP

const SCTP_CHUNK_TYPES: Record<SctpChunkName, number> = {
  'data': 0, 'init': 1, 'init-ack': 2, 'sack': 3, 'heartbeat': 4, 'heartbeat-ack': 5, 'abort': 6,
  'shutdown': 7, 'shutdown-ack': 8, 'error': 9, 'cookie-echo': 10, 'cookie-ack': 11, 'shutdown-complete': 14,
};

function defaultChunkBody(type: number, o: SctpOptions, payload: Uint8Array): { flags: number; body: Uint8Array } {
  const tsn = o.tsn ?? 1;
  switch (type) {
    case 0: { // DATA: TSN, stream id, stream seq, PPID, user data; B|E = unfragmented message
      const b = new Uint8Array(12 + payload.length);
      wr32(b, 0, tsn);
      b.set(payload, 12);
      return { flags: 0x03, body: b };
    }
    case 1:
    case 2: { // INIT / INIT-ACK: initiate tag, a_rwnd, outbound streams, inbound streams, initial TSN
      const b = new Uint8Array(type === 2 ? 24 : 16);
      wr32(b, 0, o.initTag ?? 0x0a0b0c0d);
      wr32(b, 4, 65536);
      wr16(b, 8, 10);
      wr16(b, 10, 10);
      wr32(b, 12, tsn);
      if (type === 2) {
        // INIT-ACK must carry a State Cookie parameter (type 7).
        wr16(b, 16, 7);
        wr16(b, 18, 8);
        wr32(b, 20, 0xc00c1e00);
      }
      return { flags: 0, body: b };
    }
    case 3: { // SACK: cumulative TSN ack, a_rwnd, no gap blocks, no duplicates
      const b = new Uint8Array(12);
      wr32(b, 0, tsn);
      wr32(b, 4, 65536);
      return { flags: 0, body: b };
    }
    case 4:
    case 5: { // HEARTBEAT(-ACK): one Heartbeat Info parameter
      const b = new Uint8Array(8);
      wr16(b, 0, 1);
      wr16(b, 2, 8);
      wr32(b, 4, 0x48424541);
      return { flags: 0, body: b };
    }
    case 7: { // SHUTDOWN: cumulative TSN ack
      const b = new Uint8Array(4);
      wr32(b, 0, tsn);
      return { flags: 0, body: b };
    }
    case 10: // COOKIE ECHO: the cookie (payload, or 4 bytes)
      return { flags: 0, body: payload.length ? payload : Uint8Array.of(0xc0, 0x0c, 0x1e, 0x00) };
    default: // ABORT, SHUTDOWN-ACK, ERROR, COOKIE-ACK, SHUTDOWN-COMPLETE: no body needed
      return { flags: 0, body: new Uint8Array(0) };
  }
}

function sctpChunkBytes(c: SctpChunkSpec): Uint8Array {
  const body = c.body ?? new Uint8Array(0);
  const ch = new Uint8Array((4 + body.length + 3) & ~3);
  ch[0] = c.type;
  ch[1] = c.flags ?? 0;
  wr16(ch, 2, 4 + body.length); // chunk length excludes padding
  ch.set(body, 4);
  return ch;
}

export function buildSctp(o: SctpOptions = {}): Uint8Array {
  let chunks = o.chunks;
  let firstType: number;
  if (chunks === undefined) {
    const c = o.chunk ?? 'init';
    const type = typeof c === 'number' ? c : SCTP_CHUNK_TYPES[c];
    const d = defaultChunkBody(type, o, bytesOf(o.payload));
    chunks = [{ type, flags: o.chunkFlags ?? d.flags, body: o.chunkBody ?? d.body }];
    firstType = type;
  } else {
    firstType = chunks.length > 0 ? chunks[0]!.type : -1;
  }
  const hdr = new Uint8Array(12);
  wr16(hdr, 0, o.sport ?? 12345);
  wr16(hdr, 2, o.dport ?? 80);
  // INIT is the one chunk sent with verification tag 0 (RFC 4960 8.5.1).
  wr32(hdr, 4, o.vtag ?? (firstType === 1 ? 0 : 0x01020304));
  return buildIpFrame(o, IPPROTO_SCTP, concat([hdr, ...chunks.map(sctpChunkBytes)]));
}

// ---------------------------------------------------------------------------------------------
// ICMP / ICMPv6

/** Any ICMP (IPv4) or ICMPv6 (IPv6) message: 8-byte header (type, code, checksum, `rest`) + body. */
export function buildIcmp(o: IcmpOptions): Uint8Array {
  const a = resolveAddrs(o);
  const body = o.body ?? bytesOf(o.payload);
  const m = new Uint8Array(8 + body.length);
  m[0] = o.icmpType;
  m[1] = o.icmpCode ?? 0;
  wr32(m, 4, o.rest ?? 0);
  m.set(body, 8);
  return buildIpFrame(o, a.af === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, m);
}

export function buildIcmpEcho(o: IcmpEchoOptions = {}): Uint8Array {
  const a = resolveAddrs(o);
  const type = a.af === 4 ? (o.reply ? ICMP_ECHOREPLY : ICMP_ECHO) : (o.reply ? ICMPV6_ECHO_REPLY : ICMPV6_ECHO_REQUEST);
  const rest = (((o.echoId ?? 0x4242) & 0xffff) << 16 | ((o.echoSeq ?? 1) & 0xffff)) >>> 0;
  return buildIcmp({ ...o, icmpType: type, icmpCode: 0, rest, body: bytesOf(o.payload) });
}

/** ICMP/ICMPv6 error quoting `o.original` (truncated to the quote limit). */
export function buildIcmpError(o: IcmpErrorOptions): Uint8Array {
  const a = resolveAddrs(o);
  const limit = o.quoteLimit ?? (a.af === 4 ? 576 - 20 - 8 : 1280 - 40 - 8);
  const quoted = o.original.subarray(0, Math.min(limit, o.original.length));
  let rest = o.rest;
  if (rest === undefined && o.mtu !== undefined) {
    if (a.af === 4 && o.icmpType === ICMP_DEST_UNREACH) rest = o.mtu & 0xffff; // bytes 6..7
    else if (a.af === 6 && o.icmpType === ICMPV6_PKT_TOOBIG) rest = o.mtu >>> 0;
    else throw new Error('mtu only applies to ICMP dest-unreachable / ICMPv6 packet-too-big');
  }
  return buildIcmp({ ...o, icmpType: o.icmpType, icmpCode: o.icmpCode ?? 0, rest: rest ?? 0, body: quoted });
}

/** A copy of the IP packet carried by an Ethernet frame (IP header to IP length, no padding). */
export function ipPacketOf(frame: Uint8Array): Uint8Array {
  let l3 = 14;
  let et = rd16(frame, 12);
  if (et === ETH_P_8021Q) {
    et = rd16(frame, 16);
    l3 = 18;
  }
  let len: number;
  if (et === ETH_P_IP) len = rd16(frame, l3 + 2);
  else if (et === ETH_P_IPV6) len = 40 + rd16(frame, l3 + 4);
  else throw new Error('not an IP frame');
  return frame.slice(l3, Math.min(frame.length, l3 + len));
}

// ---------------------------------------------------------------------------------------------
// ARP

export function buildArp(o: ArpOptions = {}): Uint8Array {
  const op = o.op === undefined || o.op === 'request' ? 1 : o.op === 'reply' ? 2 : o.op;
  const src = mac(o.srcMac, DEFAULT_SRC_MAC);
  const sha = o.senderMac === undefined ? src : mac(o.senderMac, DEFAULT_SRC_MAC);
  const tha = o.targetMac !== undefined ? mac(o.targetMac, DEFAULT_DST_MAC)
    : op === 1 ? new Uint8Array(6) : mac(undefined, DEFAULT_DST_MAC);
  const dst = o.dstMac !== undefined ? mac(o.dstMac, DEFAULT_DST_MAC)
    : op === 1 ? new Uint8Array(6).fill(0xff) : tha;
  const spa = addrWords(o.senderIp ?? '10.0.0.1');
  const tpa = addrWords(o.targetIp ?? '10.0.0.2');
  if (spa.af !== 4 || tpa.af !== 4) throw new Error('ARP addresses must be IPv4');
  const arp = new Uint8Array(28);
  wr16(arp, 0, 1);
  wr16(arp, 2, ETH_P_IP);
  arp[4] = 6;
  arp[5] = 4;
  wr16(arp, 6, op);
  arp.set(sha, 8);
  wr32(arp, 14, spa.w[0]!);
  arp.set(tha, 18);
  wr32(arp, 24, tpa.w[0]!);
  return padFrame(concat([ethHeader(src, dst, o.vlan, ETH_P_ARP), arp]), o.padTo);
}

// ---------------------------------------------------------------------------------------------
// Fragments

/**
 * Splits an IP frame into fragments carrying `fragSize` bytes of fragmentable data each (a
 * multiple of 8; the last may be shorter). IPv4: the header (options included) is repeated with
 * MF/offset set, DF cleared and the checksum recomputed. IPv6: a fragment header (id `fragId`)
 * is inserted after the fixed header and any hop-by-hop/routing headers. Ethernet padding of
 * the input is dropped.
 */
export function fragmentFrame(frame: Uint8Array, fragSize: number, fragId = 0x12345678): Uint8Array[] {
  if (fragSize <= 0 || fragSize % 8 !== 0) throw new Error('fragment size must be a positive multiple of 8');
  let l3 = 14;
  let et = rd16(frame, 12);
  if (et === ETH_P_8021Q) {
    et = rd16(frame, 16);
    l3 = 18;
  }
  const eth = frame.subarray(0, l3);
  const out: Uint8Array[] = [];
  if (et === ETH_P_IP) {
    const hl = (frame[l3]! & 15) << 2;
    const tot = rd16(frame, l3 + 2);
    const hdr = frame.subarray(l3, l3 + hl);
    const data = frame.subarray(l3 + hl, l3 + tot);
    const frag0 = rd16(frame, l3 + 6);
    const baseOff = (frag0 & IP_OFFMASK) << 3;
    for (let pos = 0; pos < data.length; pos += fragSize) {
      const chunk = data.subarray(pos, Math.min(data.length, pos + fragSize));
      const last = pos + fragSize >= data.length;
      const f = concat([eth, hdr, chunk]);
      wr16(f, l3 + 2, hl + chunk.length);
      const mf = !last || (frag0 & IP_MF) !== 0;
      wr16(f, l3 + 6, (mf ? IP_MF : 0) | ((baseOff + pos) >>> 3));
      setIpv4HeaderChecksum(f, l3, hl);
      out.push(f);
    }
    if (out.length === 0) out.push(frame.slice(0, l3 + tot));
    return out;
  }
  if (et !== ETH_P_IPV6) throw new Error('not an IP frame');
  const ipEnd = l3 + 40 + rd16(frame, l3 + 4);
  // Unfragmentable part: fixed header + hop-by-hop / routing headers.
  let nhOff = l3 + 6;
  let pos = l3 + 40;
  let nh = frame[nhOff]!;
  while (nh === NEXTHDR_HOP || nh === NEXTHDR_ROUTING) {
    nhOff = pos;
    const len = (frame[pos + 1]! + 1) << 3;
    nh = frame[pos]!;
    pos += len;
  }
  const unfrag = frame.subarray(l3, pos);
  const data = frame.subarray(pos, ipEnd);
  for (let p = 0; p < data.length; p += fragSize) {
    const chunk = data.subarray(p, Math.min(data.length, p + fragSize));
    const last = p + fragSize >= data.length;
    const fh = new Uint8Array(8);
    fh[0] = nh;
    wr16(fh, 2, p | (last ? 0 : 1));
    wr32(fh, 4, fragId);
    const f = concat([eth, unfrag, fh, chunk]);
    f[nhOff] = NEXTHDR_FRAGMENT;
    wr16(f, l3 + 4, unfrag.length - 40 + 8 + chunk.length);
    out.push(f);
  }
  return out;
}

/** A UDP datagram (built with buildUdp and correct checksum over the whole datagram) as fragments. */
export function buildUdpFragments(o: FrameOptions & { fragSize?: number; fragId?: number } = {}): Uint8Array[] {
  return fragmentFrame(buildUdp(o), o.fragSize ?? 16, o.fragId);
}
