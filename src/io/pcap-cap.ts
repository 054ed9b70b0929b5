/**
 * Optional libpcap backend through the `cap` package (an optional dependency that
 * needs libpcap-dev and a compiler to install). Nothing imports `cap` statically:
 * `PcapCapIo.open()` loads it on demand, so the engine and the AF_PACKET backend
 * work without it, and `capAvailable()` says whether it can be used.
 *
 * What libpcap via `cap` cannot do, compared with AF_PACKET (see the I/O notes):
 * - no batching: one JS callback per received frame and one pcap_sendpacket per
 *   sent frame; frames are queued here and handed out by recv() in batches;
 * - no PACKET_AUXDATA: partial checksums (veth/containers with tx offload) are not
 *   flagged, so FRAME_CSUM_NOT_READY is never set. Turn tx checksum offload off on
 *   the senders (`ethtool -K <if> tx off`) or have the engine verify every checksum;
 * - cap fixes the snap length at 65535, so each kernel ring slot is ~64 KiB and a
 *   buffer holds few frames; bursts overflow silently;
 * - events come from the Node event loop only: there is no blocking wait().
 * Frames this host sends are filtered out by source MAC (`not ether src <mac>`). The
 * BPF `inbound` qualifier would say the same, but with libpcap 1.10 here it also
 * swallowed the first frame received after opening (every time, in the lab).
 */
import {
  FrameBatch, HEADROOM, SLOT_FRAME_MAX, SLOT_SIZE, V_DROP, V_FORWARD, V_REPLY, type PacketIo,
} from './batch.js';
import { interfaceInfo, type InterfaceInfo } from './afpacket-netdev.js';
import { withNetns } from './afpacket-libc.js';

/** The parts of `cap`'s API used here (the package ships no types). */
interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  setMinBytes?(n: number): void;
  on(ev: 'packet', cb: (nbytes: number, trunc: boolean) => void): void;
  send(buffer: Buffer, length: number): void;
  close(): void;
}
interface CapModule {
  Cap: new () => CapHandle;
}

let loaded: CapModule | null | undefined;

async function loadCap(): Promise<CapModule | null> {
  if (loaded !== undefined) return loaded;
  try {
    // A variable specifier keeps TypeScript (and bundlers) from resolving the optional package.
    const name = 'cap';
    const mod = (await import(name)) as { default?: CapModule } & Partial<CapModule>;
    loaded = (mod.default ?? mod) as CapModule;
  } catch {
    loaded = null;
  }
  return loaded;
}

/** Whether the optional `cap` package is installed and loads. */
export async function capAvailable(): Promise<boolean> {
  return (await loadCap()) !== null;
}

export interface PcapCapOptions {
  netns?: string;
  /** BPF filter (default "not ether src <interface MAC>": not the frames this host sends). */
  filter?: string;
  /** libpcap buffer size in bytes (default 32 MiB). */
  bufferSize?: number;
  /** Frames queued between recv() calls before new ones are dropped (default 1024). */
  queueFrames?: number;
}

interface Port {
  cap: CapHandle;
  info: InterfaceInfo;
  /** Receive buffer cap writes each frame into (overwritten by the next one). */
  rxBuf: Buffer;
}

export class PcapCapIo implements PacketIo {
  readonly interfaces: InterfaceInfo[];
  /** Frames dropped because recv() was not called often enough. */
  queueDrops = 0;
  rxFrames = 0;
  txFrames = 0;
  txErrors = 0;
  lastTxError = '';
  private readonly ports: Port[];
  /** Frames received but not yet handed out, in a batch-shaped Buffer (so Buffer.copy needs no views). */
  private readonly queue: FrameBatch;
  private readonly qbuf: Buffer;
  private qHead = 0;
  private qCount = 0;
  private readonly txBuf = Buffer.alloc(SLOT_FRAME_MAX);
  private listener: (() => void) | null = null;
  private notifyPending = false;
  private closed = false;

  private constructor(capMod: CapModule, names: string[], opts: PcapCapOptions) {
    const qn = opts.queueFrames ?? 1024;
    this.qbuf = Buffer.alloc(qn * SLOT_SIZE);
    this.queue = new FrameBatch(qn, this.qbuf);
    this.interfaces = names.map((n) => interfaceInfo(n));
    this.ports = [];
    try {
      for (const info of this.interfaces) {
        const cap = new capMod.Cap();
        const rxBuf = Buffer.alloc(65535);
        const filter = opts.filter ?? (info.macText ? `not ether src ${info.macText}` : '');
        const linkType = cap.open(info.name, filter, opts.bufferSize ?? 32 << 20, rxBuf);
        if (linkType !== 'ETHERNET') {
          cap.close();
          throw new Error(`pcap: ${info.name} has link type ${linkType}, not Ethernet`);
        }
        cap.setMinBytes?.(0);
        const port: Port = { cap, info, rxBuf };
        cap.on('packet', (nbytes: number, trunc: boolean) => this.onPacket(port, nbytes, trunc));
        this.ports.push(port);
      }
    } catch (e) {
      for (const p of this.ports) p.cap.close();
      throw e;
    }
  }

  /** Opens a capture per interface (in `opts.netns`); rejects when `cap` is not installed. */
  static async open(ifnames: string | string[], opts: PcapCapOptions = {}): Promise<PcapCapIo> {
    const mod = await loadCap();
    if (!mod) throw new Error('the optional package "cap" is not installed (it needs libpcap-dev and a C++ compiler)');
    const names = typeof ifnames === 'string' ? [ifnames] : ifnames;
    if (names.length === 0) throw new RangeError('pcap: no interface given');
    return withNetns(opts.netns, () => new PcapCapIo(mod, names, opts));
  }

  private onPacket(port: Port, nbytes: number, trunc: boolean): void {
    // cap reuses rxBuf for the next frame: copy now (Buffer.copy: native, no allocation).
    if (trunc || nbytes > SLOT_FRAME_MAX) {
      this.queueDrops++;
      return;
    }
    const q = this.queue;
    if (this.qCount === q.capacity) {
      this.queueDrops++;
      return;
    }
    let slot = this.qHead + this.qCount;
    if (slot >= q.capacity) slot -= q.capacity;
    const off = slot * SLOT_SIZE + HEADROOM;
    port.rxBuf.copy(this.qbuf, off, 0, nbytes);
    q.off[slot] = off;
    q.len[slot] = nbytes;
    q.ifindex[slot] = port.info.index;
    this.qCount++;
    this.rxFrames++;
    if (this.listener && !this.notifyPending) {
      // One notification per event-loop turn, after libpcap has delivered what it had.
      this.notifyPending = true;
      setImmediate(this.notify);
    }
  }

  private readonly notify = (): void => {
    this.notifyPending = false;
    if (this.listener && this.qCount > 0) this.listener();
  };

  /** Moves queued frames into `batch` (up to its capacity); returns how many. */
  recv(batch: FrameBatch): number {
    const q = this.queue;
    let n = 0;
    while (this.qCount > 0 && n < batch.capacity) {
      const s = this.qHead;
      const len = q.len[s]!;
      const dst = n * SLOT_SIZE + HEADROOM;
      this.qbuf.copy(batch.buf, dst, q.off[s]!, q.off[s]! + len);
      batch.off[n] = dst;
      batch.len[n] = len;
      batch.flags[n] = 0;
      batch.ifindex[n] = q.ifindex[s]!;
      batch.verdict[n] = V_DROP;
      batch.reason[n] = 0;
      batch.tsUs[n] = 0;
      n++;
      this.qHead = s + 1 === q.capacity ? 0 : s + 1;
      this.qCount--;
    }
    batch.count = n;
    return n;
  }

  /** Sends frames with verdict V_FORWARD/V_REPLY out of batch.ifindex[i] (0 = first interface), one pcap_sendpacket each. */
  send(batch: FrameBatch): number {
    let sent = 0;
    for (let i = 0; i < batch.count; i++) {
      const v = batch.verdict[i];
      if (v !== V_FORWARD && v !== V_REPLY) continue;
      const port = this.portFor(batch.ifindex[i]!);
      if (!port) {
        this.txErrors++;
        this.lastTxError = `no pcap port for ifindex ${batch.ifindex[i]}`;
        continue;
      }
      const off = batch.off[i]!;
      const len = batch.len[i]!;
      // pcap_sendpacket takes a Buffer from its start: copy the frame there (native copy, no allocation).
      Buffer.prototype.copy.call(batch.buf, this.txBuf, 0, off, off + len);
      try {
        port.cap.send(this.txBuf, len);
        sent++;
      } catch (e) {
        this.txErrors++;
        this.lastTxError = (e as Error).message;
      }
    }
    this.txFrames += sent;
    return sent;
  }

  private portFor(ifindex: number): Port | undefined {
    if (ifindex === 0) return this.ports[0];
    for (const p of this.ports) if (p.info.index === ifindex) return p;
    return undefined;
  }

  /** Calls `onReadable` (from the event loop) whenever frames are queued. Returns a stop function. */
  watch(onReadable: () => void): () => void {
    this.listener = onReadable;
    if (this.qCount > 0 && !this.notifyPending) {
      this.notifyPending = true;
      setImmediate(this.notify);
    }
    return () => {
      if (this.listener === onReadable) this.listener = null;
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listener = null;
    for (const p of this.ports) p.cap.close();
  }
}
