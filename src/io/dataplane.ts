/**
 * The data plane as seen from the control plane (main thread): a worker thread
 * (io/worker-main.ts) that owns the director and forwards frames, an IpvsApi that
 * proxies to it (io/worker-api.ts), the nftables guard that keeps the kernel off
 * the traffic ulvs handles (io/kernel-guard.ts), and the shared counter block.
 *
 * Why the worker owns the whole director (table, connections, engine) rather than
 * sharing tables through SharedArrayBuffer: the hot path then stays plain
 * single-threaded JS over ordinary typed arrays — no Atomics, no torn reads, no
 * locking — and "table changes reach the data plane between batches" falls out of
 * the event loop (a control message runs in its own turn, never inside a batch).
 * The price is a message round trip per control operation (tens of µs) and that
 * listings are answered by the worker between two batches — which is exactly what
 * makes them atomic snapshots. Counters the data plane alone produces (engine
 * reasons, I/O, neighbours) are published in a SharedArrayBuffer, readable at any
 * time without asking the worker.
 *
 * Life cycle: `DataPlane.create()` starts the worker (director built, no packet I/O
 * yet) and installs the empty nftables table; the caller may load rules through
 * `api`; `startIo()` writes the nftables rules for what was loaded (one nft run),
 * opens the interfaces and starts forwarding (and announces the VIPs with
 * gratuitous ARP); from then on every change is hidden before it returns; `tick(now)` drives the clock; `stop()` closes the I/O,
 * ends the worker and removes the nftables table.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { REASON_NAMES, REASON_COUNT } from '../core/reasons.js';
import { listInterfaces, interfaceInfo, type InterfaceInfo } from './afpacket-netdev.js';
import { KernelGuard, offloadWarning } from './kernel-guard.js';
import { WorkerIpvsApi } from './worker-api.js';
import type { NeighEntry } from '../neigh/cache.js';
import type { Route4 } from '../neigh/routes.js';
import {
  COUNTER_SLOTS, C_ARP_REQUESTS, C_BATCHES, C_GARP_SENT, C_KERNEL_DROPS, C_NEIGH_DROPPED, C_NEIGH_ENTRIES,
  C_NEIGH_QUEUED, C_NEIGH_RELEASED, C_NO_ROUTE, C_RX_FRAMES, C_SUPER_FRAMES, C_TX_ERRORS, C_TX_FRAMES, C_UPDATED,
  type BackendName, type DataPlaneCounters, type FromWorker, type IfaceFacts, type ToWorker, type WorkerInit,
} from './worker-protocol.js';

/** The first message from the data plane ('ready' or 'fatal'). */
function firstMessage(listen: (cb: (m: FromWorker) => void) => void): Promise<FromWorker> {
  return new Promise((resolve) => {
    let done = false;
    listen((m) => {
      if (!done && (m.t === 'ready' || m.t === 'fatal')) { done = true; resolve(m); }
    });
  });
}

export type { DataPlaneCounters, IfaceFacts } from './worker-protocol.js';

const ARPHRD_ETHER = 1;

export interface DataPlaneOptions {
  /**
   * Run the data plane inside this network namespace (a name under /var/run/netns):
   * the worker thread enters it, nft and ethtool run through `ip netns exec`. The
   * rest of the process stays where it is (tests, labs driving several namespaces).
   */
  netns?: string;
  /** Interfaces to serve; default: every non-loopback Ethernet interface of this network namespace. */
  interfaces?: string[];
  /** Packet I/O backend (default afpacket); 'none' runs the director without packet I/O. */
  backend?: BackendName;
  /** Connection table entries (default 1 << 20). */
  capacity?: number;
  seed?: number;
  /** Frames per recvmmsg/sendmmsg (default 64; 1..1024). */
  batchSize?: number;
  /**
   * Busy polling (afpacket backends): after a drain that received frames the worker keeps
   * reading without blocking until this many µs pass without a frame, before it waits in
   * epoll again (default 0 = off). It returns to its event loop at least every ms.
   */
  busyPollUs?: number;
  /** SO_RCVBUF(FORCE) of each AF_PACKET rx socket, bytes (afpacket; default: the backend's, 32 MiB). */
  rcvbuf?: number;
  /** SO_SNDBUF(FORCE) of the AF_PACKET tx socket, bytes (afpacket; default: the backend's, 4 MiB). */
  sndbuf?: number;
  /** PACKET_FANOUT group (hash mode) for the rx sockets (afpacket backends): processes in one group share the frames. */
  fanoutGroup?: number;
  /**
   * AF_PACKET with PACKET_VNET_HDR (default false): GSO/GRO super-frames are forwarded whole and
   * partial checksums stay partial, so TSO/GRO may stay on (no offload warning then).
   */
  vnetHdr?: boolean;
  /** Install the nftables table (default true whenever there is packet I/O). */
  kernelGuard?: boolean;
  /** Check GRO/LRO/TSO with ethtool and warn (default true whenever there is packet I/O). */
  offloadCheck?: boolean;
  /** Fixed routes instead of the kernel's (tests). */
  routes?: Route4[];
  /** Seconds a frame may wait for its next hop to resolve (default 3). */
  neighWait?: number;
  /** Wall-clock ms that is second 0 of the director's clock (default: now). */
  clockOriginMs?: number;
  /** One line per warning (default: stderr). */
  log?: (line: string) => void;
}

/** A start-up failure meant for the user. */
export class DataPlaneError extends Error {}

/** Every non-loopback Ethernet interface of this network namespace, in ifindex order. */
export function defaultInterfaces(netns?: string): InterfaceInfo[] {
  return listInterfaces(netns)
    .map((i) => interfaceInfo(i.name, netns))
    .filter((i) => !i.loopback && i.hwType === ARPHRD_ETHER);
}

/** How the control plane talks to the data plane: a worker thread, or a channel to this thread. */
interface Endpoint {
  postMessage(m: ToWorker): void;
  on(ev: 'message', cb: (m: FromWorker) => void): void;
  /** Called at most once when the data plane dies on its own. */
  onDeath(cb: (why: string) => void): void;
  terminate(): Promise<void>;
}

function workerEndpoint(worker: Worker): Endpoint {
  return {
    postMessage: (m) => worker.postMessage(m),
    on: (ev, cb) => { worker.on(ev, cb); },
    onDeath: (cb) => {
      worker.on('error', (e) => cb(`data plane worker failed: ${e.message}`));
      worker.on('exit', (code) => cb(`data plane worker exited (${code})`));
    },
    terminate: async () => { await worker.terminate(); },
  };
}

export class DataPlane {
  readonly api: WorkerIpvsApi;
  /** The interfaces served, as the worker found them. */
  readonly interfaces: IfaceFacts[];
  readonly backend: BackendName;
  readonly capacity: number;
  private readonly counterView: Float64Array;
  private guard: KernelGuard | null = null;
  private ioStarted = false;
  private nftWarning: (e: Error) => void = () => {};
  private stopping: Promise<void> | null = null;
  private exitWhy: string | null = null;
  /** Called once if the worker dies unexpectedly (the daemon exits then). */
  onFatal: ((message: string) => void) | null = null;

  private constructor(
    private readonly worker: Endpoint,
    api: WorkerIpvsApi,
    ready: { ifaces: IfaceFacts[]; capacity: number },
    backend: BackendName,
    counters: SharedArrayBuffer,
  ) {
    this.api = api;
    this.interfaces = ready.ifaces;
    this.capacity = ready.capacity;
    this.backend = backend;
    this.counterView = new Float64Array(counters);
  }

  /**
   * Starts the worker and (with packet I/O) installs the nftables table. Rejects with
   * DataPlaneError when an interface is unknown or the worker cannot start.
   */
  static async create(opts: DataPlaneOptions = {}): Promise<DataPlane> {
    const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
    let backend: BackendName = opts.backend ?? 'afpacket';
    let names: string[];
    if (opts.interfaces !== undefined && opts.interfaces.length > 0) {
      names = opts.interfaces;
      for (const n of names) {
        try {
          const info = interfaceInfo(n, opts.netns);
          if (info.loopback || info.hwType !== ARPHRD_ETHER) throw new DataPlaneError(`interface ${n} is not an Ethernet interface`);
        } catch (e) {
          if (e instanceof DataPlaneError) throw e;
          throw new DataPlaneError(`interface ${n}: ${(e as Error).message}`);
        }
      }
    } else {
      names = backend === 'none' ? [] : defaultInterfaces(opts.netns).map((i) => i.name);
    }
    if (names.length === 0) backend = 'none';
    const counters = new SharedArrayBuffer(COUNTER_SLOTS * 8);
    const init: WorkerInit = {
      netns: opts.netns ?? null,
      interfaces: names,
      backend,
      capacity: opts.capacity ?? 1 << 20,
      seed: opts.seed ?? 1,
      batchSize: opts.batchSize ?? 64,
      vnetHdr: opts.vnetHdr ?? false,
      busyPollUs: opts.busyPollUs ?? 0,
      rcvbuf: opts.rcvbuf,
      sndbuf: opts.sndbuf,
      fanoutGroup: opts.fanoutGroup,
      clockOriginMs: opts.clockOriginMs ?? performance.timeOrigin + performance.now(),
      counters,
      routes: opts.routes ?? null,
      neighWait: opts.neighWait,
    };
    let endpoint: Endpoint;
    let ready: { ifaces: IfaceFacts[]; capacity: number };
    if (backend === 'pcap') {
      // The `cap` addon is not worker-safe (its callbacks assume the main isolate): this data
      // plane runs on the main thread, over the same protocol through a MessageChannel.
      if (opts.netns !== undefined) throw new DataPlaneError('the pcap backend cannot run in another network namespace (netns)');
      const { port1, port2 } = new MessageChannel();
      const { serveDataPlane } = await import('./worker-core.js');
      const readyP = firstMessage((cb) => port1.on('message', cb));
      if (!serveDataPlane(port2, init, () => port2.close())) {
        const m = await readyP;
        port1.close();
        throw new DataPlaneError(m.t === 'fatal' ? m.message : 'data plane failed');
      }
      endpoint = {
        postMessage: (m) => port1.postMessage(m),
        on: (ev, cb) => { port1.on(ev, cb); },
        onDeath: () => {},
        terminate: async () => { port1.close(); port2.close(); },
      };
      const m = await readyP;
      if (m.t !== 'ready') throw new DataPlaneError('data plane failed to start');
      ready = m;
    } else {
      // Module hooks of the parent (test runners' --import loaders) are not needed in the worker
      // and slow its start-up by seconds.
      const execArgv = process.execArgv.filter((a) => !/^--(import|loader|experimental-loader|require)\b/.test(a));
      const worker = new Worker(new URL('./worker-main.js', import.meta.url), { workerData: init, execArgv });
      ready = await new Promise<{ ifaces: IfaceFacts[]; capacity: number }>((resolve, reject) => {
        const onMsg = (m: FromWorker): void => {
          if (m.t === 'ready') { cleanup(); resolve(m); } else if (m.t === 'fatal') { cleanup(); reject(new DataPlaneError(m.message)); }
        };
        const onErr = (e: Error): void => { cleanup(); reject(new DataPlaneError(e.message)); };
        const onExit = (code: number): void => { cleanup(); reject(new DataPlaneError(`data plane worker exited (${code})`)); };
        const cleanup = (): void => { worker.off('message', onMsg); worker.off('error', onErr); worker.off('exit', onExit); };
        worker.on('message', onMsg);
        worker.on('error', onErr);
        worker.on('exit', onExit);
      });
      endpoint = workerEndpoint(worker);
    }
    const api = new WorkerIpvsApi(endpoint);
    const dp = new DataPlane(endpoint, api, ready, backend, counters);
    dp.vnetHdr = backend === 'afpacket' && (opts.vnetHdr ?? false);
    if (backend !== 'none') dp.tuning = describeTuning(init, backend);
    endpoint.on('message', (m: FromWorker) => dp.onMessage(m, log));
    endpoint.onDeath((why) => dp.died(why));
    if (backend !== 'none') {
      if (opts.kernelGuard ?? true) {
        try {
          dp.guard = KernelGuard.install(undefined, opts.netns);
          // A failed nft update must not turn a successful table change into an error.
          dp.nftWarning = (e: Error) => log(`ulvs: warning: nftables update failed: ${e.message}`);
          api.onHide = (change) => dp.guard!.apply(change).catch(dp.nftWarning);
          // Until startIo nothing is forwarded, so nothing needs hiding: changes made before
          // (a --restore file) are written in one nft run when I/O starts, not one run each.
          dp.guard.defer();
        } catch (e) {
          log(`ulvs: warning: cannot install the nftables table (${(e as Error).message}); ` +
            'the kernel may answer or forward traffic for the virtual services itself');
        }
      }
      // With the vnet header super-frames are forwarded, not dropped: nothing to warn about.
      if ((opts.offloadCheck ?? true) && !(opts.vnetHdr ?? false)) {
        const w = offloadWarning(names, opts.netns);
        if (w !== null) log(w);
      }
    }
    return dp;
  }

  private onMessage(m: FromWorker, log: (l: string) => void): void {
    if (this.api.deliver(m)) return;
    if (m.t === 'log') log(m.line);
    else if (m.t === 'fatal') this.died(m.message);
  }

  private died(why: string): void {
    if (this.exitWhy !== null) return;
    this.exitWhy = why;
    this.api.close(why);
    this.guard?.removeSync();
    if (this.stopping === null) this.onFatal?.(why);
  }

  /** "afpacket on d0,d1 (nft table ulvs_123)" or "no packet I/O". */
  get description(): string {
    if (this.backend === 'none') return 'no packet I/O';
    const guard = this.guard !== null ? `, nft table ${this.guard.table}` : '';
    return `${this.backend} on ${this.interfaces.map((i) => i.name).join(',')}${guard}${this.vnetHdr ? ', vnet hdr' : ''}${this.tuning}`;
  }

  /** The non-default I/O settings, as appended to `description` (empty with the defaults). */
  private tuning = '';

  /** Super-frames and partial checksums pass through whole (DataPlaneOptions.vnetHdr). */
  vnetHdr = false;

  /** The nftables table name, or null when none is installed. */
  get nftTable(): string | null {
    return this.guard?.table ?? null;
  }

  /** Opens the interfaces and starts forwarding. */
  async startIo(): Promise<void> {
    if (this.ioStarted || this.backend === 'none') return;
    // What was changed before is hidden from the kernel before the first frame is read.
    await this.guard?.resume().catch(this.nftWarning);
    await this.api.request<null>((id) => ({ t: 'start-io', id }));
    this.ioStarted = true;
  }

  /** Advances the director's clock (connection expiry, estimator, neighbour ageing), between batches. */
  tick(now: number): void {
    if (this.exitWhy === null) this.worker.postMessage({ t: 'tick', now });
  }

  /** The neighbour cache's entries (diagnostics, tests). */
  neighbours(): Promise<NeighEntry[]> {
    return this.api.request<NeighEntry[]>((id) => ({ t: 'neigh', id }));
  }

  /** The data plane's counters, read from shared memory (never waits for the worker). */
  counters(): DataPlaneCounters {
    const c = this.counterView;
    const reasons: Record<string, number> = {};
    for (let i = 0; i < REASON_COUNT; i++) if (c[i]! !== 0) reasons[REASON_NAMES[i] ?? `reason-${i}`] = c[i]!;
    return {
      reasons,
      rxFrames: c[C_RX_FRAMES]!, txFrames: c[C_TX_FRAMES]!, txErrors: c[C_TX_ERRORS]!, superFrames: c[C_SUPER_FRAMES]!,
      kernelDrops: c[C_KERNEL_DROPS]!, batches: c[C_BATCHES]!, neighQueued: c[C_NEIGH_QUEUED]!,
      neighReleased: c[C_NEIGH_RELEASED]!, neighDropped: c[C_NEIGH_DROPPED]!, arpRequests: c[C_ARP_REQUESTS]!,
      garpSent: c[C_GARP_SENT]!, neighEntries: c[C_NEIGH_ENTRIES]!, noRoute: c[C_NO_ROUTE]!, updated: c[C_UPDATED]!,
    };
  }

  /** Stops forwarding, ends the worker and removes the nftables table (idempotent). */
  stop(): Promise<void> {
    if (this.stopping === null) {
      this.stopping = (async () => {
        if (this.exitWhy === null) {
          // The worker closes its sockets between batches, then it is ended.
          try {
            await Promise.race([this.api.request<null>((id) => ({ t: 'stop', id })), new Promise((r) => setTimeout(r, 1000).unref())]);
          } catch { /* already gone */ }
          this.stopping = this.stopping ?? Promise.resolve();
          await this.worker.terminate();
        }
        await this.guard?.remove();
      })();
    }
    return this.stopping;
  }
}

/** ", batch 16, busy-poll 50 µs, ..." for the settings that differ from the defaults. */
function describeTuning(init: WorkerInit, backend: BackendName): string {
  const parts: string[] = [];
  if (init.batchSize !== 64) parts.push(`batch ${init.batchSize}`);
  if (backend !== 'pcap') {
    if ((init.busyPollUs ?? 0) > 0) parts.push(`busy-poll ${init.busyPollUs} µs`);
    if (init.fanoutGroup !== undefined) parts.push(`fanout group ${init.fanoutGroup}`);
  }
  if (backend === 'afpacket') {
    if (init.rcvbuf !== undefined) parts.push(`rcvbuf ${init.rcvbuf}`);
    if (init.sndbuf !== undefined) parts.push(`sndbuf ${init.sndbuf}`);
  }
  return parts.map((p) => `, ${p}`).join('');
}

/**
 * Why this process cannot open AF_PACKET sockets (no CAP_NET_RAW), or null when it
 * can. Used to run a director without packet I/O instead of failing when no
 * interface was asked for explicitly.
 */
export function packetIoAllowed(): string | null {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const m = /^CapEff:\s*([0-9a-f]+)/m.exec(status);
    if (m === null) return null;
    const CAP_NET_RAW = 13n;
    return (BigInt(`0x${m[1]}`) >> CAP_NET_RAW) & 1n ? null : 'AF_PACKET needs CAP_NET_RAW (run as root)';
  } catch {
    return null;
  }
}
