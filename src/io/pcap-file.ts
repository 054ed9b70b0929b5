/**
 * Reading and writing capture files: classic pcap (both byte orders, micro- and
 * nanosecond timestamps) and pcapng (section header, interface description,
 * enhanced and simple packet blocks). Only Ethernet link type (1) is accepted
 * for replay; the reader reports the link type so callers can refuse others.
 * Not hot path: replay reads a whole file once.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export const LINKTYPE_ETHERNET = 1;

export interface CapturedFrame {
  /** Timestamp in microseconds since the epoch. */
  tsUs: number;
  data: Uint8Array;
  /** Original length on the wire (may exceed data.length when the capture was snapped). */
  origLen: number;
}

export interface Capture {
  linkType: number;
  frames: CapturedFrame[];
}

export class PcapError extends Error {}

export function readCaptureFile(path: string): Capture {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new PcapError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseCapture(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

export function parseCapture(b: Uint8Array): Capture {
  if (b.length < 4) throw new PcapError('not a pcap or pcapng file (too short)');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const magicLE = dv.getUint32(0, true);
  if (magicLE === 0x0a0d0d0a) return parsePcapng(b, dv);
  return parsePcap(b, dv);
}

function parsePcap(b: Uint8Array, dv: DataView): Capture {
  if (b.length < 24) throw new PcapError('truncated pcap global header');
  const m = dv.getUint32(0, true);
  let le: boolean;
  let nano: boolean;
  if (m === 0xa1b2c3d4) { le = true; nano = false; }
  else if (m === 0xa1b23c4d) { le = true; nano = true; }
  else if (m === 0xd4c3b2a1) { le = false; nano = false; }
  else if (m === 0x4d3cb2a1) { le = false; nano = true; }
  else throw new PcapError('not a pcap or pcapng file (bad magic)');
  const linkType = dv.getUint32(20, le) & 0x0fffffff;
  const frames: CapturedFrame[] = [];
  let p = 24;
  while (p < b.length) {
    if (p + 16 > b.length) throw new PcapError(`truncated pcap record header at byte ${p}`);
    const sec = dv.getUint32(p, le);
    const frac = dv.getUint32(p + 4, le);
    const incl = dv.getUint32(p + 8, le);
    const orig = dv.getUint32(p + 12, le);
    p += 16;
    if (incl > 262144) throw new PcapError(`pcap record at byte ${p - 16} claims ${incl} bytes`);
    if (p + incl > b.length) throw new PcapError(`truncated pcap record at byte ${p - 16}`);
    frames.push({ tsUs: sec * 1e6 + (nano ? Math.floor(frac / 1000) : frac), data: b.slice(p, p + incl), origLen: orig });
    p += incl;
  }
  return { linkType, frames };
}

function parsePcapng(b: Uint8Array, dv: DataView): Capture {
  let p = 0;
  let le = true;
  const ifLink: number[] = [];
  const ifTsDiv: number[] = []; // ticks per microsecond divisor (as a multiplier to µs)
  let linkType = -1;
  const frames: CapturedFrame[] = [];
  while (p < b.length) {
    if (p + 12 > b.length) throw new PcapError(`truncated pcapng block at byte ${p}`);
    const type = dv.getUint32(p, le);
    if (type === 0x0a0d0d0a) {
      const bom = dv.getUint32(p + 8, true);
      if (bom === 0x1a2b3c4d) le = true;
      else if (bom === 0x4d3c2b1a) le = false;
      else throw new PcapError('bad pcapng byte-order magic');
      ifLink.length = 0;
      ifTsDiv.length = 0;
    }
    const len = dv.getUint32(p + 4, le);
    if (len < 12 || len % 4 !== 0 || p + len > b.length) throw new PcapError(`bad pcapng block length at byte ${p}`);
    if (type === 1) {
      // Interface description: link type, then options (if_tsresol = 9).
      const lt = dv.getUint16(p + 8, le);
      ifLink.push(lt);
      let tsMul = 1; // microseconds per tick (default resolution 10^-6)
      let o = p + 16;
      while (o + 4 <= p + len - 4) {
        const code = dv.getUint16(o, le);
        const olen = dv.getUint16(o + 2, le);
        if (code === 0) break;
        if (code === 9 && olen >= 1) {
          const r = b[o + 4]!;
          const ticksPerSec = r & 0x80 ? 2 ** (r & 0x7f) : 10 ** r;
          tsMul = 1e6 / ticksPerSec;
        }
        o += 4 + ((olen + 3) & ~3);
      }
      ifTsDiv.push(tsMul);
      if (linkType === -1) linkType = lt;
    } else if (type === 6) {
      const ifId = dv.getUint32(p + 8, le);
      const hi = dv.getUint32(p + 12, le);
      const lo = dv.getUint32(p + 16, le);
      const cap = dv.getUint32(p + 20, le);
      const orig = dv.getUint32(p + 24, le);
      if (28 + cap > len) throw new PcapError(`truncated pcapng packet at byte ${p}`);
      const ticks = hi * 4294967296 + lo;
      const mul = ifTsDiv[ifId] ?? 1;
      if (ifLink[ifId] !== undefined && ifLink[ifId] !== linkType) throw new PcapError('pcapng with mixed link types is not supported');
      frames.push({ tsUs: Math.floor(ticks * mul), data: b.slice(p + 28, p + 28 + cap), origLen: orig });
    } else if (type === 3) {
      const orig = dv.getUint32(p + 8, le);
      const cap = Math.min(orig, len - 16);
      frames.push({ tsUs: 0, data: b.slice(p + 12, p + 12 + cap), origLen: orig });
    }
    p += len;
  }
  return { linkType: linkType === -1 ? LINKTYPE_ETHERNET : linkType, frames };
}

/** Streams frames into a classic little-endian microsecond pcap. */
export class PcapWriter {
  private chunks: Uint8Array[] = [];
  private size = 0;
  constructor(private readonly snaplen = 262144, private readonly linkType = LINKTYPE_ETHERNET) {
    const h = new Uint8Array(24);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, 0xa1b2c3d4, true);
    dv.setUint16(4, 2, true);
    dv.setUint16(6, 4, true);
    dv.setUint32(16, this.snaplen, true);
    dv.setUint32(20, this.linkType, true);
    this.push(h);
  }
  private push(c: Uint8Array): void {
    this.chunks.push(c);
    this.size += c.length;
  }
  /** Appends a frame (copied). */
  write(tsUs: number, buf: Uint8Array, off = 0, len = buf.length - off): void {
    const rec = new Uint8Array(16 + len);
    const dv = new DataView(rec.buffer);
    const sec = Math.floor(tsUs / 1e6);
    dv.setUint32(0, sec, true);
    dv.setUint32(4, Math.round(tsUs - sec * 1e6), true);
    dv.setUint32(8, len, true);
    dv.setUint32(12, len, true);
    rec.set(buf.subarray(off, off + len), 16);
    this.push(rec);
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    let p = 0;
    for (const c of this.chunks) { out.set(c, p); p += c.length; }
    return out;
  }
  save(path: string): void {
    writeFileSync(path, this.bytes());
  }
}
