/**
 * IpvsApi over the daemon's control socket (ctl/protocol.ts). One connection,
 * opened on the first call; requests may be pipelined, responses are matched by
 * id. A daemon that refuses an operation rejects with CtlError(errno) exactly as
 * the in-process LocalIpvsApi would; a socket failure rejects with the Node
 * system error (code ECONNREFUSED when no daemon listens, which the ipvsadm layer
 * reports like a missing ip_vs module).
 */
import net from 'node:net';
import { CtlError, type Errno } from './types.js';
import { ForwardingIpvsApi } from './forwarding-api.js';
import {
  clientSocketAddress, encodeRequest, LineReader, MAX_RESPONSE_BYTES,
  type OpArgs, type OpName, type OpResult, type SocketAddress,
} from './protocol.js';

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

function connectionError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export interface SocketIpvsApiOptions {
  /** Opens the connection (default net.connect); e.g. a test connecting inside another network namespace. */
  connect?: (path: string) => net.Socket;
}

export class SocketIpvsApi extends ForwardingIpvsApi {
  readonly address: SocketAddress;
  private readonly open: (path: string) => net.Socket;
  private sock: net.Socket | null = null;
  private connecting: Promise<net.Socket> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | null = null;

  constructor(address: SocketAddress = clientSocketAddress(), opts: SocketIpvsApiOptions = {}) {
    super();
    this.address = address;
    this.open = opts.connect ?? ((path) => net.connect(path));
  }

  /** Sends one operation and resolves with its result (the protocol's only primitive). */
  async call<K extends OpName>(op: K, ...args: OpArgs<K>): Promise<OpResult<K>> {
    const sock = await this.connect();
    const id = this.nextId++;
    return new Promise<OpResult<K>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      sock.write(encodeRequest(id, op, args));
    });
  }

  /** Closes the connection; calls still waiting reject. */
  close(): void {
    this.fail(connectionError('ECONNRESET', 'control connection closed'));
    this.sock?.destroy();
    this.sock = null;
    this.connecting = null;
  }

  private connect(): Promise<net.Socket> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.connecting !== null) return this.connecting;
    this.connecting = new Promise<net.Socket>((resolve, reject) => {
      const sock = this.open(this.address.path);
      const reader = new LineReader(MAX_RESPONSE_BYTES);
      let connected = false;
      sock.once('connect', () => {
        connected = true;
        this.sock = sock;
        resolve(sock);
      });
      sock.on('data', (chunk: Buffer) => {
        if (!reader.push(chunk, (line) => this.onLine(line))) {
          this.fail(connectionError('EMSGSIZE', 'response too large'));
          sock.destroy();
        }
      });
      sock.on('error', (e) => {
        if (!connected) reject(e);
        this.fail(e);
      });
      sock.on('close', () => {
        this.fail(connectionError('ECONNRESET', `the director closed the control connection (${this.address.display})`));
      });
    });
    return this.connecting;
  }

  private onLine(line: string): void {
    let r: { id?: unknown; ok?: unknown; result?: unknown; errno?: unknown; message?: unknown };
    try {
      r = JSON.parse(line) as typeof r;
    } catch {
      this.fail(connectionError('EPROTO', 'malformed response from the director'));
      this.sock?.destroy();
      return;
    }
    const p = typeof r.id === 'number' ? this.pending.get(r.id) : undefined;
    if (p === undefined) {
      // An answer to no request of ours (e.g. the daemon refusing an over-long line): fail everything.
      if (r.ok === false) this.fail(new CtlError(String(r.errno) as Errno, String(r.message ?? r.errno)));
      return;
    }
    this.pending.delete(r.id as number);
    if (r.ok === true) p.resolve(r.result);
    else p.reject(new CtlError(String(r.errno) as Errno, typeof r.message === 'string' ? r.message : undefined));
  }

  private fail(e: Error): void {
    if (this.failure === null) this.failure = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
