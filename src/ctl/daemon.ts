/**
 * The director daemon's life cycle, without the command line: build a Director,
 * load the --restore file into it while nobody can see it, open the control
 * socket, start packet I/O (if a backend is plugged in), run the clock; and the
 * reverse on stop. `ulvs daemon` (cli/daemon.ts) and the tests drive this class.
 */
import { readFile } from 'node:fs/promises';
import { Director } from '../core/director.js';
import { StaticNeighbours } from '../neigh/static.js';
import { systemResolver, type Resolver } from '../cli/ipvsadm/resolver.js';
import { CtlServer } from './server.js';
import { AccessPolicy } from './access.js';
import { peerCredUnavailable } from './peercred.js';
import { DEFAULT_SOCKET_NAME, socketAddress } from './protocol.js';
import { restoreSaveText } from './restore-file.js';
import type { IpvsApi } from './api.js';

/**
 * A packet-I/O backend (AF_PACKET, pcap, ...): started once the control socket is
 * up (so the table can be inspected while it starts), stopped first on shutdown.
 */
export interface PacketIo {
  /** For the ready line, e.g. "afpacket on eth0". */
  readonly description: string;
  start(director: Director): Promise<void>;
  stop(): Promise<void>;
}

export interface DaemonOptions {
  /** `--socket`: abstract name (default `ulvs`) or a path containing '/'. */
  socket?: string;
  /** `--group`: gid whose members may change the table. */
  groupGid?: number | null;
  /** How to show the group in the ready line (default: the gid). */
  groupName?: string;
  /** `--restore`: an ipvsadm save file loaded before the socket opens. */
  restoreFile?: string;
  /** `--capacity`: connection table entries. */
  capacity?: number;
  io?: PacketIo;
  /**
   * A data plane that owns the director in another thread (io/dataplane.ts): the daemon
   * then serves its API, restores into it, starts its packet I/O and drives its clock.
   */
  dataPlane?: DataPlaneHost;
  /** Clock period (default 1000 ms). */
  tickMs?: number;
  /** Name resolution for the restore file (default: the system's, like ipvsadm -R). */
  resolver?: Resolver;
  /** Warnings (one line each). */
  log?: (line: string) => void;
}

// --- data-plane hook (io/dataplane.ts implements this) ---
/** What the daemon needs from a data plane that runs the director elsewhere (a worker thread). */
export interface DataPlaneHost {
  /** For the ready line, e.g. "afpacket on d0,d1, nft table ulvs_123". */
  readonly description: string;
  /** The director's control API (behaves exactly like LocalIpvsApi). */
  readonly api: IpvsApi;
  /** Connection table capacity. */
  readonly capacity: number;
  /** Opens the interfaces and starts forwarding. */
  startIo(): Promise<void>;
  /** Advances the director's clock (seconds). */
  tick(now: number): void;
  stop(): Promise<void>;
}
// --- end of data-plane hook ---

/** A start-up failure with a message meant for the user (no stack). */
export class DaemonStartError extends Error {
  override readonly name = 'DaemonStartError';
}

export const DEFAULT_CAPACITY = 1 << 20;

export class Daemon {
  private timer: NodeJS.Timeout | null = null;
  private stopping: Promise<void> | null = null;
  private restoredServices = 0;

  private constructor(
    /** The in-process director; null when a data plane owns it (opts.dataPlane). */
    readonly director: Director | null,
    /** The control API served: the director's, or the data plane's. */
    readonly api: IpvsApi,
    readonly server: CtlServer,
    private readonly opts: DaemonOptions,
    private readonly clockOrigin: number,
  ) {}

  /** Builds and starts a daemon; rejects with DaemonStartError (nothing left running) if it cannot. */
  static async start(opts: DaemonOptions = {}): Promise<Daemon> {
    const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
    let address;
    try {
      address = socketAddress(opts.socket ?? DEFAULT_SOCKET_NAME);
    } catch (e) {
      throw new DaemonStartError((e as Error).message);
    }
    const capacity = opts.capacity ?? DEFAULT_CAPACITY;
    // No packet I/O yet: the director's own addresses and neighbours come with the I/O backend.
    // With a data plane, the director lives in its worker and this process only proxies to it.
    const dp = opts.dataPlane;
    const director = dp === undefined ? new Director({ mac: new Uint8Array(6), ip4: 0, neigh: new StaticNeighbours(), capacity }) : null;
    const api: IpvsApi = dp?.api ?? director!.api;
    const clockOrigin = performance.now();
    director?.setClock(0);

    let restored = 0;
    if (opts.restoreFile !== undefined) {
      let text: string;
      try {
        text = await readFile(opts.restoreFile, 'utf8');
      } catch (e) {
        throw new DaemonStartError(`cannot read ${opts.restoreFile}: ${(e as Error).message}`);
      }
      const r = await restoreSaveText(api, text, opts.resolver ?? systemResolver());
      if (!r.ok) throw new DaemonStartError(`${opts.restoreFile}:${r.lineNo}: ${r.message}`);
      restored = (await api.getInfo()).numServices;
    }

    const why = peerCredUnavailable();
    if (why !== null) log(`ulvs: warning: cannot read peer credentials (${why}); only reads are allowed on the control socket`);
    const server = new CtlServer(api, {
      address, access: new AccessPolicy({ groupGid: opts.groupGid ?? null }), log,
    });
    try {
      await server.listen();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') {
        throw new DaemonStartError(address.abstract
          ? `socket ${address.display} is in use: another director is running in this network namespace`
          : `socket ${address.display} is in use by another director`);
      }
      throw new DaemonStartError(`cannot listen on ${address.display}: ${(e as Error).message}`);
    }
    const d = new Daemon(director, api, server, opts, clockOrigin);
    d.restoredServices = restored;
    if (dp !== undefined) {
      try {
        await dp.startIo();
      } catch (e) {
        await server.close();
        throw new DaemonStartError(`packet I/O (${dp.description}): ${(e as Error).message}`);
      }
    }
    if (opts.io !== undefined && director !== null) {
      try {
        await opts.io.start(director);
      } catch (e) {
        await server.close();
        throw new DaemonStartError(`packet I/O (${opts.io.description}): ${(e as Error).message}`);
      }
    }
    d.startClock();
    return d;
  }

  /** Seconds since start, from the monotonic clock. */
  now(): number {
    return (performance.now() - this.clockOrigin) / 1000;
  }

  private startClock(): void {
    // Connection expiry, the rate estimator, scheduler upkeep: about once a second (DESIGN rule 5).
    const dp = this.opts.dataPlane;
    this.timer = setInterval(() => (dp !== undefined ? dp.tick(this.now()) : this.director!.tick(this.now())), this.opts.tickMs ?? 1000);
  }

  /** The one line printed when the daemon is ready. */
  readyLine(): string {
    const parts = [
      `socket ${this.server.address.display}`,
      `${this.opts.dataPlane?.capacity ?? this.director!.conns.capacity} connections`,
    ];
    if (this.opts.restoreFile !== undefined) {
      parts.push(`${this.restoredServices} service${this.restoredServices === 1 ? '' : 's'} from ${this.opts.restoreFile}`);
    }
    if (this.opts.groupGid !== undefined && this.opts.groupGid !== null) parts.push(`group ${this.opts.groupName ?? this.opts.groupGid}`);
    parts.push(this.opts.dataPlane?.description ?? (this.opts.io !== undefined ? this.opts.io.description : 'no packet I/O'));
    return `ulvs: director ready (${parts.join(', ')})`;
  }

  /** Stops packet I/O, the clock and the control socket (idempotent). */
  stop(): Promise<void> {
    if (this.stopping === null) {
      this.stopping = (async () => {
        if (this.timer !== null) clearInterval(this.timer);
        this.timer = null;
        try {
          await this.opts.io?.stop();
          await this.opts.dataPlane?.stop();
        } finally {
          await this.server.close();
        }
      })();
    }
    return this.stopping;
  }
}
