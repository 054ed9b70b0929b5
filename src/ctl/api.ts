/**
 * The control operations: libipvs's API (libipvs/libipvs.h), one method per
 * operation. Implemented in-process by svc/local-api.ts (over an IpvsTable) and
 * over the daemon socket by ctl/client.ts; `ulvsadm` only ever talks to this
 * interface, so the CLI behaves the same against both.
 * Failures reject with CtlError(errno) — the ipvsadm layer turns (operation, errno)
 * into ipvs_strerror's text.
 */
import type {
  ConnEntry, DestSpec, Info, ServiceEntry, ServiceKey, ServiceSpec, SyncDaemon, Timeouts,
} from './types.js';

/** ulvs extension: the in-engine fwmark classifier (the kernel reads skb->mark set by iptables/nft). */
export interface MarkRule {
  af: 4 | 6;
  /** 6, 17, 132, or 0 = any protocol. */
  protocol: number;
  /** Destination network: address text and prefix length. */
  addr: string;
  prefix: number;
  /** Destination port range, inclusive; 0..65535 = any. */
  portLo: number;
  portHi: number;
  mark: number;
}

export interface IpvsApi {
  getInfo(): Promise<Info>;
  addService(svc: ServiceSpec): Promise<void>;
  editService(svc: ServiceSpec): Promise<void>;
  delService(svc: ServiceKey): Promise<void>;
  flush(): Promise<void>;
  addDest(svc: ServiceKey, dest: DestSpec): Promise<void>;
  editDest(svc: ServiceKey, dest: DestSpec): Promise<void>;
  delDest(svc: ServiceKey, dest: DestSpec): Promise<void>;
  /** null = zero everything (services, dests, totals). */
  zero(svc: ServiceKey | null): Promise<void>;
  /** One atomic snapshot of every service with its dests (kernel order: services in table order, dests newest first). */
  getServices(): Promise<ServiceEntry[]>;
  /** One service; rejects ESRCH/ENOENT when absent. */
  getService(svc: ServiceKey): Promise<ServiceEntry>;
  getConnections(): Promise<ConnEntry[]>;
  /** 0 keeps the current value (kernel semantics). */
  setTimeouts(t: Timeouts): Promise<void>;
  getTimeouts(): Promise<Timeouts>;
  startDaemon(d: SyncDaemon): Promise<void>;
  stopDaemon(state: 'master' | 'backup', syncId: number): Promise<void>;
  getDaemons(): Promise<SyncDaemon[]>;
  addMarkRule(r: MarkRule): Promise<void>;
  delMarkRule(r: MarkRule): Promise<void>;
  getMarkRules(): Promise<MarkRule[]>;
}
