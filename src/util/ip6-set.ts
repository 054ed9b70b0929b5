/**
 * An immutable set of IPv6 addresses that answers "is this one of them?" without
 * allocating: for four words, or for the 16 bytes of an address inside a frame.
 * The engine asks it for every Neighbor Solicitation (is the target a VIP?) and
 * the neighbour cache for every NDP frame (is this one of our addresses?). The
 * set is rebuilt whole when its contents change (control plane), so lookups need
 * no deletion logic: open addressing over a power-of-two table of words, at most
 * half full, so every probe sequence ends at an empty slot.
 */

/** An address as four uint32 words, most significant first (as in IpAddr / PacketInfo). */
export type Words6 = ArrayLike<number>;

function mix(w0: number, w1: number, w2: number, w3: number): number {
  // The low word varies most between addresses of one subnet: give it the strongest spread.
  return (Math.imul(w3, 0x9e3779b1) ^ Math.imul(w2, 0x85ebca6b) ^ Math.imul(w1, 0xc2b2ae35) ^ w0) >>> 0;
}

function rdBe32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export class Ip6Set {
  private readonly words: Uint32Array;
  private readonly used: Uint8Array;
  private readonly mask: number;
  readonly size: number;

  constructor(addrs: Iterable<Words6> = []) {
    const list: Words6[] = [];
    for (const a of addrs) list.push(a);
    let cap = 8;
    while (cap < list.length * 2) cap <<= 1;
    this.words = new Uint32Array(cap * 4);
    this.used = new Uint8Array(cap);
    this.mask = cap - 1;
    let n = 0;
    for (const a of list) {
      const w0 = a[0]! >>> 0, w1 = a[1]! >>> 0, w2 = a[2]! >>> 0, w3 = a[3]! >>> 0;
      if (this.has(w0, w1, w2, w3)) continue;
      let h = mix(w0, w1, w2, w3) & this.mask;
      while (this.used[h] === 1) h = (h + 1) & this.mask;
      this.used[h] = 1;
      const o = h * 4;
      this.words[o] = w0; this.words[o + 1] = w1; this.words[o + 2] = w2; this.words[o + 3] = w3;
      n++;
    }
    this.size = n;
  }

  has(w0: number, w1: number, w2: number, w3: number): boolean {
    w0 >>>= 0; w1 >>>= 0; w2 >>>= 0; w3 >>>= 0;
    const w = this.words;
    for (let h = mix(w0, w1, w2, w3) & this.mask; this.used[h] === 1; h = (h + 1) & this.mask) {
      const o = h * 4;
      if (w[o] === w0 && w[o + 1] === w1 && w[o + 2] === w2 && w[o + 3] === w3) return true;
    }
    return false;
  }

  /** Whether the address stored big-endian at buf[off..off+16) is in the set. */
  hasAt(buf: Uint8Array, off: number): boolean {
    return this.has(rdBe32(buf, off), rdBe32(buf, off + 4), rdBe32(buf, off + 8), rdBe32(buf, off + 12));
  }

  /** Whether the four words are in the set. */
  hasWords(a: Words6): boolean {
    return this.has(a[0]!, a[1]!, a[2]!, a[3]!);
  }
}
