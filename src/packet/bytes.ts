/**
 * Big-endian (network order) reads and writes on a Uint8Array: `rd16`, `rd32` (unsigned result),
 * `wr16`, `wr32` (low 16/32 bits of the value are written). They do no bounds checks — callers
 * (parse.ts) check lengths first — and are small enough for V8 to inline on the hot path.
 */

export function rd16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

export function rd32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

export function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}
