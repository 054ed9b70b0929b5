/**
 * Builds tunnelled frames the way a director (IPVS -i) would send them: IPIP, SIT,
 * GRE (optional checksum/key/sequence) and GUE (version 0 with optional remote
 * checksum offload, or version 1 direct IP), and GUE remcsum UDP GSO super-frames.
 * Test-only: allocates freely.
 */
import { buildIpFrame, buildUdp, type FrameOptions } from '../../src/packet/build.js';
import { csumAdd, csumFinish } from '../../src/packet/checksum.js';
import type { PacketSink } from '../../src/lab/tun-gro.js';

export interface Outer {
  srcMac?: string | Uint8Array;
  dstMac?: string | Uint8Array;
  saddr: string;
  daddr: string;
  vlan?: number;
  df?: boolean;
  ipv6Ext?: FrameOptions['ipv6Ext'];
}

function innerProto(inner: Uint8Array): number {
  return inner[0]! >>> 4 === 6 ? 41 : 4;
}

export function ipipFrame(o: Outer, inner: Uint8Array): Uint8Array {
  return buildIpFrame(o, innerProto(inner), inner);
}

export interface GreOptions {
  csum?: boolean;
  key?: number;
  seq?: number;
  /** Corrupt the GRE checksum. */
  badCsum?: boolean;
  /** Raw flags/version word override. */
  flagsWord?: number;
}

export function greHeader(inner: Uint8Array, g: GreOptions = {}): Uint8Array {
  let flags = 0;
  let len = 4;
  if (g.csum) { flags |= 0x8000; len += 4; }
  if (g.key !== undefined) { flags |= 0x2000; len += 4; }
  if (g.seq !== undefined) { flags |= 0x1000; len += 4; }
  const h = new Uint8Array(len + inner.length);
  const w = g.flagsWord ?? flags;
  h[0] = w >>> 8;
  h[1] = w & 255;
  const ptype = innerProto(inner) === 41 ? 0x86dd : 0x0800;
  h[2] = ptype >>> 8;
  h[3] = ptype & 255;
  let p = 4;
  const csumAt = g.csum ? p : -1;
  if (g.csum) p += 4;
  for (const v of [g.key, g.seq]) {
    if (v === undefined) continue;
    h[p] = v >>> 24; h[p + 1] = (v >>> 16) & 255; h[p + 2] = (v >>> 8) & 255; h[p + 3] = v & 255;
    p += 4;
  }
  h.set(inner, len);
  if (csumAt >= 0) {
    let c = csumFinish(csumAdd(h, 0, h.length, 0));
    if (g.badCsum) c ^= 0x0101;
    h[csumAt] = c >>> 8;
    h[csumAt + 1] = c & 255;
  }
  return h;
}

export function greFrame(o: Outer, inner: Uint8Array, g: GreOptions = {}): Uint8Array {
  return buildIpFrame(o, 47, greHeader(inner, g));
}

export interface GueOptions {
  port: number;
  sport?: number;
  /** GUE version 1 (bare IP packet after the UDP header). */
  direct?: boolean;
  /** Control message (C bit). */
  control?: boolean;
  /** Remote checksum offload option: start and offset relative to the inner packet. */
  remcsum?: [number, number];
  /** Outer UDP checksum mode (default valid). */
  udpChecksum?: 'valid' | 'zero' | 'bad';
}

export function gueFrame(o: Outer, inner: Uint8Array, g: GueOptions): Uint8Array {
  return buildUdp({ ...o, sport: g.sport ?? 45000, dport: g.port, payload: guePayload(inner, g), l4Checksum: g.udpChecksum ?? 'valid' });
}

/** The UDP payload of a GUE packet: GUE header (and options), then the inner packet. */
export function guePayload(inner: Uint8Array, g: Omit<GueOptions, 'port'>): Uint8Array {
  let payload: Uint8Array;
  if (g.direct) {
    payload = inner;
  } else {
    const optLen = g.remcsum ? 8 : 0;
    payload = new Uint8Array(4 + optLen + inner.length);
    payload[0] = (g.control ? 0x20 : 0) | (optLen >>> 2);
    payload[1] = innerProto(inner);
    if (g.remcsum) {
      payload[3] = 0x01; // GUE_FLAG_PRIV
      payload[4] = 0x80; // GUE_PFLAG_REMCSUM
      payload[8] = g.remcsum[0] >>> 8; payload[9] = g.remcsum[0] & 255;
      payload[10] = g.remcsum[1] >>> 8; payload[11] = g.remcsum[1] & 255;
    }
    payload.set(inner, 4 + optLen);
  }
  return payload;
}

/** The remote checksum option for an inner TCP/UDP packet: [start, checksum field], relative to the inner packet. */
export function remcsumFor(inner: Uint8Array): [number, number] {
  const v6 = inner[0]! >>> 4 === 6;
  const start = v6 ? 40 : (inner[0]! & 15) << 2;
  const proto = v6 ? inner[6]! : inner[9]!;
  return [start, start + (proto === 6 ? 16 : 6)];
}

export interface GueGsoFrame {
  frame: Uint8Array;
  /** What the virtio_net_hdr says: chunk size, partial checksum start (frame-relative) and offset. */
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  /** Frame offset of each chunk. */
  chunkOff: number[];
}

/**
 * A UDP GSO (UDP_L4) super-frame as a director with --tun-type gue --tun-remcsum sends it: one
 * outer Ethernet + IP + UDP header whose checksum is partial (the pseudo-header sum over the
 * whole UDP length), then one chunk per inner packet: GUE v0 with the remote checksum option
 * for the inner TCP/UDP checksum, then the inner packet. gso_size is the first chunk's length
 * unless `gsoSize` says otherwise.
 */
export function gueGsoFrame(o: Outer, inners: Uint8Array[], g: { port: number; sport?: number; gsoSize?: number }): GueGsoFrame {
  const chunks = inners.map((p) => guePayload(p, { remcsum: remcsumFor(p) }));
  const payload = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  const at: number[] = [];
  let p = 0;
  for (const c of chunks) { at.push(p); payload.set(c, p); p += c.length; }
  const frame = buildUdp({ ...o, sport: g.sport ?? 45000, dport: g.port, payload, l4Checksum: 'partial' });
  const udp = frame.length - 8 - payload.length;
  return { frame, gsoSize: g.gsoSize ?? chunks[0]!.length, csumStart: udp, csumOffset: 6, chunkOff: at.map((x) => udp + 8 + x) };
}

// ------------------------------------------------------------------ a TUN device double, byte helpers

export interface Write { hdr: number[]; pkt: Uint8Array }

/** A TunWriter device that records every write: the 10-byte virtio_net_hdr and the IP packet behind it. */
export class Recorder implements PacketSink {
  readonly vnetHdr = true;
  readonly writes: Write[] = [];
  write(buf: Uint8Array, off: number, len: number): boolean {
    this.writes.push({ hdr: [...buf.subarray(off, off + 10)], pkt: buf.slice(off + 10, off + len) });
    return true;
  }
}

export const rd16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
export const rd32 = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** n pseudo-random payload bytes (an LCG from `seed`). */
export function payloadOf(n: number, seed: number): Uint8Array {
  const p = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; p[i] = x >>> 24; }
  return p;
}
