/**
 * Who is on the other end of a Unix socket, as the kernel recorded it at connect()
 * time: getsockopt(SO_PEERCRED) gives pid/uid/gid, getsockopt(SO_PEERGROUPS) the
 * supplementary groups (Linux 4.13+). Nothing the client sends is trusted for this.
 * Node has no API for either, so libc is called through koffi on the accepted
 * socket's file descriptor. Also getgrnam() for `--group NAME`.
 */
import koffi, { type TypeObject } from 'koffi';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_PEERGROUPS = 59;
const ERANGE = 34;
/** struct ucred { pid_t pid; uid_t uid; gid_t gid; } */
const UCRED_SIZE = 12;

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
  /** Supplementary groups; empty when the kernel cannot report them. */
  groups: number[];
}

interface Libc {
  getsockopt(fd: number, level: number, name: number, val: Buffer, len: number[]): number;
  getgrnam(name: string): unknown;
  group: TypeObject;
}

let libc: Libc | null = null;
let loadError: string | null = null;

function bind(): Libc | null {
  if (libc !== null || loadError !== null) return libc;
  try {
    const lib = koffi.load('libc.so.6');
    libc = {
      getsockopt: lib.func('int getsockopt(int, int, int, _Inout_ void *, _Inout_ uint32_t *)') as Libc['getsockopt'],
      getgrnam: lib.func('void *getgrnam(const char *)') as Libc['getgrnam'],
      group: koffi.struct('ulvs_group', { gr_name: 'char *', gr_passwd: 'char *', gr_gid: 'uint32_t', gr_mem: 'void *' }),
    };
  } catch (e) {
    loadError = e instanceof Error ? e.message : String(e);
  }
  return libc;
}

/** Null when peer credentials can be read here, else why not (the daemon then treats every peer as unprivileged). */
export function peerCredUnavailable(): string | null {
  bind();
  return loadError;
}

/** The file descriptor behind a connected net.Socket (libuv pipe handle), or -1. */
export function socketFd(sock: Socket): number {
  const handle = (sock as unknown as { _handle?: { fd?: unknown } })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/** The kernel's record of the peer of `sock`, or null if it cannot be read (fail closed). */
export function peerCredentials(sock: Socket): PeerCred | null {
  const c = bind();
  const fd = socketFd(sock);
  if (c === null || fd < 0) return null;
  const buf = Buffer.alloc(UCRED_SIZE);
  const len = [UCRED_SIZE];
  if (c.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, buf, len) !== 0 || len[0] !== UCRED_SIZE) return null;
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8), groups: peerGroups(c, fd) };
}

function peerGroups(c: Libc, fd: number): number[] {
  let cap = 64;
  for (let tries = 0; tries < 4; tries++) {
    const buf = Buffer.alloc(cap * 4);
    const len = [buf.length];
    if (c.getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buf, len) === 0) {
      const out: number[] = [];
      for (let off = 0; off + 4 <= len[0]!; off += 4) out.push(buf.readUInt32LE(off));
      return out;
    }
    // ERANGE: the list is longer; the kernel wrote the size it needs into len.
    if (koffi.errno() !== ERANGE) return [];
    cap = Math.max(cap * 2, Math.ceil(len[0]! / 4));
  }
  return [];
}

/**
 * getgrnam(): the gid of a group name, or the number itself for a decimal gid;
 * null if unknown. Falls back to /etc/group when libc cannot be loaded.
 */
export function lookupGroup(name: string): number | null {
  if (/^[0-9]+$/.test(name)) {
    const n = Number(name);
    return n <= 0xffffffff ? n : null;
  }
  if (name.length === 0 || name.includes('\0')) return null;
  const c = bind();
  if (c !== null) {
    const p = c.getgrnam(name);
    if (p === null) return null;
    return (koffi.decode(p, c.group) as { gr_gid: number }).gr_gid;
  }
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f.length >= 3 && /^[0-9]+$/.test(f[2]!)) return Number(f[2]);
    }
  } catch {
    // no /etc/group: unknown
  }
  return null;
}
