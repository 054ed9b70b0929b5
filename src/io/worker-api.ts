/**
 * The IpvsApi the daemon serves when the director lives in the data-plane worker:
 * every operation is sent to the worker, which applies it between two batches
 * with its LocalIpvsApi and answers; the promise settles with that answer. So the
 * behaviour is LocalIpvsApi's exactly — same results, same CtlError(errno,
 * message) — and a listing is one atomic snapshot taken between batches.
 *
 * A change that alters what the kernel must not see (services, NAT real servers)
 * comes back with what changed (a HideChange, not the whole spec: see
 * hide-state.ts); `onHide` (the nftables update) runs before the operation's
 * promise settles, so when `ipvsadm -A` returns, the kernel already ignores the new VIP
 * (once packet I/O runs; before, DataPlane stages the changes: see dataplane.ts).
 */
import { CtlError, type Errno } from '../ctl/types.js';
import { ForwardingIpvsApi } from '../ctl/forwarding-api.js';
import type { OpArgs, OpName, OpResult } from '../ctl/protocol.js';
import type { FromWorker, HideChange, ToWorker } from './worker-protocol.js';

interface Waiter {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

export class WorkerIpvsApi extends ForwardingIpvsApi {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private closedWhy: string | null = null;
  /** Called with each change of what to hide; the operation settles after it does. */
  onHide: ((change: HideChange) => Promise<void>) | null = null;

  /** `target`: the worker (or, for in-thread data planes, one end of a MessageChannel). */
  constructor(private readonly target: { postMessage(m: ToWorker): void }) {
    super();
  }

  /** Routes one message from the worker (the data plane calls this for 'result' and 'neigh'). */
  deliver(m: FromWorker): boolean {
    if (m.t !== 'result' && m.t !== 'neigh') return false;
    const w = this.waiting.get(m.id);
    if (w === undefined) return true;
    this.waiting.delete(m.id);
    if (m.t === 'neigh') { w.resolve(m.entries); return true; }
    let settle: () => void;
    if (m.ok) {
      settle = () => w.resolve(m.value);
    } else {
      const e = m.error;
      settle = () => w.reject(e.errno !== undefined ? new CtlError(e.errno as Errno, e.message) : new Error(e.message));
    }
    const hide = m.hide;
    if (hide !== undefined && this.onHide !== null) {
      this.onHide(hide).then(settle, (e: Error) => w.reject(e));
    } else {
      settle();
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

  call<K extends OpName>(op: K, ...args: OpArgs<K>): Promise<OpResult<K>> {
    return this.request<OpResult<K>>((id) => ({ t: 'op', id, op, args }));
  }
}
