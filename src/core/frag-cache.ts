/**
 * Remembers which connection the first fragment of a datagram went to, so the
 * later fragments (which carry no ports) follow it. ulvs does not reassemble;
 * the kernel does (c.7), this is the userspace trade-off: a fixed direct-mapped
 * table keyed by (saddr, daddr, IP id, protocol), overwritten on collision,
 * entries valid for FRAG_TTL seconds.
 */
const SLOTS = 4096; // power of two
const FRAG_TTL = 30; // seconds, like the kernel's ipfrag_time default

export class FragCache {
  // Interleaved record per slot: saddr-fold, daddr-fold, id, proto, connId+1, expiry.
  private readonly rec = new Float64Array(SLOTS * 6);

  private slot(sfold: number, dfold: number, id: number, proto: number): number {
    let h = Math.imul(sfold ^ Math.imul(dfold, 0x9e3779b1), 0x85ebca6b) ^ id ^ (proto << 24);
    h ^= h >>> 15;
    return (h & (SLOTS - 1)) * 6;
  }

  remember(sfold: number, dfold: number, id: number, proto: number, connId: number, now: number): void {
    const s = this.slot(sfold, dfold, id, proto);
    const r = this.rec;
    r[s] = sfold; r[s + 1] = dfold; r[s + 2] = id; r[s + 3] = proto; r[s + 4] = connId + 1; r[s + 5] = now + FRAG_TTL;
  }

  /** The connection id of the datagram's first fragment, or -1. */
  find(sfold: number, dfold: number, id: number, proto: number, now: number): number {
    const s = this.slot(sfold, dfold, id, proto);
    const r = this.rec;
    if (r[s] === sfold && r[s + 1] === dfold && r[s + 2] === id && r[s + 3] === proto && r[s + 5]! >= now) return r[s + 4]! - 1;
    return -1;
  }
}
