/**
 * The daemon side of the control protocol: listens on the control socket, frames
 * requests, checks the peer's kernel-reported credentials, and runs each request
 * through the dispatch table.
 *
 * Requests from all connections go through one queue and each runs to completion
 * before the next starts, so a listing is always a snapshot between two whole
 * changes (the table's operations are synchronous; the queue keeps that true even
 * if an operation ever awaits). Nothing a client sends can stop the daemon:
 * malformed JSON and unknown operations get an error response, an over-long line
 * gets EMSGSIZE and the connection is closed, a client that goes away simply
 * loses its responses. A request line is only run once complete; one that was
 * complete when its client disconnected still runs (as the kernel would finish a
 * delivered netlink message).
 */
import net from 'node:net';
import { chmodSync, unlinkSync } from 'node:fs';
import type { IpvsApi } from './api.js';
import { CtlError } from './types.js';
import { dispatch } from './dispatch.js';
import { AccessPolicy } from './access.js';
import { peerCredentials, type PeerCred } from './peercred.js';
import { encodeResponse, LineReader, MAX_REQUEST_BYTES, type Response, type SocketAddress } from './protocol.js';

export interface CtlServerOptions {
  address: SocketAddress;
  access?: AccessPolicy;
  maxRequestBytes?: number;
  /** Diagnostics (one line each, no newline); default: stderr. */
  log?: (line: string) => void;
  /** How to learn a peer's credentials (default SO_PEERCRED); tests may substitute. */
  credentials?: (sock: net.Socket) => PeerCred | null;
  /** Close a connection whose unread responses exceed this many bytes (a client that never reads). */
  maxBufferedResponseBytes?: number;
}

export interface CtlServerStats {
  connections: number;
  requests: number;
  failed: number;
  malformed: number;
}

/** Pipelined requests queued per connection before we stop reading from it. */
const PAUSE_AT = 256;
const RESUME_AT = 32;

class Conn {
  readonly reader: LineReader;
  inflight = 0;
  paused = false;
  closed = false;

  constructor(readonly sock: net.Socket, readonly privileged: boolean, maxBytes: number) {
    this.reader = new LineReader(maxBytes);
  }
}

export class CtlServer {
  readonly address: SocketAddress;
  readonly access: AccessPolicy;
  readonly stats: CtlServerStats = { connections: 0, requests: 0, failed: 0, malformed: 0 };
  private readonly server: net.Server;
  private readonly conns = new Set<Conn>();
  private readonly maxRequestBytes: number;
  private readonly maxBuffered: number;
  private readonly log: (line: string) => void;
  private readonly credentials: (sock: net.Socket) => PeerCred | null;
  private queue: Promise<void> = Promise.resolve();
  private listening = false;

  constructor(private readonly api: IpvsApi, opts: CtlServerOptions) {
    this.address = opts.address;
    this.access = opts.access ?? new AccessPolicy();
    this.maxRequestBytes = opts.maxRequestBytes ?? MAX_REQUEST_BYTES;
    this.maxBuffered = opts.maxBufferedResponseBytes ?? 256 << 20;
    this.log = opts.log ?? ((l) => process.stderr.write(`${l}\n`));
    this.credentials = opts.credentials ?? peerCredentials;
    this.server = net.createServer({ allowHalfOpen: true }, (sock) => this.accept(sock));
    this.server.maxConnections = 1024;
    this.server.on('error', (e) => {
      if (this.listening) this.log(`ulvs: control socket ${this.address.display}: ${e.message}`);
    });
  }

  /**
   * Starts listening. Rejects (code EADDRINUSE) if another daemon owns the name;
   * a filesystem socket left behind by a dead daemon is replaced.
   */
  async listen(): Promise<void> {
    try {
      await this.tryListen();
    } catch (e) {
      if (this.address.abstract || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
      if (await isAlive(this.address.path)) throw e;
      unlinkSync(this.address.path);
      await this.tryListen();
    }
    // Anyone may connect; what they may do is decided per request from their credentials.
    if (!this.address.abstract) chmodSync(this.address.path, 0o666);
    this.listening = true;
  }

  private tryListen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      this.server.once('error', onError);
      this.server.listen(this.address.path, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  /** Stops accepting, drops every connection, and waits for the request in progress. */
  async close(): Promise<void> {
    const wasListening = this.listening;
    this.listening = false;
    for (const c of this.conns) {
      c.closed = true;
      c.sock.destroy();
    }
    this.conns.clear();
    if (wasListening) await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.queue;
  }

  private accept(sock: net.Socket): void {
    let cred: PeerCred | null = null;
    try {
      cred = this.credentials(sock);
    } catch {
      cred = null;
    }
    const conn = new Conn(sock, this.access.privileged(cred), this.maxRequestBytes);
    this.conns.add(conn);
    this.stats.connections++;
    sock.on('error', () => { /* the peer went away; its requests still finish, responses are dropped */ });
    sock.on('close', () => {
      conn.closed = true;
      this.conns.delete(conn);
    });
    // The client finished sending: answer what is queued, then close our side.
    sock.on('end', () => this.whenIdle(() => sock.end()));
    sock.on('data', (chunk: Buffer) => {
      if (conn.closed) return;
      const ok = conn.reader.push(chunk, (line) => this.enqueue(conn, line));
      if (!ok) this.overflow(conn);
    });
  }

  private overflow(conn: Conn): void {
    conn.closed = true;
    this.stats.malformed++;
    const r: Response = {
      id: null, ok: false, errno: 'EMSGSIZE', message: `request longer than ${this.maxRequestBytes} bytes`,
    };
    // Earlier complete requests still get their answers first.
    this.whenIdle(() => {
      if (conn.sock.destroyed) return;
      conn.sock.end(encodeResponse(r));
      // The peer may keep sending into a paused socket: do not wait for it to close.
      setTimeout(() => conn.sock.destroy(), 1000).unref();
    });
    conn.sock.pause();
  }

  /** Runs `fn` after every request queued so far (never rejects the queue). */
  private whenIdle(fn: () => void): void {
    const run = (): void => {
      try {
        fn();
      } catch {
        // closing a socket that is already gone
      }
    };
    this.queue = this.queue.then(run, run);
  }

  private enqueue(conn: Conn, line: string): void {
    if (line === '' || line === '\r') return; // blank lines are ignored
    conn.inflight++;
    if (conn.inflight >= PAUSE_AT && !conn.paused) {
      conn.paused = true;
      conn.sock.pause();
    }
    this.queue = this.queue.then(() => this.handle(conn, line)).catch((e: unknown) => {
      this.log(`ulvs: internal error in the control loop: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    });
  }

  private async handle(conn: Conn, line: string): Promise<void> {
    this.stats.requests++;
    let id: number | string | null = null;
    let r: Response;
    try {
      let req: unknown;
      try {
        req = JSON.parse(line);
      } catch {
        throw new CtlError('EINVAL', 'malformed request: not JSON');
      }
      if (typeof req !== 'object' || req === null || Array.isArray(req)) {
        throw new CtlError('EINVAL', 'malformed request: not an object');
      }
      const o = req as Record<string, unknown>;
      const rid = o['id'];
      if (typeof rid === 'number' || typeof rid === 'string') id = rid;
      const result = await dispatch(this.api, o['op'], o['args'], conn.privileged);
      r = result === undefined ? { id, ok: true } : { id, ok: true, result };
    } catch (e) {
      this.stats.failed++;
      if (e instanceof CtlError) {
        if (e.errno === 'EINVAL' && e.message.startsWith('malformed')) this.stats.malformed++;
        r = { id, ok: false, errno: e.errno, message: e.message };
      } else {
        // Not a kernel-style refusal: a bug. Report it, keep serving.
        const msg = e instanceof Error ? e.message : String(e);
        this.log(`ulvs: internal error handling a request: ${e instanceof Error ? e.stack ?? msg : msg}`);
        r = { id, ok: false, errno: 'EINVAL', message: `internal error: ${msg}` };
      }
    }
    conn.inflight--;
    if (conn.paused && conn.inflight <= RESUME_AT && !conn.closed) {
      conn.paused = false;
      conn.sock.resume();
    }
    const sock = conn.sock;
    if (sock.destroyed || !sock.writable) return;
    sock.write(encodeResponse(r));
    if (sock.writableLength > this.maxBuffered) {
      this.log('ulvs: dropping a control connection that does not read its responses');
      conn.closed = true;
      sock.destroy();
    }
  }
}

/** Whether something accepts connections on a filesystem socket path. */
function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
