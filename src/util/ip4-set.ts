/**
 * An immutable set of IPv4 addresses (uint32) that answers `has` without
 * allocating: open addressing over a power-of-two Uint32Array, at most a quarter
 * full, 0 marking an empty slot (0.0.0.0 is never a member: it is left out).
 * Rebuilt whole when the contents change (control plane). The engine asks it for
 * every ARP request (is the target a VIP?) and the fast path for every frame of a
 * batch (is the destination a VIP, i.e. is this a client packet or a reply?).
 */
export class Ip4Set {
  /** Open-addressing slots, 0: empty (read by FastPath.prepare, which probes them inline). */
  readonly slots: Uint32Array;
  readonly mask: number;
  readonly size: number;

  constructor(addrs: Iterable<number> = []) {
    const list = [...addrs];
    let cap = 4;
    while (cap < list.length * 4) cap <<= 1;
    this.slots = new Uint32Array(cap);
    this.mask = cap - 1;
    let n = 0;
    for (const x of list) {
      const a = x >>> 0;
      if (a === 0) continue;
      let k = (Math.imul(a, 0x9e3779b1) >>> 16) & this.mask;
      while (this.slots[k] !== 0 && this.slots[k] !== a) k = (k + 1) & this.mask;
      if (this.slots[k] === 0) n++;
      this.slots[k] = a;
    }
    this.size = n;
  }

  has(a: number): boolean {
    if (a === 0) return false;
    const s = this.slots;
    const mask = this.mask;
    let k = (Math.imul(a, 0x9e3779b1) >>> 16) & mask;
    for (;;) {
      const v = s[k]!;
      if (v === a) return true;
      if (v === 0) return false;
      k = (k + 1) & mask;
    }
  }
}
