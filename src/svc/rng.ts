/**
 * A seedable xorshift32 generator: the random source handed to schedulers
 * (twos) through SchedEnv.random32, so tests and replays are reproducible.
 */
export class Xorshift32 {
  private s: number;

  constructor(seed = 0x2545f491) {
    // xorshift has a fixed point at 0; any other 32-bit state works.
    this.s = (seed >>> 0) || 0x2545f491;
  }

  /** Next uniform uint32. */
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }

  reseed(seed: number): void {
    this.s = (seed >>> 0) || 0x2545f491;
  }
}
