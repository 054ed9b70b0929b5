/**
 * IpvsApi implemented in-process over an IpvsTable: what the daemon serves and
 * what tests and `ulvs replay` call directly. Converts the text records of the
 * control protocol, and reports failures as rejected CtlError(errno) like
 * libipvs reports the kernel's.
 */
import type { IpvsApi, MarkRule } from '../ctl/api.js';
import {
  CtlError, type ConnEntry, type DestSpec, type Info, type ServiceEntry, type ServiceKey, type ServiceSpec,
  type SyncDaemon, type Timeouts,
} from '../ctl/types.js';
import { destConfigFromSpec, destKeyFromSpec, svcConfigFromSpec, svcKeyFromCtl } from './convert.js';
import { FwmarkClassifier } from './fwmark.js';
import { SyncDaemons, type SyncDaemonHooks } from './sync-daemons.js';
import type { IpvsTable } from './table.js';

export interface LocalIpvsApiOptions extends SyncDaemonHooks {
  /** The classifier the engine uses; a private one by default. */
  marks?: FwmarkClassifier;
  /** Source of getConnections() (the connection table's listing); none by default. */
  listConnections?: () => ConnEntry[];
}

export class LocalIpvsApi implements IpvsApi {
  readonly marks: FwmarkClassifier;
  readonly daemons: SyncDaemons;
  private readonly listConnections: () => ConnEntry[];

  constructor(readonly table: IpvsTable, opts: LocalIpvsApiOptions = {}) {
    this.marks = opts.marks ?? new FwmarkClassifier();
    this.daemons = new SyncDaemons(table, opts);
    this.listConnections = opts.listConnections ?? (() => []);
  }

  async getInfo(): Promise<Info> {
    return this.table.info();
  }

  async addService(svc: ServiceSpec): Promise<void> {
    this.table.addService(svcConfigFromSpec(svc));
  }

  async editService(svc: ServiceSpec): Promise<void> {
    this.table.editService(svcConfigFromSpec(svc));
  }

  async delService(svc: ServiceKey): Promise<void> {
    this.table.delService(svcKeyFromCtl(svc));
  }

  async flush(): Promise<void> {
    this.table.flush();
  }

  async addDest(svc: ServiceKey, dest: DestSpec): Promise<void> {
    const key = svcKeyFromCtl(svc);
    // The service is looked up before the dest is parsed (ip_vs_genl_set_cmd).
    if (this.table.getService(key) === null) throw new CtlError('ESRCH', 'service not defined');
    this.table.addDest(key, destConfigFromSpec(dest));
  }

  async editDest(svc: ServiceKey, dest: DestSpec): Promise<void> {
    const key = svcKeyFromCtl(svc);
    if (this.table.getService(key) === null) throw new CtlError('ESRCH', 'service not defined');
    this.table.editDest(key, destConfigFromSpec(dest));
  }

  async delDest(svc: ServiceKey, dest: DestSpec): Promise<void> {
    const key = svcKeyFromCtl(svc);
    if (this.table.getService(key) === null) throw new CtlError('ESRCH', 'service not defined');
    this.table.delDest(key, destKeyFromSpec(dest));
  }

  async zero(svc: ServiceKey | null): Promise<void> {
    this.table.zero(svc === null ? null : svcKeyFromCtl(svc));
  }

  async getServices(): Promise<ServiceEntry[]> {
    return this.table.getServiceEntries();
  }

  async getService(svc: ServiceKey): Promise<ServiceEntry> {
    return this.table.getServiceEntry(svcKeyFromCtl(svc));
  }

  async getConnections(): Promise<ConnEntry[]> {
    return this.listConnections();
  }

  async setTimeouts(t: Timeouts): Promise<void> {
    this.table.setTimeouts(t);
  }

  async getTimeouts(): Promise<Timeouts> {
    return this.table.getTimeouts();
  }

  async startDaemon(d: SyncDaemon): Promise<void> {
    this.daemons.start(d);
  }

  async stopDaemon(state: 'master' | 'backup', _syncId: number): Promise<void> {
    this.daemons.stop(state);
  }

  async getDaemons(): Promise<SyncDaemon[]> {
    return this.daemons.list();
  }

  async addMarkRule(r: MarkRule): Promise<void> {
    this.marks.add(r);
  }

  async delMarkRule(r: MarkRule): Promise<void> {
    this.marks.delete(r);
  }

  async getMarkRules(): Promise<MarkRule[]> {
    return this.marks.list();
  }
}
