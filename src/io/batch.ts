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
/**
 * Slots of batches that receive GSO/GRO super-frames whole (AF_PACKET with PACKET_VNET_HDR):
 * a 64 KiB IP packet with Ethernet and VLAN headers, plus 16 KiB so the tunnel transmitter can
 * spread such a frame into MTU-sized encapsulated segments inside its own slot (xmit/gso.ts).
 * 82112 is a multiple of 64 but not of 4096 (82112 mod 4096 = 3 * 64): with a page-multiple
 * stride every frame's headers would fall into the same L1 cache sets.
 */
export const VNET_SLOT_SIZE = 82112;
export const VNET_FRAME_MAX = VNET_SLOT_SIZE - HEADROOM;

/** Per-frame flags from the I/O layer. */
export const FRAME_CSUM_NOT_READY = 0x01; // PACKET_AUXDATA TP_STATUS_CSUMNOTREADY: L4 checksum is a partial (pseudo-header) sum
export const FRAME_CSUM_VALID = 0x02; // TP_STATUS_CSUM_VALID: the NIC/stack already verified it
export const FRAME_OUTGOING = 0x04; // the frame was sent by this host (PACKET_OUTGOING)
/** A GSO/GRO super-frame: gsoType/gsoSize describe how it is cut into segments (virtio_net_hdr). */
export const FRAME_GSO = 0x08;
/**
 * The engine cut the frame into `segs` frames of its own (userspace segmentation, xmit/gso.ts):
 * segment k starts at off + k * segStride and all but the last are segStride - SEG_GAP bytes
 * long; the last ends at off + len. Backends send them as separate frames, in order.
 */
export const FRAME_SEGMENTED = 0x10;
/**
 * Free bytes in front of every segment of a FRAME_SEGMENTED frame but the first (which has the
 * headroom): room for a backend's per-frame header, e.g. AF_PACKET's 10-byte virtio_net_hdr.
 */
export const SEG_GAP = 16;

/**
 * gsoType values: virtio_net_hdr's (linux/virtio_net.h), which is also what the kernel hands
 * AF_PACKET; GSO_ECN may be or-ed in (the sender set ECN CWR on the first segment).
 */
export const GSO_TCPV4 = 1;
export const GSO_UDP = 3; // UFO (IP fragmentation): never produced by current kernels
export const GSO_TCPV6 = 4;
export const GSO_UDP_L4 = 5;
export const GSO_ECN = 0x80;

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
  /** Bytes per slot (HEADROOM + the largest frame a slot holds). */
  readonly slotSize: number;
  /** Largest frame a slot holds at its receive position. */
  readonly frameMax: number;
  /**
   * Frames of this batch leave through a backend that passes checksum and segmentation
   * offload on (AF_PACKET with PACKET_VNET_HDR): a partial checksum (FRAME_CSUM_NOT_READY) may
   * stay partial and a FRAME_GSO frame may stay whole, the kernel finishes them. Otherwise the
   * engine completes every partial checksum itself.
   */
  txOffload = false;
  /**
   * Offload metadata, meaningful only under the flags: with FRAME_CSUM_NOT_READY, the L4
   * checksum field is at off + csumStart + csumOffset and covers everything from csumStart
   * (virtio_net_hdr csum_start/csum_offset, relative to the frame start); with FRAME_GSO, the
   * segmentation type (GSO_*) and the payload bytes per segment (gso_size).
   */
  readonly csumStart: Uint16Array;
  readonly csumOffset: Uint16Array;
  readonly gsoType: Uint8Array;
  readonly gsoSize: Uint16Array;
  /** With FRAME_SEGMENTED: segment count and stride (see the flag). */
  readonly segs: Uint16Array;
  readonly segStride: Uint16Array;

  constructor(capacity: number, buf?: Uint8Array, slotSize = SLOT_SIZE) {
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.frameMax = slotSize - HEADROOM;
    this.buf = buf ?? new Uint8Array(capacity * slotSize);
    if (this.buf.length < capacity * slotSize) throw new RangeError('arena too small for batch');
    this.off = new Uint32Array(capacity);
    this.len = new Uint32Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.ifindex = new Uint32Array(capacity);
    this.verdict = new Uint8Array(capacity);
    this.reason = new Uint16Array(capacity);
    this.tsUs = new Float64Array(capacity);
    this.csumStart = new Uint16Array(capacity);
    this.csumOffset = new Uint16Array(capacity);
    this.gsoType = new Uint8Array(capacity);
    this.gsoSize = new Uint16Array(capacity);
    this.segs = new Uint16Array(capacity);
    this.segStride = new Uint16Array(capacity);
  }

  slotBase(i: number): number {
    return i * this.slotSize;
  }

  /**
   * Moves frame `from`'s metadata (not its bytes) to index `to`: for backends and the worker
   * compacting a batch after taking frames out.
   */
  moveMeta(from: number, to: number): void {
    this.copyMeta(to, this, from);
  }

  /** Copies frame `from` of `src`'s receive metadata (offset, length, flags, ifindex, offload state) to index `to`. */
  copyMeta(to: number, src: FrameBatch, from: number): void {
    this.off[to] = src.off[from]!;
    this.len[to] = src.len[from]!;
    this.flags[to] = src.flags[from]!;
    this.ifindex[to] = src.ifindex[from]!;
    this.csumStart[to] = src.csumStart[from]!;
    this.csumOffset[to] = src.csumOffset[from]!;
    this.gsoType[to] = src.gsoType[from]!;
    this.gsoSize[to] = src.gsoSize[from]!;
  }

  /** Copies a frame into slot i (tests, pcap replay); returns false when it does not fit. */
  put(i: number, frame: Uint8Array, flags = 0, ifindex = 0, tsUs = 0): boolean {
    if (frame.length > this.frameMax) return false;
    const o = i * this.slotSize + HEADROOM;
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
