/**
 * Shared bits of the lab tests: whether they can run here (root + namespaces),
 * sending frames through an AfPacketIo, and collecting what arrives.
 */
import { labSupport } from '../../src/lab/netns.js';
import type { AfPacketIo } from '../../src/io/afpacket.js';
import { FrameBatch, V_FORWARD } from '../../src/io/batch.js';
import { parseFrame } from '../../src/packet/parse.js';
import { PacketInfo } from '../../src/packet/info.js';

const support = labSupport();
/** `{ skip: reason }` for t.test when labs cannot run here, else `{}`. */
export const LAB_SKIP: { skip?: string } = support.ok ? {} : { skip: support.reason };

/** Sends the given frames (copied into a batch) out of `ifindex` (0 = the io's first interface). */
export function sendFrames(io: Pick<AfPacketIo, 'send'>, frames: Uint8Array[], ifindex = 0): number {
  const b = new FrameBatch(Math.max(1, frames.length));
  frames.forEach((f, i) => {
    if (!b.put(i, f, 0, ifindex)) throw new Error('frame does not fit a slot');
    b.verdict[i] = V_FORWARD;
  });
  b.count = frames.length;
  return io.send(b);
}

export interface Captured {
  bytes: Uint8Array;
  flags: number;
  ifindex: number;
  info: PacketInfo;
}

/**
 * Receives on `io` (polling without blocking the event loop) until `until` says
 * enough, or `ms` passes. Returns copies of every frame that `keep` accepted.
 */
export async function collect(
  io: AfPacketIo, ms: number,
  keep: (c: Captured) => boolean = () => true,
  until: (got: Captured[]) => boolean = () => false,
): Promise<Captured[]> {
  const b = new FrameBatch(64);
  const got: Captured[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const n = io.recv(b);
    for (let i = 0; i < n; i++) {
      const bytes = b.frame(i);
      const c: Captured = { bytes, flags: b.flags[i]!, ifindex: b.ifindex[i]!, info: reparse(bytes) };
      if (keep(c)) got.push(c);
    }
    if (until(got)) break;
    if (n === 0) await new Promise((r) => setTimeout(r, 5));
  }
  return got;
}

export function reparse(bytes: Uint8Array): PacketInfo {
  const info = new PacketInfo();
  parseFrame(bytes, 0, bytes.length, info);
  return info;
}
