/**
 * The C reference (nat-ref.c): built with the system compiler (`cc -O2`, or $CC)
 * into a temporary directory the first time it is asked for, then run with the
 * same connection count and table size as the JavaScript case it is compared
 * with. No compiler: `build()` returns the reason and the bench says so.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CRefResult {
  /** Per packet, with the batch prefetch FastPath.prepare also does. */
  nsPerPacket: number;
  /** Per packet, one frame after the other (no prefetch). */
  plainNsPerPacket: number;
  refillNsPerPacket: number;
}

/** nat-ref.c: next to this file in the sources, two levels up from dist/native-free-bench. */
function sourcePath(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const p of [join(here, 'nat-ref.c'), resolve(here, '../../native-free-bench/nat-ref.c')]) {
    if (existsSync(p)) return p;
  }
  return null;
}

export class CRef {
  private exe: string | null = null;
  private dir: string | null = null;
  /** Why there is no C reference (null once built). */
  missing: string | null = 'not built';

  /** Compiles nat-ref.c; returns false (and sets `missing`) when it cannot. */
  build(): boolean {
    if (this.exe !== null) return true;
    const src = sourcePath();
    if (src === null) { this.missing = 'nat-ref.c not found'; return false; }
    const cc = process.env.CC ?? 'cc';
    this.dir = mkdtempSync(join(tmpdir(), 'ulvs-cref-'));
    const exe = join(this.dir, 'nat-ref');
    const r = spawnSync(cc, ['-O2', '-o', exe, src], { encoding: 'utf8' });
    if (r.error !== undefined || r.status !== 0) {
      this.missing = r.error !== undefined ? `no C compiler (${cc}: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`
        : `${cc} failed: ${r.stderr.trim().split('\n')[0] ?? ''}`;
      this.cleanup();
      return false;
    }
    this.exe = exe;
    this.missing = null;
    return true;
  }

  /** Runs both variants; null when not built or the run failed. */
  run(conns: number, packets: number, capacity: number, runs: number): CRefResult | null {
    if (this.exe === null) return null;
    const one = (prefetch: number): { ns: number; refill: number } | null => {
      const r = spawnSync(this.exe!, [String(conns), String(packets), String(capacity), String(runs), String(prefetch)],
        { encoding: 'utf8', maxBuffer: 1 << 20 });
      if (r.status !== 0) return null;
      const j = JSON.parse(r.stdout.trim()) as { ns_per_packet: number; refill_ns_per_packet: number };
      return { ns: j.ns_per_packet, refill: j.refill_ns_per_packet };
    };
    const pf = one(1);
    const plain = one(0);
    if (pf === null || plain === null) return null;
    return { nsPerPacket: pf.ns, plainNsPerPacket: plain.ns, refillNsPerPacket: pf.refill };
  }

  cleanup(): void {
    if (this.dir !== null) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
    this.exe = null;
  }
}
