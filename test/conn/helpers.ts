/** Test fixtures for the connection table: services, dests, a dest registry, addresses, a seeded PRNG. */
import type { Dest, Service } from '../../src/svc/types.js';
import { FWD_DROUTE, FWD_MASQ, newStats } from '../../src/svc/types.js';
import type { IpAddr } from '../../src/util/ip.js';
import { ip4, ip6, parseIp4, parseIp6 } from '../../src/util/ip.js';
import { ConnTable } from '../../src/conn/table.js';
import type { DestLookup } from '../../src/conn/table.js';

export { FWD_DROUTE, FWD_MASQ };

export function makeService(id = 0, protocol = 6): Service {
  return {
    id, af: 4, protocol, addr: ip4(0x0a000001), port: 80, fwmark: 0, flags: 0, timeout: 0,
    netmask: 0xffffffff, pe: null, schedName: 'wlc', scheduler: null, schedData: null, dests: [],
    stats: newStats(), refcnt: 0,
  };
}

export interface DestOpts {
  addr?: IpAddr;
  port?: number;
  fwd?: number;
  uThreshold?: number;
  lThreshold?: number;
}

export class Registry implements DestLookup {
  readonly list: Dest[] = [];
  readonly svc = makeService();
  add(o: DestOpts = {}): Dest {
    const d: Dest = {
      id: this.list.length, svc: this.svc, addr: o.addr ?? ip4(0xc0a80a00 + this.list.length + 1),
      port: o.port ?? 8080, fwdMethod: o.fwd ?? FWD_MASQ, weight: 1, lastWeight: 1,
      uThreshold: o.uThreshold ?? 0, lThreshold: o.lThreshold ?? 0, flags: 1,
      activeConns: 0, inactConns: 0, persistConns: 0, refcnt: 0, tunType: 0, tunPort: 0, tunFlags: 0,
      stats: newStats(), trashedAt: 0,
    };
    this.list.push(d);
    return d;
  }
  destById(id: number): Dest | undefined {
    return this.list[id];
  }
}

export function table(capacity: number, reg = new Registry(), extra: { v6Capacity?: number; seed?: number } = {}): { t: ConnTable; reg: Registry } {
  return { t: new ConnTable({ capacity, dests: reg, seed: extra.seed ?? 12345, v6Capacity: extra.v6Capacity }), reg };
}

/** Address words for the API (IPv4 in word 0). */
export function a4(s: string): Uint32Array {
  const v = parseIp4(s);
  if (v === null) throw new Error(s);
  return Uint32Array.of(v, 0, 0, 0);
}

export function a6(s: string): Uint32Array {
  const v = parseIp6(s);
  if (v === null) throw new Error(s);
  return Uint32Array.from(v);
}

export function ipOf6(s: string): IpAddr {
  const v = parseIp6(s)!;
  return ip6(v[0], v[1], v[2], v[3]);
}

/** xorshift32: deterministic test data. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}
