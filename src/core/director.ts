/**
 * One director: the IPVS state of a network namespace (services and dests, the
 * fwmark classifier, the connection table, sysctls, timeouts, the estimator) plus
 * the engine that forwards frames, and the in-process control API over all of it.
 * `ulvs replay`, the benchmarks, the tests and the daemon all build one of these.
 *
 * Time is one injectable clock in seconds (DESIGN rule 5): `setClock` for replay
 * (pcap timestamps) and tests, the daemon advances it from a monotonic source.
 */
import { IpvsTable } from '../svc/table.js';
import { LocalIpvsApi, type LocalIpvsApiOptions } from '../svc/local-api.js';
import { FwmarkClassifier } from '../svc/fwmark.js';
import { ConnTable } from '../conn/table.js';
import { Timeouts as ConnTimeouts } from '../conn/timeouts.js';
import { CtlError, type ConnEntry, type Timeouts } from '../ctl/types.js';
import { Engine } from './engine.js';
import type { NextHopResolver } from '../neigh/static.js';
import { listConnections } from './conn-listing.js';
import { R_OVERSIZE } from './reasons.js';

export interface DirectorOptions {
  mac: Uint8Array;
  ip4: number;
  ip6?: Uint32Array;
  neigh: NextHopResolver;
  /** Connection table capacity (entries incl. templates). Default 1 << 20. */
  capacity?: number;
  /** Seed for the schedulers' random source (twos) and the connection hash. */
  seed?: number;
  mtu?: number;
  arpForOwnIp?: boolean;
  /** Sync-daemon hooks, interface checks etc. for the control API. */
  api?: Omit<LocalIpvsApiOptions, 'marks' | 'listConnections'>;
}

export class Director {
  readonly table: IpvsTable;
  readonly marks: FwmarkClassifier;
  readonly conns: ConnTable;
  readonly connTimeouts: ConnTimeouts;
  readonly engine: Engine;
  readonly api: LocalIpvsApi;
  private clock = 0;

  constructor(opts: DirectorOptions) {
    const connTimeouts = new ConnTimeouts();
    this.connTimeouts = connTimeouts;
    // `ipvsadm --set` writes the three user timeouts into the state machines' tables.
    const timeoutStore = {
      get: (): Timeouts => connTimeouts.getUser(),
      set: (t: Timeouts): void => {
        if (!connTimeouts.setUser(t.tcp, t.tcpFin, t.udp)) throw new CtlError('EINVAL', 'timeout out of range');
      },
    };
    const capacity = opts.capacity ?? 1 << 20;
    this.table = new IpvsTable({
      now: () => this.clock,
      timeouts: timeoutStore,
      seed: opts.seed ?? 1,
      connTabSize: 4096,
    });
    this.marks = new FwmarkClassifier();
    this.conns = new ConnTable({ capacity, dests: this.table, timeouts: connTimeouts, seed: opts.seed ?? 1 });
    this.engine = new Engine({
      table: this.table, marks: this.marks, conns: this.conns, sysctls: this.table.sysctls, neigh: opts.neigh,
      mac: opts.mac, ip4: opts.ip4, ip6: opts.ip6, mtu: opts.mtu, arpForOwnIp: opts.arpForOwnIp,
    });
    this.api = new LocalIpvsApi(this.table, {
      ...(opts.api ?? {}),
      marks: this.marks,
      listConnections: (): ConnEntry[] => listConnections(this.conns, this.clock),
    });
    // expire_nodest_conn: deleting a dest expires its connections (the kernel queues this work).
    this.table.onDestRemoved = (dest) => {
      if (this.table.sysctls.expire_nodest_conn !== 0) this.conns.expireByDest(dest.id, this.clock);
    };
  }

  get now(): number {
    return this.clock;
  }

  /** Sets the clock without running timers (start of a replay, tests). */
  setClock(now: number): void {
    this.clock = now;
    this.engine.now = now;
  }

  /** Advances the clock and runs everything due: connection expiry, trash, lblc/lblcr GC, estimator. */
  tick(now: number): void {
    if (now < this.clock) now = this.clock;
    this.clock = now;
    this.engine.tick(now);
    this.table.tick(now);
  }

  /** A frame too large for any batch slot (replay): counted under its own reason. */
  countOversize(): number {
    this.engine.reasonCount[R_OVERSIZE]!++;
    return R_OVERSIZE;
  }
}
