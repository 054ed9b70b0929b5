/**
 * All IPVS state of one network namespace except connections: the virtual
 * services and their real servers ("dests"), the dest trash, timeouts, sysctls,
 * global stats and the rate estimator (kernel ip_vs_ctl.c's service/dest
 * management). Operations validate like the kernel and fail with the kernel's
 * errno (CtlError); see docs in each method for the order of checks.
 *
 * The data plane reads this table between control-plane changes: findService()
 * and findRealServer() are allocation-free, services and dests are reachable by
 * integer id (serviceById/destById, stored in the connection table), and
 * `version` is bumped on every change so per-dest caches can be refreshed.
 */
import { CtlError, type Errno, type Info, type ServiceEntry, type Timeouts } from '../ctl/types.js';
import type { SchedEnv, Scheduler } from '../sched/types.js';
import { getScheduler as registryGetScheduler } from '../sched/registry.js';
import { Estimator, zeroStats } from '../est/estimator.js';
import { IP4_ANY, IP6_ANY, type IpAddr } from '../util/ip.js';
import { destAddrAcceptable, type AddrHooks } from './addr-class.js';
import { RealServerIndex, ServiceIndex } from './lookup.js';
import { Xorshift32 } from './rng.js';
import { serviceEntry } from './snapshot.js';
import { defaultSysctls, estimationStopped, INT_MAX, MAX_JIFFIES_SECONDS, setSysctl, type SysctlName, type Sysctls } from './sysctl.js';
import {
  DEST_F_AVAILABLE, DEST_F_OVERLOAD, FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, PROTO_SCTP, PROTO_TCP, PROTO_UDP,
  SVC_F_HASHED, TUN_GRE, TUN_GUE, newStats, type Dest, type Service, type Stats,
} from './types.js';

/** Identifies a service: (af, protocol, addr, port) or, when fwmark != 0, (af, fwmark). */
export interface SvcKey {
  af: 4 | 6;
  protocol: number;
  addr: IpAddr;
  port: number;
  fwmark: number;
}

/** add/edit service arguments (ip_vs_service_user_kern). */
export interface SvcConfig extends SvcKey {
  schedName: string;
  flags: number;
  /** Persistence timeout, seconds. */
  timeout: number;
  /** IPv4: mask as uint32. IPv6: prefix length (1..128). */
  netmask: number;
  /** Persistence engine name, or null / '' for none. */
  pe: string | null;
}

/** Identifies a dest inside a service. */
export interface DestKey {
  af: 4 | 6;
  addr: IpAddr;
  port: number;
}

/** add/edit dest arguments (ip_vs_dest_user_kern). */
export interface DestConfig extends DestKey {
  fwdMethod: number;
  weight: number;
  uThreshold: number;
  lThreshold: number;
  tunType: number;
  tunPort: number;
  tunFlags: number;
}

/** Where the three user-settable timeouts live (the connection layer's protocol tables). */
export interface TimeoutStore {
  get(): Timeouts;
  set(t: Timeouts): void;
}

/** Kernel defaults: TCP established 900 s, TCP FIN_WAIT 120 s, UDP 300 s. */
export const DEFAULT_TIMEOUTS: Readonly<Timeouts> = Object.freeze({ tcp: 900, tcpFin: 120, udp: 300 });

/** A TimeoutStore that only remembers the values (for a table used without a connection layer). */
export function memoryTimeoutStore(initial: Timeouts = DEFAULT_TIMEOUTS): TimeoutStore {
  let cur: Timeouts = { ...initial };
  return { get: () => ({ ...cur }), set: (t) => { cur = { ...t }; } };
}

/** Adapts the connection layer's protocol timeout tables (conn/timeouts.ts `Timeouts`: getUser/setUser). */
export function timeoutStoreOf(t: { getUser(): Timeouts; setUser(tcp: number, tcpFin: number, udp: number): boolean }): TimeoutStore {
  return { get: () => t.getUser(), set: (x) => { t.setUser(x.tcp, x.tcpFin, x.udp); } };
}

/** IP_VS_VERSION_CODE for 1.2.1. */
export const IP_VS_VERSION_CODE = 0x010201;
/** IP_VS_DEST_TRASH_PERIOD: an unreferenced trashed dest is freed after this many idle seconds. */
export const DEST_TRASH_PERIOD = 120;
/** IP_VS_SCHEDNAME_MAXLEN - 1 and IP_VS_PENAME_MAXLEN: longer names fail netlink validation (EINVAL). */
export const SCHEDNAME_MAX = 15;
export const PENAME_MAX = 32;
/** ipvs->sync_state bits. */
export const SYNC_STATE_MASTER = 1;
export const SYNC_STATE_BACKUP = 2;

const FTPPORT = 21;
const FTPDATA = 20;

export interface IpvsTableOptions {
  /** Engine clock in seconds (SchedEnv.now, trash timestamps, estimator start). Default: monotonic. */
  now?: () => number;
  sysctls?: Sysctls;
  timeouts?: TimeoutStore;
  estimator?: Estimator;
  /** Scheduler lookup by ipvsadm name; default: src/sched/registry.ts. */
  getScheduler?: (name: string) => Scheduler | null | undefined;
  /** Known persistence engines (the kernel has ip_vs_pe_sip). */
  persistenceEngines?: readonly string[];
  addrHooks?: AddrHooks;
  /** Seed of SchedEnv.random32. */
  seed?: number;
  /** Connection table size reported by info() (the kernel's default 2^12). */
  connTabSize?: number;
  /** net.ipv4.ip_unprivileged_port_start (FTP data lookup, b.8). */
  unprivilegedPortStart?: number;
}

function fail(errno: Errno, msg: string): never {
  throw new CtlError(errno, msg);
}

function isU16(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff;
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function sameAddr(a: IpAddr, b: IpAddr): boolean {
  return a.af === b.af && a.w0 === b.w0 && a.w1 === b.w1 && a.w2 === b.w2 && a.w3 === b.w3;
}

function defaultClock(): () => number {
  const t0 = process.hrtime.bigint();
  return () => Number(process.hrtime.bigint() - t0) / 1e9;
}

/** The kernel's ip_vs_svc_hashkey / ip_vs_svc_fwm_hashkey with the netns pointer taken as 0. */
function kernelBucket(svc: Service): number {
  if (svc.fwmark !== 0) return svc.fwmark & 0xff;
  const a = svc.addr;
  const fold = a.af === 4 ? a.w0 : (a.w0 ^ a.w1 ^ a.w2 ^ a.w3) >>> 0;
  return (svc.protocol ^ fold ^ (svc.port >>> 8) ^ svc.port) & 0xff;
}

/** A service's place in the listing: the service hash table's buckets, then the fwmark table's. */
function listBucket(svc: Service): number {
  return (svc.fwmark !== 0 ? 256 : 0) + kernelBucket(svc);
}

interface TrashEntry {
  dest: Dest;
  /** First sweep that saw it unreferenced (kernel idle_start), or -1. */
  idleSince: number;
  /** trashKey() of the dest and the service it left. */
  key: string;
}

/** Equal <=> sameAddr(); an IPv4 address (words 1-3 zero) is its bare number, without a colon. */
function addrKey(a: IpAddr): string {
  if (a.af === 4 && a.w1 === 0 && a.w2 === 0 && a.w3 === 0) return String(a.w0);
  return `${a.af}:${a.w0}:${a.w1}:${a.w2}:${a.w3}`;
}

/**
 * What ip_vs_trash_get_dest compares, as one string: the dest's address and port,
 * and its service's identity (fwmark and protocol; for other services also address
 * and port). Equal keys <=> the kernel's test matches.
 */
function trashKey(svc: Service, addr: IpAddr, port: number): string {
  const id = svc.fwmark !== 0 ? `f${svc.fwmark}/${svc.protocol}` : `${svc.protocol}/${addrKey(svc.addr)}/${svc.port}`;
  return `${id}|${addrKey(addr)}|${port}`;
}

export class IpvsTable {
  /** Bumped on every change; the data plane refreshes its caches when it moves. */
  version = 0;
  readonly sysctls: Sysctls;
  readonly schedEnv: SchedEnv;
  /** Totals over all services (ipvs->tot_stats). */
  readonly totalStats: Stats = newStats();
  readonly estimator: Estimator;
  readonly timeouts: TimeoutStore;
  /** SYNC_STATE_* bits of the running sync daemons (mixed-family dests are refused while non-zero). */
  syncState = 0;
  /** Called after a dest left its service (deleted, or with its service); the conns may be expired. */
  onDestRemoved?: (dest: Dest) => void;
  /** Called after a service was deleted (its dests were reported first). */
  onServiceRemoved?: (svc: Service) => void;

  private readonly clock: () => number;
  private readonly lookupScheduler: (name: string) => Scheduler | null | undefined;
  private readonly pes: ReadonlySet<string>;
  private readonly addrHooks: AddrHooks;
  private readonly rng: Xorshift32;
  private readonly connTabSize: number;
  private readonly unprivPort: number;
  private readonly index = new ServiceIndex();
  private readonly rsIndex = new RealServerIndex();
  /** Linked services, with the order they were hashed in (the listing order itself is kept in `buckets`). */
  private readonly live = new Map<Service, number>();
  private hashSeq = 0;
  /**
   * Linked services by listing position, each list newest first: [0, 256) the kernel's
   * service hash buckets, [256, 512) its fwmark buckets. services() concatenates them
   * rather than sorting every service, which the data plane did after every change.
   */
  private readonly buckets: Service[][] = Array.from({ length: 512 }, () => []);
  private ftpCount = 0;
  private nullCount = 0;
  private fwmCount = 0;
  private mixed = 0;
  private readonly svcReg: (Service | undefined)[] = [];
  private readonly svcFree: number[] = [];
  private readonly destReg: (Dest | undefined)[] = [];
  private readonly destFree: number[] = [];
  /**
   * The trash, oldest first (the kernel's dest_trash list read backwards). A Set and an
   * index by trashKey rather than a list to walk: after `ipvsadm -C` it holds every dest
   * of the old table, and re-adding them (`-R`) looked each one up by a linear scan.
   */
  private readonly trash = new Set<TrashEntry>();
  /** Trash entries by trashKey, oldest first. */
  private readonly trashIndex = new Map<string, TrashEntry[]>();
  /** Deleted services still referenced (by connections or trashed dests). */
  private readonly zombies = new Set<Service>();

  constructor(opts: IpvsTableOptions = {}) {
    this.clock = opts.now ?? defaultClock();
    this.sysctls = opts.sysctls ?? defaultSysctls();
    this.timeouts = opts.timeouts ?? memoryTimeoutStore();
    this.estimator = opts.estimator ?? new Estimator();
    this.lookupScheduler = opts.getScheduler ?? registryGetScheduler;
    this.pes = new Set(opts.persistenceEngines ?? ['sip']);
    this.addrHooks = opts.addrHooks ?? {};
    this.rng = new Xorshift32(opts.seed);
    this.connTabSize = opts.connTabSize ?? 4096;
    this.unprivPort = opts.unprivilegedPortStart ?? 1024;
    const sysctls = this.sysctls;
    const rng = this.rng;
    const clock = this.clock;
    this.schedEnv = {
      now: clock,
      random32: () => rng.next(),
      get lblcExpiration() { return sysctls.lblc_expiration; },
      get lblcrExpiration() { return sysctls.lblcr_expiration; },
    };
    // The kernel estimates the totals from netns creation; its estimator starts with the first service.
    this.estimator.add(this.totalStats);
    this.estimator.suspended = estimationStopped(this.sysctls);
  }

  // ------------------------------------------------------------------ data-plane lookups

  /**
   * ip_vs_service_find (b.8): the fwmark table first (when the packet has a mark),
   * then <af, protocol, vaddr, vport>, then the FTP service for TCP data ports
   * (20 or unprivileged), then the port-zero service. IPv4 reads daddr[0] only;
   * af is PacketInfo's (a non-IP 0 matches nothing).
   */
  findService(af: number, protocol: number, daddr: Uint32Array, dport: number, fwmark: number): Service | null {
    if (fwmark !== 0 && this.fwmCount !== 0) {
      const s = this.index.findFwmark(af, fwmark);
      if (s !== null) return s;
    }
    let s = this.index.findExact(af, protocol, daddr, dport);
    if (s === null && protocol === PROTO_TCP && this.ftpCount !== 0 && (dport === FTPDATA || dport >= this.unprivPort)) {
      s = this.index.findExact(af, protocol, daddr, FTPPORT);
    }
    if (s === null && this.nullCount !== 0) s = this.index.findExact(af, protocol, daddr, 0);
    return s;
  }

  /** ip_vs_find_real_service: a masquerading dest <af, addr, port> of a <protocol> (or fwmark) service. */
  findRealServer(af: number, protocol: number, daddr: Uint32Array, dport: number): Dest | null {
    return this.rsIndex.find(af, protocol, daddr, dport);
  }

  /** A service by registry id: linked, or deleted but still referenced. */
  serviceById(id: number): Service | undefined {
    return this.svcReg[id];
  }

  /** A dest by registry id: linked, or in the trash. */
  destById(id: number): Dest | undefined {
    return this.destReg[id];
  }

  /**
   * The dests by registry id, as destById reads them, for a loop over a whole batch to hold in
   * a local (FastPath.run). Read only; the array itself is never replaced.
   */
  get destRegistry(): readonly (Dest | undefined)[] {
    return this.destReg;
  }

  // ------------------------------------------------------------------ control-plane reads

  /** Linked services in the kernel's listing order (service hash table, then fwmark table). */
  services(): Service[] {
    const out: Service[] = [];
    for (const b of this.buckets) for (let i = 0; i < b.length; i++) out.push(b[i]!);
    return out;
  }

  get numServices(): number {
    return this.live.size;
  }

  /** The linked service with this key, or null. */
  getService(key: SvcKey): Service | null {
    if (key.fwmark !== 0) return this.index.findFwmark(key.af, key.fwmark);
    if (key.addr.af !== key.af) return null;
    return this.index.findExactAddr(key.protocol, key.addr, key.port);
  }

  /** Dests parked in the trash, newest first. */
  trashedDests(): Dest[] {
    const out: Dest[] = [];
    for (const e of this.trash) out.push(e.dest);
    return out.reverse();
  }

  /** Number of linked dests whose family differs from their service's (ipvs->mixed_address_family_dests). */
  get mixedFamilyDests(): number {
    return this.mixed;
  }

  info(): Info {
    return { version: IP_VS_VERSION_CODE, connTabSize: this.connTabSize, numServices: this.live.size };
  }

  getServiceEntries(): ServiceEntry[] {
    return this.services().map((s) => serviceEntry(s));
  }

  /** One service's snapshot; ESRCH when absent. */
  getServiceEntry(key: SvcKey): ServiceEntry {
    this.checkSvcKey(key);
    return serviceEntry(this.mustFind(key));
  }

  // ------------------------------------------------------------------ services

  /**
   * ip_vs_add_service. Checks, in the kernel's order: malformed request (EINVAL,
   * EAFNOSUPPORT), service exists (EEXIST), scheduler or persistence engine
   * unknown (ENOENT), IPv6 prefix outside 1..128 (EINVAL).
   */
  addService(cfg: SvcConfig): Service {
    this.checkSvcKey(cfg);
    this.checkSvcFields(cfg);
    if (cfg.fwmark === 0 && cfg.protocol !== PROTO_TCP && cfg.protocol !== PROTO_UDP && cfg.protocol !== PROTO_SCTP) {
      fail('EINVAL', `unsupported protocol ${cfg.protocol}`);
    }
    if (this.getService(cfg) !== null) fail('EEXIST', 'service already exists');
    const sched = this.resolveScheduler(cfg.schedName);
    const pe = this.resolvePe(cfg.pe);
    this.checkNetmask(cfg);

    const fw = cfg.fwmark !== 0;
    const svc: Service = {
      id: this.allocSvcId(),
      af: cfg.af,
      protocol: fw ? 0 : cfg.protocol,
      addr: fw ? (cfg.af === 4 ? IP4_ANY : IP6_ANY) : cfg.addr,
      port: fw ? 0 : cfg.port,
      fwmark: cfg.fwmark,
      flags: (cfg.flags & ~SVC_F_HASHED) >>> 0,
      timeout: cfg.timeout,
      netmask: cfg.af === 4 ? cfg.netmask >>> 0 : cfg.netmask,
      pe,
      schedName: 'none',
      scheduler: null,
      schedData: undefined,
      dests: [],
      stats: newStats(),
      refcnt: 0,
    };
    this.svcReg[svc.id] = svc;
    if (sched !== null) {
      try {
        this.bindScheduler(svc, sched);
      } catch (e) {
        this.svcReg[svc.id] = undefined;
        this.svcFree.push(svc.id);
        throw e;
      }
    }
    this.estimator.add(svc.stats);
    if (svc.port === FTPPORT) this.ftpCount++;
    else if (svc.port === 0 && !fw) this.nullCount++;
    if (fw) this.fwmCount++;
    this.index.add(svc);
    this.live.set(svc, this.hashSeq++);
    this.buckets[listBucket(svc)]!.unshift(svc); // hlist_add_head: newest first within a bucket
    svc.flags |= SVC_F_HASHED;
    // Estimation starts when the first service appears in the namespace.
    this.estimator.start(this.clock());
    this.version++;
    return svc;
  }

  /**
   * ip_vs_edit_service: a full replacement of scheduler, flags, timeout, netmask
   * and persistence engine. A different scheduler is unbound (done) and the new
   * one bound (init); the same name keeps its state. Errors: ESRCH, ENOENT, EINVAL.
   */
  editService(cfg: SvcConfig): void {
    this.checkSvcKey(cfg);
    this.checkSvcFields(cfg);
    const svc = this.mustFind(cfg);
    const sched = this.resolveScheduler(cfg.schedName);
    const pe = this.resolvePe(cfg.pe);
    this.checkNetmask(cfg);
    const newName = sched === null ? 'none' : sched.name;
    if (newName !== svc.schedName) {
      if (svc.scheduler !== null) this.unbindScheduler(svc);
      if (sched !== null) {
        try {
          this.bindScheduler(svc, sched);
        } catch (e) {
          // Like the kernel, the service is left without a scheduler.
          this.version++;
          throw e;
        }
      }
    }
    svc.flags = (cfg.flags | SVC_F_HASHED) >>> 0;
    svc.timeout = cfg.timeout;
    svc.netmask = cfg.af === 4 ? cfg.netmask >>> 0 : cfg.netmask;
    svc.pe = pe;
    this.version++;
  }

  /** ip_vs_del_service: ESRCH when absent. Dests go to the trash. */
  delService(key: SvcKey): void {
    this.checkSvcKey(key);
    this.unlinkService(this.mustFind(key));
  }

  /** ip_vs_flush: deletes every service. */
  flush(): void {
    for (const svc of this.services()) this.unlinkService(svc);
  }

  // ------------------------------------------------------------------ dests

  /**
   * ip_vs_add_dest. Checks, in the kernel's order: service (ESRCH), malformed
   * request (EINVAL, EAFNOSUPPORT), a family different from the service's only
   * for tunnel dests and only while no sync daemon runs (EINVAL), negative
   * weight or l_threshold > u_threshold (ERANGE), GUE without a port (EINVAL),
   * dest exists (EEXIST), then a matching trashed dest is revived with its
   * counters, else the address must be unicast or local (EINVAL).
   */
  addDest(key: SvcKey, dc: DestConfig): Dest {
    this.checkSvcKey(key);
    const svc = this.mustFind(key, 'service not defined');
    this.checkDestKey(dc);
    this.checkDestFields(dc);
    this.checkMixedFamily(svc, dc);
    this.checkDestRanges(dc);
    if (this.findDestIn(svc, dc) !== null) fail('EEXIST', 'destination already exists');
    let dest = this.takeFromTrash(svc, dc);
    if (dest === null) {
      if (!destAddrAcceptable(dc.addr, this.addrHooks)) fail('EINVAL', 'destination address is not unicast');
      dest = this.newDest(svc, dc);
    }
    this.estimator.add(dest.stats);
    this.updateDest(svc, dest, dc, true);
    return dest;
  }

  /** ip_vs_edit_dest: same checks as addDest, ENOENT when the dest is not in the service. */
  editDest(key: SvcKey, dc: DestConfig): void {
    this.checkSvcKey(key);
    const svc = this.mustFind(key, 'service not defined');
    this.checkDestKey(dc);
    this.checkDestFields(dc);
    this.checkMixedFamily(svc, dc);
    this.checkDestRanges(dc);
    const dest = this.findDestIn(svc, dc);
    if (dest === null) fail('ENOENT', 'no such destination');
    this.updateDest(svc, dest, dc, false);
  }

  /** ip_vs_del_dest: ESRCH, ENOENT. The dest is unlinked (scheduler delDest) and parked in the trash. */
  delDest(key: SvcKey, dk: DestKey): void {
    this.checkSvcKey(key);
    const svc = this.mustFind(key, 'service not defined');
    this.checkDestKey(dk);
    const dest = this.findDestIn(svc, dk);
    if (dest === null) fail('ENOENT', 'no such destination');
    const idx = svc.dests.indexOf(dest);
    svc.dests.splice(idx, 1);
    dest.flags &= ~DEST_F_AVAILABLE;
    if (dest.addr.af !== svc.af) this.mixed--;
    svc.scheduler?.delDest?.(svc, dest, idx, this.schedEnv);
    this.trashDest(dest);
    this.version++;
    this.onDestRemoved?.(dest);
  }

  // ------------------------------------------------------------------ stats, timeouts, sysctls

  /**
   * ip_vs_zero_service / ip_vs_zero_all: counters get a new zero point and the
   * rate estimates restart. null zeroes every service, its dests and the totals.
   */
  zero(key: SvcKey | null): void {
    if (key === null) {
      for (const svc of this.live.keys()) this.zeroService(svc);
      zeroStats(this.totalStats);
    } else {
      this.checkSvcKey(key);
      this.zeroService(this.mustFind(key));
    }
    this.version++;
  }

  /** ip_vs_set_timeout: 0 keeps a value; negative or above INT_MAX/HZ rejects the whole request (EINVAL). */
  setTimeouts(t: Timeouts): void {
    const bad = (v: number) => !Number.isInteger(v) || v < 0 || v > MAX_JIFFIES_SECONDS;
    if (bad(t.tcp) || bad(t.tcpFin) || bad(t.udp)) fail('EINVAL', 'timeout out of range');
    const cur = this.timeouts.get();
    this.timeouts.set({ tcp: t.tcp || cur.tcp, tcpFin: t.tcpFin || cur.tcpFin, udp: t.udp || cur.udp });
    this.version++;
  }

  getTimeouts(): Timeouts {
    return this.timeouts.get();
  }

  /** Writes one sysctl with the kernel's validation (EINVAL); applies estimator suspension at once. */
  setSysctl<K extends SysctlName>(name: K, value: Sysctls[K]): void {
    setSysctl(this.sysctls, name, value);
    this.estimator.suspended = estimationStopped(this.sysctls);
    this.version++;
  }

  // ------------------------------------------------------------------ periodic work

  /**
   * Control-plane housekeeping, to be called about once a second with the engine
   * clock: rate estimation (every 2 s), scheduler upkeep (lblc/lblcr expiry), and
   * freeing trashed dests idle for DEST_TRASH_PERIOD and deleted services nobody references.
   */
  tick(now: number): void {
    this.estimator.suspended = estimationStopped(this.sysctls);
    this.estimator.tick(now);
    for (const svc of this.live.keys()) {
      const s = svc.scheduler;
      if (s !== null && s.tick !== undefined) s.tick(svc, this.schedEnv);
    }
    this.sweep(now);
  }

  private sweep(now: number): void {
    let freed = false;
    for (const e of this.trash) { // oldest first, like the kernel's walk
      if (e.dest.refcnt > 0) continue;
      if (e.idleSince < 0) {
        e.idleSince = now;
        continue;
      }
      if (now < e.idleSince + DEST_TRASH_PERIOD) continue;
      this.untrash(e);
      this.destReg[e.dest.id] = undefined;
      this.destFree.push(e.dest.id);
      freed = true;
    }
    if (this.zombies.size !== 0) {
      const held = new Set<Service>();
      for (const e of this.trash) held.add(e.dest.svc);
      for (const svc of this.zombies) {
        if (svc.refcnt > 0 || held.has(svc)) continue;
        this.zombies.delete(svc);
        this.svcReg[svc.id] = undefined;
        this.svcFree.push(svc.id);
        freed = true;
      }
    }
    if (freed) this.version++;
  }

  // ------------------------------------------------------------------ internals

  private allocSvcId(): number {
    return this.svcFree.length !== 0 ? this.svcFree.pop()! : this.svcReg.length;
  }

  private allocDestId(): number {
    return this.destFree.length !== 0 ? this.destFree.pop()! : this.destReg.length;
  }

  private mustFind(key: SvcKey, msg = 'no such service'): Service {
    const svc = this.getService(key);
    if (svc === null) fail('ESRCH', msg);
    return svc;
  }

  /** What a netlink service attribute set can carry (ip_vs_genl_parse_service). */
  private checkSvcKey(k: SvcKey): void {
    if (k.af !== 4 && k.af !== 6) fail('EAFNOSUPPORT', 'address family not supported');
    if (!isU32(k.fwmark)) fail('EINVAL', 'bad fwmark');
    if (k.fwmark !== 0) return;
    if (!isU16(k.protocol)) fail('EINVAL', 'bad protocol');
    if (!isU16(k.port)) fail('EINVAL', 'bad port');
    if (k.addr.af !== k.af) fail('EINVAL', 'address family mismatch');
  }

  private checkSvcFields(c: SvcConfig): void {
    if (typeof c.schedName !== 'string' || c.schedName.length > SCHEDNAME_MAX) fail('EINVAL', 'bad scheduler name');
    if (c.pe !== null && (typeof c.pe !== 'string' || c.pe.length > PENAME_MAX)) fail('EINVAL', 'bad persistence engine name');
    if (!isU32(c.flags)) fail('EINVAL', 'bad flags');
    if (!isU32(c.timeout)) fail('EINVAL', 'bad timeout');
    if (!isU32(c.netmask)) fail('EINVAL', 'bad netmask');
  }

  /** IPv6 services take a prefix length of 1..128 (EINVAL); an IPv4 mask is not checked by the kernel. */
  private checkNetmask(c: SvcConfig): void {
    if (c.af === 6 && (c.netmask < 1 || c.netmask > 128)) fail('EINVAL', 'IPv6 prefix length out of range');
  }

  /** "none" is no scheduler; an unknown name is ENOENT ("Scheduler or persistence engine not found"). */
  private resolveScheduler(name: string): Scheduler | null {
    if (name === 'none') return null;
    const s = this.lookupScheduler(name);
    if (s === null || s === undefined) fail('ENOENT', `scheduler ${name} not found`);
    return s;
  }

  private resolvePe(name: string | null): string | null {
    if (name === null || name === '') return null;
    if (!this.pes.has(name)) fail('ENOENT', `persistence engine ${name} not found`);
    return name;
  }

  /** ip_vs_bind_scheduler: init_service first; the scheduler is attached only if it succeeds. */
  private bindScheduler(svc: Service, sched: Scheduler): void {
    svc.schedData = undefined;
    sched.init?.(svc, this.schedEnv);
    svc.scheduler = sched;
    svc.schedName = sched.name;
  }

  private unbindScheduler(svc: Service): void {
    const s = svc.scheduler;
    if (s === null) return;
    s.done?.(svc);
    svc.scheduler = null;
    svc.schedData = undefined;
    svc.schedName = 'none';
  }

  private unlinkService(svc: Service): void {
    this.index.remove(svc);
    this.live.delete(svc);
    const bucket = this.buckets[listBucket(svc)]!;
    bucket.splice(bucket.indexOf(svc), 1);
    svc.flags &= ~SVC_F_HASHED;
    if (svc.port === FTPPORT) this.ftpCount--;
    else if (svc.port === 0 && svc.fwmark === 0) this.nullCount--;
    if (svc.fwmark !== 0) this.fwmCount--;
    this.estimator.remove(svc.stats);
    // The kernel unbinds the scheduler first, then unlinks the dests without del_dest calls.
    const schedName = svc.schedName;
    this.unbindScheduler(svc);
    svc.schedName = schedName;
    const dests = svc.dests;
    svc.dests = [];
    for (const d of dests) {
      d.flags &= ~DEST_F_AVAILABLE;
      if (d.addr.af !== svc.af) this.mixed--;
      this.trashDest(d);
    }
    this.zombies.add(svc);
    this.version++;
    for (const d of dests) this.onDestRemoved?.(d);
    this.onServiceRemoved?.(svc);
  }

  private zeroService(svc: Service): void {
    for (const d of svc.dests) zeroStats(d.stats);
    zeroStats(svc.stats);
  }

  private checkDestKey(d: DestKey): void {
    if (d.af !== 4 && d.af !== 6) fail('EAFNOSUPPORT', 'address family not supported');
    if (d.addr.af !== d.af) fail('EINVAL', 'address family mismatch');
    if (!isU16(d.port)) fail('EINVAL', 'bad port');
  }

  private checkDestFields(d: DestConfig): void {
    if (!Number.isInteger(d.fwdMethod) || d.fwdMethod < FWD_MASQ || d.fwdMethod > FWD_DROUTE) fail('EINVAL', 'bad forwarding method');
    if (!Number.isInteger(d.weight)) fail('EINVAL', 'bad weight');
    if (!isU32(d.uThreshold) || !isU32(d.lThreshold)) fail('EINVAL', 'bad threshold');
    if (!Number.isInteger(d.tunType) || d.tunType < 0 || d.tunType > TUN_GRE) fail('EINVAL', 'bad tunnel type');
    if (!isU16(d.tunPort) || !isU16(d.tunFlags)) fail('EINVAL', 'bad tunnel port or flags');
  }

  /** Heterogeneous pools: only tunnels can carry the other family, and the sync protocol cannot describe them. */
  private checkMixedFamily(svc: Service, d: DestConfig): void {
    if (d.af === svc.af) return;
    if (this.syncState !== 0) fail('EINVAL', 'mixed-family dests are not allowed while a sync daemon runs');
    if (d.fwdMethod !== FWD_TUNNEL) fail('EINVAL', 'a dest of another family must use tunneling');
  }

  private checkDestRanges(d: DestConfig): void {
    // The kernel's weight is an int: a u32 above INT_MAX arrives negative.
    if (d.weight < 0 || d.weight > INT_MAX) fail('ERANGE', 'server weight less than zero');
    if (d.lThreshold > d.uThreshold) fail('ERANGE', 'lower threshold is higher than upper threshold');
    if (d.tunType === TUN_GUE && d.tunPort === 0) fail('EINVAL', 'tunnel port is zero');
  }

  private findDestIn(svc: Service, k: DestKey): Dest | null {
    for (const d of svc.dests) {
      if (d.port === k.port && sameAddr(d.addr, k.addr)) return d;
    }
    return null;
  }

  /**
   * ip_vs_trash_get_dest: a trashed dest with this address and port that belonged
   * to a service with the same identity (the same object or one re-created with the same key).
   */
  private takeFromTrash(svc: Service, k: DestKey): Dest | null {
    const list = this.trashIndex.get(trashKey(svc, k.addr, k.port));
    if (list === undefined) return null;
    // The kernel takes the first match walking from the newest.
    const e = list[list.length - 1]!;
    this.untrash(e);
    e.dest.trashedAt = 0;
    return e.dest;
  }

  private untrash(e: TrashEntry): void {
    this.trash.delete(e);
    const list = this.trashIndex.get(e.key)!;
    list.splice(list.lastIndexOf(e), 1);
    if (list.length === 0) this.trashIndex.delete(e.key);
  }

  private newDest(svc: Service, dc: DestConfig): Dest {
    const dest: Dest = {
      id: this.allocDestId(),
      svc,
      addr: dc.addr,
      port: dc.port,
      fwdMethod: FWD_MASQ,
      weight: 0,
      lastWeight: 0,
      uThreshold: 0,
      lThreshold: 0,
      flags: 0,
      activeConns: 0,
      inactConns: 0,
      persistConns: 0,
      refcnt: 0,
      tunType: 0,
      tunPort: 0,
      tunFlags: 0,
      stats: newStats(),
      trashedAt: 0,
    };
    this.destReg[dest.id] = dest;
    return dest;
  }

  /** __ip_vs_update_dest: the part of add/edit (and revival) that sets a dest's configuration. */
  private updateDest(svc: Service, dest: Dest, dc: DestConfig, add: boolean): void {
    if (add && dc.af !== svc.af) this.mixed++;
    // last_weight keeps the latest non-zero weight (set on every add).
    if (add || dc.weight !== 0) dest.lastWeight = dc.weight;
    dest.weight = dc.weight;
    if (dc.fwdMethod !== dest.fwdMethod || dc.tunType !== dest.tunType || dc.tunPort !== dest.tunPort) {
      this.rsIndex.remove(dest);
    }
    dest.fwdMethod = dc.fwdMethod;
    dest.tunType = dc.tunType;
    dest.tunPort = dc.tunPort;
    dest.tunFlags = dc.tunFlags;
    if (dest.fwdMethod === FWD_MASQ) this.rsIndex.add(dest);
    if (dest.svc !== svc) {
      // Revived into a re-created service: the kernel zeroes the dest's stats when rebinding.
      zeroStats(dest.stats);
      dest.svc = svc;
    }
    dest.flags |= DEST_F_AVAILABLE;
    // The overload flag is cleared when the upper threshold is removed or raised.
    if (dc.uThreshold === 0 || dc.uThreshold > dest.uThreshold) dest.flags &= ~DEST_F_OVERLOAD;
    dest.uThreshold = dc.uThreshold;
    dest.lThreshold = dc.lThreshold;
    if (add) {
      // Kernel list order: the newest dest is first.
      svc.dests.unshift(dest);
      svc.scheduler?.addDest?.(svc, dest, this.schedEnv);
    } else {
      svc.scheduler?.updDest?.(svc, dest, this.schedEnv);
    }
    this.version++;
  }

  private trashDest(dest: Dest): void {
    this.estimator.remove(dest.stats);
    this.rsIndex.remove(dest);
    dest.trashedAt = this.clock();
    const e: TrashEntry = { dest, idleSince: -1, key: trashKey(dest.svc, dest.addr, dest.port) };
    this.trash.add(e);
    const list = this.trashIndex.get(e.key);
    if (list === undefined) this.trashIndex.set(e.key, [e]);
    else list.push(e);
  }
}
