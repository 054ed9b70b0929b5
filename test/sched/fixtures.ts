/**
 * Small builders for scheduler tests: services, dests, a deterministic SchedEnv, and the
 * control-plane steps (add/delete/edit a dest) done the way ip_vs_ctl.c does them:
 * the list is changed first (new dests at the head), then the scheduler callback runs.
 */
import type { Dest, Service } from '../../src/svc/types.js';
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD, FWD_DROUTE, PROTO_TCP, newStats } from '../../src/svc/types.js';
import type { SchedEnv, SchedPacket, Scheduler } from '../../src/sched/types.js';
import { newSchedPacket } from '../../src/sched/types.js';
import { ip4, ip6, parseIp4 } from '../../src/util/ip.js';
import type { IpAddr } from '../../src/util/ip.js';

let nextId = 1;

export function addr4(s: string): number {
  const v = parseIp4(s);
  if (v === null) throw new Error(`bad IPv4 ${s}`);
  return v;
}

export interface SvcOpts {
  af?: 4 | 6;
  protocol?: number;
  flags?: number;
  port?: number;
}

export function mkService(sched: Scheduler, opts: SvcOpts = {}): Service {
  const af = opts.af ?? 4;
  return {
    id: nextId++,
    af,
    protocol: opts.protocol ?? PROTO_TCP,
    addr: af === 4 ? ip4(addr4('192.0.2.1')) : ip6(0x20010db8, 0, 0, 1),
    port: opts.port ?? 80,
    fwmark: 0,
    flags: opts.flags ?? 0,
    timeout: 0,
    netmask: af === 4 ? 0xffffffff : 128,
    pe: null,
    schedName: sched.name,
    scheduler: sched,
    schedData: null,
    dests: [],
    stats: newStats(),
    refcnt: 0,
  };
}

/** Readable names for dests in assertions. */
const labels = new WeakMap<Dest, string>();
export function label(d: Dest | null): string {
  return d === null ? 'null' : (labels.get(d) ?? '?');
}

export interface DestOpts {
  weight?: number;
  active?: number;
  inact?: number;
  overloaded?: boolean;
  addr?: IpAddr;
  port?: number;
}

let nextHost = 1;

/** A dest object, not yet linked into the service. */
export function mkDest(svc: Service, name: string, opts: DestOpts = {}): Dest {
  const weight = opts.weight ?? 1;
  const host = nextHost++;
  const d: Dest = {
    id: nextId++,
    svc,
    addr: opts.addr ?? (svc.af === 4 ? ip4((addr4('10.1.0.0') + host) >>> 0) : ip6(0x20010db8, 1, 0, host)),
    port: opts.port ?? 8080,
    fwdMethod: FWD_DROUTE,
    weight,
    lastWeight: weight,
    uThreshold: 0,
    lThreshold: 0,
    flags: opts.overloaded ? DEST_F_OVERLOAD : 0,
    activeConns: opts.active ?? 0,
    inactConns: opts.inact ?? 0,
    persistConns: 0,
    refcnt: 0,
    tunType: 0,
    tunPort: 0,
    tunFlags: 0,
    stats: newStats(),
    trashedAt: 0,
  };
  labels.set(d, name);
  return d;
}

/** `ipvsadm -a`: link at the list head, mark AVAILABLE, then call add_dest. */
export function addDest(svc: Service, d: Dest, env: SchedEnv): Dest {
  svc.dests.unshift(d);
  d.flags |= DEST_F_AVAILABLE;
  d.lastWeight = d.weight;
  svc.scheduler?.addDest?.(svc, d, env);
  return d;
}

/** Create and add dests one after the other (so the list ends up in reverse order). */
export function addDests(svc: Service, env: SchedEnv, specs: [string, DestOpts?][]): Dest[] {
  return specs.map(([name, o]) => addDest(svc, mkDest(svc, name, o), env));
}

/** Put dests into the list in the given order without add callbacks (for a fresh init()). */
export function setDests(svc: Service, specs: [string, DestOpts?][]): Dest[] {
  const ds = specs.map(([name, o]) => mkDest(svc, name, o));
  for (const d of ds) d.flags |= DEST_F_AVAILABLE;
  svc.dests = ds.slice();
  return ds;
}

/** `ipvsadm -d`: unlink, clear AVAILABLE, then call del_dest with the old position. */
export function delDest(svc: Service, d: Dest, env: SchedEnv): void {
  const i = svc.dests.indexOf(d);
  if (i < 0) throw new Error('dest not in service');
  svc.dests.splice(i, 1);
  d.flags &= ~DEST_F_AVAILABLE;
  svc.scheduler?.delDest?.(svc, d, i, env);
}

/** `ipvsadm -e`: last_weight keeps the latest non-zero weight; then upd_dest. */
export function editDest(svc: Service, d: Dest, weight: number, env: SchedEnv): void {
  if (weight !== 0) d.lastWeight = weight;
  d.weight = weight;
  svc.scheduler?.updDest?.(svc, d, env);
}

export function setOverloaded(d: Dest, on: boolean): void {
  if (on) d.flags |= DEST_F_OVERLOAD;
  else d.flags &= ~DEST_F_OVERLOAD;
}

export interface TestEnv extends SchedEnv {
  /** Virtual clock, seconds. */
  t: number;
  /** Messages passed to schedError, in order. */
  errors: string[];
  /** Values random32() returns first, before the seeded generator. */
  script: number[];
  /** How many times random32() was called. */
  randomCalls: number;
}

/** A deterministic env: virtual clock, xorshift32 random source, recorded scheduler errors. */
export function mkEnv(opts: { now?: number; seed?: number; lblcExpiration?: number; lblcrExpiration?: number } = {}): TestEnv {
  let x = (opts.seed ?? 0x2545f491) >>> 0 || 1;
  const env: TestEnv = {
    t: opts.now ?? 1000,
    errors: [],
    script: [],
    randomCalls: 0,
    lblcExpiration: opts.lblcExpiration ?? 24 * 60 * 60,
    lblcrExpiration: opts.lblcrExpiration ?? 24 * 60 * 60,
    now() {
      return env.t;
    },
    random32() {
      env.randomCalls++;
      const s = env.script.shift();
      if (s !== undefined) return s >>> 0;
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      return x;
    },
    schedError(_svc: Service, msg: string) {
      env.errors.push(msg);
    },
  };
  return env;
}

/** A packet from client `src` (port sport) to `dst`. */
export function pkt4(src: string, dst = '192.0.2.1', sport = 40000, dport = 80, protocol = PROTO_TCP): SchedPacket {
  const p = newSchedPacket();
  p.af = 4;
  p.protocol = protocol;
  p.saddr[0] = addr4(src);
  p.daddr[0] = addr4(dst);
  p.sport = sport;
  p.dport = dport;
  return p;
}

/** Run `n` schedules and return the picked dests' labels. */
export function picks(svc: Service, env: SchedEnv, n: number, p: SchedPacket = pkt4('198.51.100.1')): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(label(svc.scheduler!.schedule(svc, p, env)));
  return out;
}

export function initSched(svc: Service, env: SchedEnv): void {
  svc.scheduler!.init?.(svc, env);
}
