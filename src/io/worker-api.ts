/**
 * The IpvsApi the daemon serves when the director lives in the data-plane worker:
 * every operation is sent to the worker, which applies it between two batches
 * with its LocalIpvsApi and answers; the promise settles with that answer. So the
 * behaviour is LocalIpvsApi's exactly — same results, same CtlError(errno,
 * message) — and a listing is one atomic snapshot taken between batches.
 *
 * A change that alters what the kernel must not see (services, NAT real servers)
 * comes back with the new HideSpec; `onHide` (the nftables update) runs before the
 * operation's promise resolves, so when `ipvsadm -A` returns, the kernel already
 * ignores the new VIP.
 */
import type { IpvsApi, MarkRule } from '../ctl/api.js';
import {
  CtlError, type ConnEntry, type DestSpec, type Errno, type Info, type ServiceEntry, type ServiceKey, type ServiceSpec,
  type SyncDaemon, type Timeouts,
} from '../ctl/types.js';
import type { FromWorker, HideSpec, ToWorker } from './worker-protocol.js';

interface Waiter {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

export class WorkerIpvsApi implements IpvsApi {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private closedWhy: string | null = null;
  /** Called with the new HideSpec after a change; the operation resolves after it settles. */
  onHide: ((spec: HideSpec) => Promise<void>) | null = null;

  /** `target`: the worker (or, for in-thread data planes, one end of a MessageChannel). */
  constructor(private readonly target: { postMessage(m: ToWorker): void }) {}

  /** Routes one message from the worker (the data plane calls this for 'result' and 'neigh'). */
  deliver(m: FromWorker): boolean {
    if (m.t !== 'result' && m.t !== 'neigh') return false;
    const w = this.waiting.get(m.id);
    if (w === undefined) return true;
    this.waiting.delete(m.id);
    if (m.t === 'neigh') { w.resolve(m.entries); return true; }
    if (m.ok) {
      const hide = m.hide;
      if (hide !== undefined && this.onHide !== null) {
        this.onHide(hide).then(() => w.resolve(m.value), (e: Error) => w.reject(e));
      } else {
        w.resolve(m.value);
      }
    } else {
      const e = m.error;
      w.reject(e.errno !== undefined ? new CtlError(e.errno as Errno, e.message) : new Error(e.message));
    }
    return true;
  }

  /** Fails every pending and future call (the worker is gone). */
  close(why: string): void {
    this.closedWhy = why;
    for (const w of this.waiting.values()) w.reject(new Error(why));
    this.waiting.clear();
  }

  /** Sends a request that the worker answers with a 'result' (or 'neigh') carrying the same id. */
  request<T>(make: (id: number) => ToWorker): Promise<T> {
    if (this.closedWhy !== null) return Promise.reject(new Error(this.closedWhy));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.target.postMessage(make(id));
    });
  }

  private call<T>(op: string, ...args: unknown[]): Promise<T> {
    return this.request<T>((id) => ({ t: 'op', id, op, args }));
  }

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
