/**
 * A batch of frames: one arena, fixed-size slots, per-frame metadata in typed
 * arrays. Every backend (memory, pcap file, AF_PACKET) fills one of these and the
 * engine rewrites frames in place. Each slot keeps HEADROOM bytes in front of the
 * frame so tunnel encapsulation can prepend outer headers without copying the
 * payload (DESIGN rule 1): a frame's `off` may move down by up to HEADROOM.
 */
export const HEADROOM = 128;
/** Largest frame a slot holds (jumbo-ish; super-frames beyond this are truncated by the backend and dropped). */
export const SLOT_FRAME_MAX = 9216 + 64;
export const SLOT_SIZE = HEADROOM + SLOT_FRAME_MAX;

/** Per-frame flags from the I/O layer. */
export const FRAME_CSUM_NOT_READY = 0x01; // PACKET_AUXDATA TP_STATUS_CSUMNOTREADY: L4 checksum is a partial (pseudo-header) sum
export const FRAME_CSUM_VALID = 0x02; // TP_STATUS_CSUM_VALID: the NIC/stack already verified it
export const FRAME_OUTGOING = 0x04; // the frame was sent by this host (PACKET_OUTGOING)

/** Verdicts the engine writes per input frame. */
export const V_DROP = 0;
export const V_FORWARD = 1; // send the (rewritten) frame out
export const V_PASS = 2; // not ours: leave it to the kernel
export const V_REPLY = 3; // frame was turned into a reply (e.g. ARP) and must be sent back out
export const VERDICT_NAMES = ['drop', 'forward', 'pass', 'reply'] as const;

export class FrameBatch {
  readonly capacity: number;
  readonly buf: Uint8Array;
  /** Number of frames present. */
  count = 0;
  /** Frame start offset in buf (slot base + HEADROOM on receive; may move down). */
  readonly off: Uint32Array;
  readonly len: Uint32Array;
  readonly flags: Uint8Array;
  /** Interface the frame came in on / goes out of (backend-specific index). */
  readonly ifindex: Uint32Array;
  /** Engine verdict per frame (V_*). */
  readonly verdict: Uint8Array;
  /** Engine reason code per frame (drop reason, or the outcome detail). */
  readonly reason: Uint16Array;
  /** Timestamp of each frame in microseconds (pcap) or 0. */
  readonly tsUs: Float64Array;

  constructor(capacity: number, buf?: Uint8Array) {
    this.capacity = capacity;
    this.buf = buf ?? new Uint8Array(capacity * SLOT_SIZE);
    if (this.buf.length < capacity * SLOT_SIZE) throw new RangeError('arena too small for batch');
    this.off = new Uint32Array(capacity);
    this.len = new Uint32Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.ifindex = new Uint32Array(capacity);
    this.verdict = new Uint8Array(capacity);
    this.reason = new Uint16Array(capacity);
    this.tsUs = new Float64Array(capacity);
  }

  slotBase(i: number): number {
    return i * SLOT_SIZE;
  }

  /** Copies a frame into slot i (tests, pcap replay); returns false when it does not fit. */
  put(i: number, frame: Uint8Array, flags = 0, ifindex = 0, tsUs = 0): boolean {
    if (frame.length > SLOT_FRAME_MAX) return false;
    const o = i * SLOT_SIZE + HEADROOM;
    this.buf.set(frame, o);
    this.off[i] = o;
    this.len[i] = frame.length;
    this.flags[i] = flags;
    this.ifindex[i] = ifindex;
    this.verdict[i] = V_DROP;
    this.reason[i] = 0;
    this.tsUs[i] = tsUs;
    return true;
  }

  /** A copy of frame i as it is now (tests only). */
  frame(i: number): Uint8Array {
    return this.buf.slice(this.off[i]!, this.off[i]! + this.len[i]!);
  }
}

/**
 * Frames the engine generates (ICMP errors, gratuitous ARP): a separate output
 * arena with the same slot layout, appended in order.
 */
export class TxQueue extends FrameBatch {
  /** Index of the input frame that caused each generated frame (-1 = none, e.g. timers). */
  readonly cause: Int32Array;
  constructor(capacity: number) {
    super(capacity);
    this.cause = new Int32Array(capacity);
  }
  /** Reserves the next slot; returns its frame offset or -1 when full. Caller sets len via commit(). */
  reserve(): number {
    if (this.count >= this.capacity) return -1;
    return this.count * SLOT_SIZE + HEADROOM;
  }
  commit(len: number, ifindex: number, cause: number): void {
    const i = this.count++;
    this.off[i] = i * SLOT_SIZE + HEADROOM;
    this.len[i] = len;
    this.flags[i] = 0;
    this.ifindex[i] = ifindex;
    this.verdict[i] = V_FORWARD;
    this.cause[i] = cause;
  }
  clear(): void {
    this.count = 0;
  }
}

/** A packet I/O backend. */
export interface PacketIo {
  /** Fills `batch` (count set) with what is available; returns count (0 if nothing). */
  recv(batch: FrameBatch): number;
  /** Sends frames i of `batch` with verdict V_FORWARD or V_REPLY; returns how many were sent. */
  send(batch: FrameBatch): number;
  close(): void;
}
