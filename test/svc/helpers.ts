/** Shared fixtures for the svc tests: a table on a virtual clock, key/config builders, a recording scheduler. */
import { CtlError } from '../../src/ctl/types.js';
import type { Scheduler } from '../../src/sched/types.js';
import { getScheduler } from '../../src/sched/registry.js';
import { defaultSysctls } from '../../src/svc/sysctl.js';
import { IpvsTable, type DestConfig, type IpvsTableOptions, type SvcConfig, type SvcKey } from '../../src/svc/table.js';
import { FWD_DROUTE, PROTO_TCP, type Dest } from '../../src/svc/types.js';
import { formatIp, parseIp, type IpAddr } from '../../src/util/ip.js';

export function addr(s: string): IpAddr {
  const a = parseIp(s);
  if (a === null) throw new Error(`bad test address ${s}`);
  return a;
}

export function words(s: string): Uint32Array {
  const a = addr(s);
  return Uint32Array.of(a.w0, a.w1, a.w2, a.w3);
}

export class Clock {
  t = 1000;
  now = (): number => this.t;
}

export interface Recorder {
  sched: Scheduler;
  calls: string[];
}

/** A scheduler that records every callback, naming dests "addr:port@index". */
export function recorder(name = 'rec'): Recorder {
  const calls: string[] = [];
  const d = (x: Dest) => `${formatIp(x.addr)}:${x.port}`;
  const sched: Scheduler = {
    name,
    init(svc) { calls.push(`init ${svc.dests.length}`); svc.schedData = { owner: name }; },
    done(svc) { calls.push('done'); svc.schedData = null; },
    addDest(svc, dest) { calls.push(`add ${d(dest)}@${svc.dests.indexOf(dest)} n=${svc.dests.length}`); },
    delDest(svc, dest, idx) { calls.push(`del ${d(dest)}@${idx} n=${svc.dests.length}`); },
    updDest(_svc, dest) { calls.push(`upd ${d(dest)} w=${dest.weight}`); },
    schedule() { return null; },
  };
  return { sched, calls };
}

/** A table on a virtual clock whose scheduler lookup knows the real schedulers plus the given extras. */
export function makeTable(extra: Scheduler[] = [], opts: IpvsTableOptions = {}): { table: IpvsTable; clock: Clock } {
  const clock = new Clock();
  const byName = new Map(extra.map((s) => [s.name, s]));
  const table = new IpvsTable({
    now: clock.now,
    sysctls: defaultSysctls({ sync_qlen_max: 1000 }),
    getScheduler: (n) => byName.get(n) ?? getScheduler(n),
    seed: 1,
    ...opts,
  });
  return { table, clock };
}

export function tcp(a: string, port: number): SvcKey {
  const ad = addr(a);
  return { af: ad.af, protocol: PROTO_TCP, addr: ad, port, fwmark: 0 };
}

export function proto(protocol: number, a: string, port: number): SvcKey {
  const ad = addr(a);
  return { af: ad.af, protocol, addr: ad, port, fwmark: 0 };
}

export function fwm(mark: number, af: 4 | 6 = 4): SvcKey {
  return { af, protocol: 0, addr: addr(af === 4 ? '0.0.0.0' : '::'), port: 0, fwmark: mark };
}

export function svcCfg(key: SvcKey, more: Partial<SvcConfig> = {}): SvcConfig {
  return { ...key, schedName: 'wlc', flags: 0, timeout: 0, netmask: key.af === 4 ? 0xffffffff : 128, pe: null, ...more };
}

export function dst(a: string, port: number, more: Partial<DestConfig> = {}): DestConfig {
  const ad = addr(a);
  return {
    af: ad.af, addr: ad, port, fwdMethod: FWD_DROUTE, weight: 1, uThreshold: 0, lThreshold: 0,
    tunType: 0, tunPort: 0, tunFlags: 0, ...more,
  };
}

/** The errno a call fails with, or null when it succeeds. */
export function errno(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    return e instanceof CtlError ? e.errno : `not a CtlError: ${String(e)}`;
  }
}

/** Dest list as "addr:port" strings, in kernel order. */
export function destNames(table: IpvsTable, key: SvcKey): string[] {
  return table.getService(key)!.dests.map((d) => `${formatIp(d.addr)}:${d.port}`);
}
