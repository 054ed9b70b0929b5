/**
 * The few libc calls the Linux I/O backends need (AF_PACKET sockets, poll, ioctl, TUN),
 * bound once through koffi. Pointers cross the FFI boundary as plain numbers
 * (`uintptr_t`): every buffer we hand to the kernel lives in native memory from
 * `nativeAlloc`, whose address never moves, so the hot path passes integers and
 * never builds pointer objects. Linux x86-64/arm64 (LP64) layouts only.
 */
import koffi from 'koffi';
import { openSync, closeSync } from 'node:fs';

// --- socket / packet constants (linux/socket.h, linux/if_packet.h, linux/if_ether.h) ---
export const AF_INET = 2;
export const AF_PACKET = 17;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0x800;
export const SOCK_CLOEXEC = 0x80000;
export const ETH_P_ALL = 0x0003;
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const SOL_PACKET = 263;
export const PACKET_ADD_MEMBERSHIP = 1;
export const PACKET_MR_PROMISC = 1;
export const PACKET_STATISTICS = 6;
export const PACKET_AUXDATA = 8;
export const PACKET_FANOUT = 18;
export const PACKET_QDISC_BYPASS = 20;
export const PACKET_IGNORE_OUTGOING = 23;
export const PACKET_VNET_HDR = 15;
/** struct virtio_net_hdr (linux/virtio_net.h, little-endian on AF_PACKET): flags, gso_type, hdr_len, gso_size, csum_start, csum_offset. */
export const VNET_HDR_LEN = 10;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const PACKET_FANOUT_HASH = 0;
export const PACKET_FANOUT_FLAG_DEFRAG = 0x8000;
/** The group's own PACKET_IGNORE_OUTGOING: a socket in a group is fed by the group's hook, which ignores the socket's option. */
export const PACKET_FANOUT_FLAG_IGNORE_OUTGOING = 0x4000;
/** sockaddr_ll.sll_pkttype values. */
export const PACKET_HOST = 0;
export const PACKET_BROADCAST = 1;
export const PACKET_MULTICAST = 2;
export const PACKET_OTHERHOST = 3;
export const PACKET_OUTGOING = 4;
/** tpacket_auxdata.tp_status bits. */
export const TP_STATUS_CSUMNOTREADY = 1 << 3;
export const TP_STATUS_VLAN_VALID = 1 << 4;
export const TP_STATUS_VLAN_TPID_VALID = 1 << 6;
export const TP_STATUS_CSUM_VALID = 1 << 7;
export const MSG_CTRUNC = 0x08;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const POLLIN = 0x001;
export const POLLERR = 0x008;
export const EINTR = 4;
export const EAGAIN = 11;
export const ENOBUFS = 105;
export const EMSGSIZE = 90;
export const ENETDOWN = 100;
export const ENXIO = 6;
export const CLONE_NEWNET = 0x40000000;
export const POLLOUT = 0x004;

// --- memory-mapped packet rings (linux/if_packet.h, sys/mman.h) ---
export const PACKET_RX_RING = 5;
export const PACKET_VERSION = 10;
export const PACKET_RESERVE = 12;
export const PACKET_TX_RING = 13;
export const PACKET_LOSS = 14;
export const TPACKET_V2 = 1;
export const TPACKET_V3 = 2;
/** Ring ownership (rx: block_status / tp_status; tx: tp_status). */
export const TP_STATUS_KERNEL = 0;
export const TP_STATUS_USER = 1;
export const TP_STATUS_AVAILABLE = 0;
export const TP_STATUS_SEND_REQUEST = 1;
export const TP_STATUS_SENDING = 2;
export const TP_STATUS_WRONG_FORMAT = 4;
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;

// --- ioctls (linux/sockios.h, linux/if_tun.h) ---
export const SIOCGIFFLAGS = 0x8913;
export const SIOCSIFFLAGS = 0x8914;
export const SIOCGIFADDR = 0x8915;
export const SIOCGIFNETMASK = 0x891b;
export const SIOCGIFMTU = 0x8921;
export const SIOCSIFMTU = 0x8922;
export const SIOCGIFHWADDR = 0x8927;
export const SIOCGIFINDEX = 0x8933;
export const TUNSETIFF = 0x400454ca;
export const IFF_UP = 0x1;
export const IFF_BROADCAST = 0x2;
export const IFF_LOOPBACK = 0x8;
export const IFF_POINTOPOINT = 0x10;
export const IFF_RUNNING = 0x40;
export const IFF_NOARP = 0x80;
export const IFF_PROMISC = 0x100;
export const IFF_TUN = 0x0001;
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
/** TUN/TAP: every packet read or written is preceded by a virtio_net_hdr (checksum and GSO offload). */
export const IFF_VNET_HDR = 0x4000;
export const IFNAMSIZ = 16;

// --- struct layouts (LP64) ---
/** struct msghdr is 56 bytes, struct mmsghdr adds msg_len (+4, padded to 64). */
export const MMSGHDR_SIZE = 64;
export const MSG_NAME = 0;
export const MSG_NAMELEN = 8;
export const MSG_IOV = 16;
export const MSG_IOVLEN = 24;
export const MSG_CONTROL = 32;
export const MSG_CONTROLLEN = 40;
export const MSG_FLAGS = 48;
export const MMSG_LEN = 56;
export const IOVEC_SIZE = 16;
/** struct sockaddr_ll: family(2) protocol(2, BE) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8). */
export const SOCKADDR_LL_SIZE = 20;
/** cmsghdr (len 8, level 4, type 4) + tpacket_auxdata (20) rounded: CMSG_SPACE(20) = 40; 64 leaves room. */
export const CONTROL_SPACE = 64;
export const CMSG_HDR = 16;
export const IFREQ_SIZE = 40;
export const POLLFD_SIZE = 8;

interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: number, len: number): number;
  setsockopt(fd: number, level: number, name: number, val: number, len: number): number;
  getsockopt(fd: number, level: number, name: number, val: number, lenp: number): number;
  recvmmsg(fd: number, vec: number, vlen: number, flags: number, timeout: number): number;
  sendmmsg(fd: number, vec: number, vlen: number, flags: number): number;
  poll(fds: number, nfds: number, timeoutMs: number): number;
  write(fd: number, buf: number, len: number): number;
  read(fd: number, buf: number, len: number): number;
  close(fd: number): number;
  ioctl(fd: number, req: number, arg: number): number;
  setns(fd: number, nstype: number): number;
  strerror(errnum: number): string;
  if_nameindex(): bigint | null;
  if_freenameindex(p: bigint): void;
  /** mmap returning the address as a number (-1 = MAP_FAILED); addresses stay below 2^47. */
  mmap(addr: number, len: number, prot: number, flags: number, fd: number, off: number): number;
  munmap(addr: number, len: number): number;
  send(fd: number, buf: number, len: number, flags: number): number;
  memcpy(dst: number, src: number, len: number): number;
}

let bound: Libc | null = null;

/** The bound libc functions (loaded on first use, so importing this module costs nothing). */
export function libc(): Libc {
  if (bound) return bound;
  const lib = koffi.load('libc.so.6');
  const ioctlVar = lib.func('int ioctl(int fd, unsigned long req, ...)');
  bound = {
    socket: lib.func('int socket(int, int, int)'),
    bind: lib.func('int bind(int, uintptr_t, uint32_t)'),
    setsockopt: lib.func('int setsockopt(int, int, int, uintptr_t, uint32_t)'),
    getsockopt: lib.func('int getsockopt(int, int, int, uintptr_t, uintptr_t)'),
    recvmmsg: lib.func('int recvmmsg(int, uintptr_t, uint32_t, int, uintptr_t)'),
    sendmmsg: lib.func('int sendmmsg(int, uintptr_t, uint32_t, int)'),
    poll: lib.func('int poll(uintptr_t, unsigned long, int)'),
    write: lib.func('intptr_t write(int, uintptr_t, size_t)'),
    read: lib.func('intptr_t read(int, uintptr_t, size_t)'),
    close: lib.func('int close(int)'),
    // ioctl is variadic in glibc: call it as such so the ABI is right on every arch.
    ioctl: (fd: number, req: number, arg: number) => ioctlVar(fd, req, 'uintptr_t', arg) as number,
    setns: lib.func('int setns(int, int)'),
    strerror: lib.func('const char *strerror(int)'),
    if_nameindex: lib.func('void *if_nameindex()'),
    if_freenameindex: lib.func('void if_freenameindex(void *)'),
    mmap: lib.func('intptr_t mmap(uintptr_t, size_t, int, int, int, int64_t)'),
    munmap: lib.func('int munmap(uintptr_t, size_t)'),
    send: lib.func('intptr_t send(int, uintptr_t, size_t, int)'),
    memcpy: lib.func('uintptr_t memcpy(uintptr_t, uintptr_t, size_t)'),
  } as unknown as Libc;
  return bound;
}

export function errno(): number {
  return koffi.errno();
}

/** An Error carrying errno and its text, e.g. "bind(eth9): No such device (errno 19)". */
export class SysError extends Error {
  constructor(readonly call: string, readonly errno: number) {
    super(`${call}: ${libc().strerror(errno)} (errno ${errno})`);
  }
}

export function check(rc: number, call: string): number {
  if (rc < 0) throw new SysError(call, koffi.errno());
  return rc;
}

/**
 * Native memory that never moves: the address (for the kernel) and a Uint8Array
 * over the same bytes (for JS). Freed explicitly with `nativeFree`.
 */
export interface NativeMem {
  readonly addr: number;
  readonly bytes: Uint8Array;
  /** koffi's pointer handle, needed to free the block. */
  readonly handle: unknown;
}

export function nativeAlloc(size: number): NativeMem {
  const handle = koffi.alloc('uint8_t', size);
  const addr = Number(koffi.address(handle));
  const bytes = new Uint8Array(koffi.view(handle, size));
  bytes.fill(0);
  return { addr, bytes, handle };
}

export function nativeFree(m: NativeMem): void {
  koffi.free(m.handle);
}

/** Writes a 64-bit little-endian pointer/size value (< 2^53) into `u32` at byte offset `off` (8-aligned). */
export function put64(u32: Uint32Array, off: number, v: number): void {
  u32[off >>> 2] = v >>> 0;
  u32[(off >>> 2) + 1] = Math.floor(v / 4294967296) >>> 0;
}

/** Writes an interface name (NUL-terminated, at most 15 bytes) into an ifreq at `off`. */
export function putIfName(bytes: Uint8Array, off: number, name: string): void {
  if (name.length === 0 || name.length >= IFNAMSIZ) throw new RangeError(`bad interface name ${JSON.stringify(name)}`);
  bytes.fill(0, off, off + IFNAMSIZ);
  for (let i = 0; i < name.length; i++) bytes[off + i] = name.charCodeAt(i) & 0xff;
}

/**
 * Runs `fn` with this thread's network namespace switched to `netns` (a name under
 * /var/run/netns, or a path), then switches back. Sockets and TUN devices created
 * inside `fn` stay in that namespace for their whole life, which lets one process
 * drive several lab namespaces. setns() only affects the calling thread, and `fn`
 * is synchronous, so nothing else in this process runs inside the other namespace.
 */
export function withNetns<T>(netns: string | undefined, fn: () => T): T {
  if (!netns) return fn();
  const c = libc();
  const path = netns.includes('/') ? netns : `/var/run/netns/${netns}`;
  const self = openSync('/proc/thread-self/ns/net', 'r');
  let target = -1;
  try {
    target = openSync(path, 'r');
    check(c.setns(target, CLONE_NEWNET), `setns(${netns})`);
    try {
      return fn();
    } finally {
      // If this fails the thread is stranded in the lab namespace: refuse to continue.
      if (c.setns(self, CLONE_NEWNET) < 0) {
        const e = koffi.errno();
        process.stderr.write(`ulvs: cannot return from netns ${netns}: errno ${e}\n`);
        process.abort();
      }
    }
  } finally {
    if (target >= 0) closeSync(target);
    closeSync(self);
  }
}
