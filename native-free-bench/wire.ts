/**
 * The bench's packet source: one arena holding a FrameBatch's slots and, after
 * them, a ring of pristine frames at a fixed stride in the order they will be
 * sent. `refill(k)` copies the next 64 frames into the batch slots (the engine
 * rewrites frames in place, so every batch starts from the pristine copy),
 * reading the ring sequentially like a backend reads its receive ring: the copy
 * is cheap and cache-friendly, so it neither hides nor inflates engine cost, and
 * it is timed separately.
 *
 * Frames are made from one template per kind (buildTcp) and patched per flow
 * (addresses, ports, checksums updated incrementally), so millions of distinct
 * flows take seconds, not minutes.
 */
import { FrameBatch, HEADROOM, SLOT_SIZE, TxQueue } from '../src/io/batch.js';
import { csumUpdate16, csumUpdate32 } from '../src/packet/checksum.js';

/** Bytes per pristine frame in the ring (TCP without payload is 54). */
export const STRIDE = 64;
export const BATCH = 64;

const W = STRIDE >>> 2;

export class Wire {
  readonly batch: FrameBatch;
  readonly tx = new TxQueue(BATCH);
  /** Frames in the ring. */
  readonly size: number;
  private readonly buf: Uint8Array;
  private readonly words: Uint32Array;
  private readonly ringOff: number;
  private readonly lens: Uint16Array;

  constructor(size: number) {
    this.size = size;
    this.ringOff = BATCH * SLOT_SIZE;
    this.buf = new Uint8Array(this.ringOff + size * STRIDE);
    this.words = new Uint32Array(this.buf.buffer);
    this.lens = new Uint16Array(size);
    this.batch = new FrameBatch(BATCH, this.buf);
  }

  /** Stores `frame` as ring entry k. */
  set(k: number, frame: Uint8Array): void {
    if (frame.length > STRIDE) throw new RangeError(`bench frames are at most ${STRIDE} bytes`);
    this.buf.set(frame, this.ringOff + k * STRIDE);
    this.lens[k] = frame.length;
  }

  /** Stores a TCP frame patched from `t` (see TcpTemplate) as ring entry k. */
  setTcp(k: number, t: TcpTemplate, saddr: number, sport: number, daddr: number, dport: number): void {
    const o = this.ringOff + k * STRIDE;
    t.writeTo(this.buf, o, saddr, sport, daddr, dport);
    this.lens[k] = t.length;
  }

  /**
   * Fills the batch with ring entries k, k+1, ... (wrapping) — at most BATCH and
   * at most `max` of them — as a backend's receive would. Returns the count.
   */
  refill(k: number, max: number): number {
    const n = max < BATCH ? max : BATCH;
    const b = this.batch;
    const w = this.words;
    const size = this.size;
    let r = k % size;
    for (let j = 0; j < n; j++) {
      const o = j * SLOT_SIZE + HEADROOM;
      const src = (this.ringOff >>> 2) + r * W;
      const dst = o >>> 2;
      for (let q = 0; q < W; q++) w[dst + q] = w[src + q]!;
      b.off[j] = o;
      b.len[j] = this.lens[r]!;
      b.flags[j] = 0;
      b.ifindex[j] = 0;
      b.verdict[j] = 0;
      b.reason[j] = 0;
      if (++r === size) r = 0;
    }
    b.count = n;
    return n;
  }
}

/** A TCP frame whose addresses and ports are rewritten per flow, checksums kept valid. */
export class TcpTemplate {
  private readonly frame: Uint8Array;
  private readonly s0: number;
  private readonly d0: number;
  private readonly sp0: number;
  private readonly dp0: number;
  private readonly ipCsum: number;
  private readonly l4Csum: number;

  constructor(frame: Uint8Array) {
    if (frame[12] !== 0x08 || frame[13] !== 0x00 || frame[14] !== 0x45) throw new Error('template must be IPv4 without options');
    this.frame = frame;
    this.s0 = rd32(frame, 26);
    this.d0 = rd32(frame, 30);
    this.sp0 = rd16(frame, 34);
    this.dp0 = rd16(frame, 36);
    this.ipCsum = rd16(frame, 24);
    this.l4Csum = rd16(frame, 50);
  }

  get length(): number {
    return this.frame.length;
  }

  writeTo(out: Uint8Array, o: number, saddr: number, sport: number, daddr: number, dport: number): void {
    out.set(this.frame, o);
    const ip = csumUpdate32(csumUpdate32(this.ipCsum, this.s0, saddr), this.d0, daddr);
    let l4 = csumUpdate32(csumUpdate32(this.l4Csum, this.s0, saddr), this.d0, daddr);
    l4 = csumUpdate16(csumUpdate16(l4, this.sp0, sport), this.dp0, dport);
    wr32(out, o + 26, saddr);
    wr32(out, o + 30, daddr);
    wr16(out, o + 24, ip);
    wr16(out, o + 34, sport);
    wr16(out, o + 36, dport);
    wr16(out, o + 50, l4);
  }
}

function rd16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v & 0xff;
}

function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
