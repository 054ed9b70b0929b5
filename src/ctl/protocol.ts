/**
 * The control protocol between `ulvsadm` and `ulvs daemon` (docs/control-protocol.md):
 * newline-delimited JSON over a stream socket, one request line → one response line.
 *
 *   request:  {"id": 7, "op": "addService", "args": [ServiceSpec]}
 *   response: {"id": 7, "ok": true, "result": ...}
 *          or {"id": 7, "ok": false, "errno": "EEXIST", "message": "service already exists"}
 *
 * The operations are exactly the methods of IpvsApi (libipvs's calls), with the
 * method's parameters as `args` and its resolved value as `result`. Both the
 * client (ctl/client.ts) and the daemon (ctl/server.ts, ctl/dispatch.ts) import
 * their names and types from here.
 */
import type { IpvsApi } from './api.js';

export const PROTOCOL_VERSION = 1;

export type OpName = keyof IpvsApi;
export type OpArgs<K extends OpName> = Parameters<IpvsApi[K]>;
export type OpResult<K extends OpName> = Awaited<ReturnType<IpvsApi[K]>>;

/** Every operation, in libipvs's order. `satisfies` plus the check below keep it equal to keyof IpvsApi. */
export const OP_NAMES = [
  'getInfo',
  'addService', 'editService', 'delService', 'flush',
  'addDest', 'editDest', 'delDest',
  'zero',
  'getServices', 'getService', 'getConnections',
  'setTimeouts', 'getTimeouts',
  'startDaemon', 'stopDaemon', 'getDaemons',
  'addMarkRule', 'delMarkRule', 'getMarkRules',
] as const satisfies readonly OpName[];

// Compile-time: an IpvsApi method missing from OP_NAMES makes this line a type error.
type MissingOps = Exclude<OpName, (typeof OP_NAMES)[number]>;
const _allOpsListed: [MissingOps] extends [never] ? true : MissingOps = true;
void _allOpsListed;

const OP_SET: ReadonlySet<string> = new Set(OP_NAMES);

export function isOpName(s: unknown): s is OpName {
  return typeof s === 'string' && OP_SET.has(s);
}

export interface Request {
  /** Chosen by the client, echoed in the response (number or string). */
  id: number | string;
  op: OpName;
  args: unknown[];
}

export type Response =
  | { id: number | string | null; ok: true; result?: unknown }
  | { id: number | string | null; ok: false; errno: string; message: string };

/** Largest request line the daemon accepts (a request is one small record; this is generous). */
export const MAX_REQUEST_BYTES = 1 << 20;
/** Largest response line the client accepts (a listing of a very large table). */
export const MAX_RESPONSE_BYTES = 512 << 20;

export function encodeRequest(id: number | string, op: OpName, args: readonly unknown[]): string {
  return JSON.stringify({ id, op, args }) + '\n';
}

export function encodeResponse(r: Response): string {
  return JSON.stringify(r) + '\n';
}

// ------------------------------------------------------------------ socket address

/** The default socket: the abstract name `ulvs` (scoped to the network namespace). */
export const DEFAULT_SOCKET_NAME = 'ulvs';

/** Environment variable that points `ulvsadm` at another socket (same syntax as `--socket`). */
export const SOCKET_ENV = 'ULVS_SOCKET';

export interface SocketAddress {
  /** What node:net listens on / connects to ('\0name' for abstract sockets). */
  path: string;
  /** For messages: '@name' (abstract) or the file path. */
  display: string;
  abstract: boolean;
}

/**
 * `--socket NAME`: a name containing '/' is a filesystem socket; anything else is
 * an abstract socket name (a leading '@' is allowed and dropped). Abstract names
 * live in the network namespace, so each namespace has its own director.
 */
export function socketAddress(name: string = DEFAULT_SOCKET_NAME): SocketAddress {
  if (name.includes('/')) return { path: name, display: name, abstract: false };
  const bare = name.startsWith('@') ? name.slice(1) : name;
  if (bare.length === 0 || bare.length > 100 || bare.includes('\0')) {
    throw new RangeError(`bad socket name ${JSON.stringify(name)}`);
  }
  return { path: `\0${bare}`, display: `@${bare}`, abstract: true };
}

/** The socket `ulvsadm` uses: $ULVS_SOCKET or the default. */
export function clientSocketAddress(env: NodeJS.ProcessEnv = process.env): SocketAddress {
  const v = env[SOCKET_ENV];
  return socketAddress(v !== undefined && v !== '' ? v : DEFAULT_SOCKET_NAME);
}

// ------------------------------------------------------------------ framing

/**
 * Splits a byte stream into lines. A line longer than `maxBytes` (without its
 * newline) makes `push` report 'overflow': the stream's framing can no longer be
 * trusted and the caller closes the connection.
 */
export class LineReader {
  private parts: Buffer[] = [];
  private partLen = 0;

  constructor(private readonly maxBytes: number) {}

  /** Feeds one chunk; calls `onLine` for every complete line. Returns false on overflow. */
  push(chunk: Buffer, onLine: (line: string) => void): boolean {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const piece = chunk.subarray(start, nl);
      if (this.partLen + piece.length > this.maxBytes) return this.overflow();
      let line: string;
      if (this.partLen === 0) line = piece.toString('utf8');
      else {
        this.parts.push(piece);
        line = Buffer.concat(this.parts, this.partLen + piece.length).toString('utf8');
        this.parts = [];
        this.partLen = 0;
      }
      onLine(line);
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.partLen + rest.length > this.maxBytes) return this.overflow();
      this.parts.push(rest);
      this.partLen += rest.length;
    }
    return true;
  }

  /** Bytes of an unfinished line held so far. */
  get pending(): number {
    return this.partLen;
  }

  private overflow(): false {
    this.parts = [];
    this.partLen = 0;
    return false;
  }
}
