/**
 * An IpvsApi whose every operation is forwarded as (name, arguments) to one
 * `call`: the shape shared by the socket client (ctl/client.ts) and the data-plane
 * worker proxy (io/worker-api.ts). Adding an operation to IpvsApi means adding it
 * here once.
 */
import type { IpvsApi, MarkRule } from './api.js';
import type {
  ConnEntry, DestSpec, Info, ServiceEntry, ServiceKey, ServiceSpec, SyncDaemon, Timeouts,
} from './types.js';
import type { OpArgs, OpName, OpResult } from './protocol.js';

export abstract class ForwardingIpvsApi implements IpvsApi {
  abstract call<K extends OpName>(op: K, ...args: OpArgs<K>): Promise<OpResult<K>>;

  getInfo(): Promise<Info> { return this.call('getInfo'); }
  addService(svc: ServiceSpec): Promise<void> { return this.call('addService', svc); }
  editService(svc: ServiceSpec): Promise<void> { return this.call('editService', svc); }
  delService(svc: ServiceKey): Promise<void> { return this.call('delService', svc); }
  flush(): Promise<void> { return this.call('flush'); }
  addDest(svc: ServiceKey, dest: DestSpec): Promise<void> { return this.call('addDest', svc, dest); }
  editDest(svc: ServiceKey, dest: DestSpec): Promise<void> { return this.call('editDest', svc, dest); }
  delDest(svc: ServiceKey, dest: DestSpec): Promise<void> { return this.call('delDest', svc, dest); }
  zero(svc: ServiceKey | null): Promise<void> { return this.call('zero', svc); }
  getServices(): Promise<ServiceEntry[]> { return this.call('getServices'); }
  getService(svc: ServiceKey): Promise<ServiceEntry> { return this.call('getService', svc); }
  getConnections(): Promise<ConnEntry[]> { return this.call('getConnections'); }
  setTimeouts(t: Timeouts): Promise<void> { return this.call('setTimeouts', t); }
  getTimeouts(): Promise<Timeouts> { return this.call('getTimeouts'); }
  startDaemon(d: SyncDaemon): Promise<void> { return this.call('startDaemon', d); }
  stopDaemon(state: 'master' | 'backup', syncId: number): Promise<void> { return this.call('stopDaemon', state, syncId); }
  getDaemons(): Promise<SyncDaemon[]> { return this.call('getDaemons'); }
  addMarkRule(r: MarkRule): Promise<void> { return this.call('addMarkRule', r); }
  delMarkRule(r: MarkRule): Promise<void> { return this.call('delMarkRule', r); }
  getMarkRules(): Promise<MarkRule[]> { return this.call('getMarkRules'); }
}
