/**
 * Interface facts the director needs at start-up: index, MAC, MTU, flags and
 * addresses. Everything goes through the calling thread's network namespace
 * (if_nameindex uses netlink, the rest are ioctls on a throw-away socket), so it
 * answers correctly inside `withNetns` too, unlike /sys/class/net, which shows the
 * namespace that mounted sysfs. Control plane only: allocation is fine here.
 */
import koffi from 'koffi';
import { execFileSync } from 'node:child_process';
import {
  AF_INET, SOCK_DGRAM, SOCK_CLOEXEC, IFREQ_SIZE, IFF_UP, IFF_LOOPBACK, IFF_RUNNING,
  SIOCGIFADDR, SIOCGIFFLAGS, SIOCGIFHWADDR, SIOCGIFINDEX, SIOCGIFMTU, SIOCGIFNETMASK, SIOCSIFFLAGS, SIOCSIFMTU,
  check, errno, libc, nativeAlloc, nativeFree, putIfName, withNetns, SysError,
} from './afpacket-libc.js';
import { formatIp4 } from '../util/ip.js';
import { formatMac } from '../util/mac.js';

export interface NetInterface {
  index: number;
  name: string;
}

export interface InterfaceInfo {
  index: number;
  name: string;
  /** Hardware address (6 bytes for Ethernet; empty for TUN and other L3 devices). */
  mac: Uint8Array;
  /** "aa:bb:cc:dd:ee:ff", or "" when there is no hardware address. */
  macText: string;
  /** ARPHRD_* type (1 = Ethernet, 772 = loopback, 65534 = none/TUN). */
  hwType: number;
  mtu: number;
  /** IFF_* flags. */
  flags: number;
  up: boolean;
  running: boolean;
  loopback: boolean;
  /** Primary IPv4 address (host-order uint32) and prefix length, or null when none. */
  ipv4: number | null;
  ipv4Prefix: number;
}

/** All interfaces of the current (thread's) network namespace, by index order. */
export function listInterfaces(netns?: string): NetInterface[] {
  return withNetns(netns, () => {
    const c = libc();
    const p = c.if_nameindex();
    if (p === null) throw new SysError('if_nameindex', errno());
    const out: NetInterface[] = [];
    try {
      // struct if_nameindex { unsigned if_index; char *if_name; } = 16 bytes; ends with {0, NULL}.
      for (let off = 0; ; off += 16) {
        const index = koffi.decode(p, off, 'uint32_t') as number;
        if (index === 0) break;
        const name = koffi.decode(p, off + 8, 'const char *') as string;
        out.push({ index, name });
      }
    } finally {
      c.if_freenameindex(p);
    }
    return out.sort((a, b) => a.index - b.index);
  });
}

function withIfreq<T>(fn: (fd: number, req: ReturnType<typeof nativeAlloc>) => T): T {
  const c = libc();
  const fd = check(c.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), 'socket(AF_INET)');
  const req = nativeAlloc(IFREQ_SIZE);
  try {
    return fn(fd, req);
  } finally {
    nativeFree(req);
    c.close(fd);
  }
}

function ioctlName(fd: number, req: ReturnType<typeof nativeAlloc>, name: string, op: number, what: string): number {
  putIfName(req.bytes, 0, name);
  req.bytes.fill(0, 16);
  return check(libc().ioctl(fd, op, req.addr), `${what}(${name})`);
}

/** Index, MAC, MTU, flags and primary IPv4 address of one interface. */
export function interfaceInfo(name: string, netns?: string): InterfaceInfo {
  return withNetns(netns, () => withIfreq((fd, req) => {
    const dv = new DataView(req.bytes.buffer, req.bytes.byteOffset, IFREQ_SIZE);
    ioctlName(fd, req, name, SIOCGIFINDEX, 'SIOCGIFINDEX');
    const index = dv.getInt32(16, true);
    ioctlName(fd, req, name, SIOCGIFMTU, 'SIOCGIFMTU');
    const mtu = dv.getInt32(16, true);
    ioctlName(fd, req, name, SIOCGIFFLAGS, 'SIOCGIFFLAGS');
    const flags = dv.getUint16(16, true);
    ioctlName(fd, req, name, SIOCGIFHWADDR, 'SIOCGIFHWADDR');
    // struct sockaddr: sa_family (ARPHRD_*) then sa_data.
    const hwType = dv.getUint16(16, true);
    const hasMac = hwType === 1 || hwType === 772;
    const mac = hasMac ? req.bytes.slice(18, 24) : new Uint8Array(0);
    let ipv4: number | null = null;
    let ipv4Prefix = 0;
    putIfName(req.bytes, 0, name);
    req.bytes.fill(0, 16);
    if (libc().ioctl(fd, SIOCGIFADDR, req.addr) === 0) {
      // struct sockaddr_in: family(2) port(2) addr(4, network order).
      ipv4 = dv.getUint32(20, false);
      ioctlName(fd, req, name, SIOCGIFNETMASK, 'SIOCGIFNETMASK');
      const mask = dv.getUint32(20, false);
      ipv4Prefix = popcount32(mask);
    }
    return {
      index, name, mac, macText: mac.length === 6 ? formatMac(mac) : '', hwType, mtu, flags,
      up: (flags & IFF_UP) !== 0, running: (flags & IFF_RUNNING) !== 0, loopback: (flags & IFF_LOOPBACK) !== 0,
      ipv4, ipv4Prefix,
    };
  }));
}

/** Sets IFF_UP (and leaves the other flags alone). */
export function setInterfaceUp(name: string, up: boolean, netns?: string): void {
  withNetns(netns, () => withIfreq((fd, req) => {
    const dv = new DataView(req.bytes.buffer, req.bytes.byteOffset, IFREQ_SIZE);
    ioctlName(fd, req, name, SIOCGIFFLAGS, 'SIOCGIFFLAGS');
    const flags = dv.getUint16(16, true);
    dv.setUint16(16, up ? flags | IFF_UP : flags & ~IFF_UP, true);
    check(libc().ioctl(fd, SIOCSIFFLAGS, req.addr), `SIOCSIFFLAGS(${name})`);
  }));
}

export function setInterfaceMtu(name: string, mtu: number, netns?: string): void {
  withNetns(netns, () => withIfreq((fd, req) => {
    const dv = new DataView(req.bytes.buffer, req.bytes.byteOffset, IFREQ_SIZE);
    putIfName(req.bytes, 0, name);
    req.bytes.fill(0, 16);
    dv.setInt32(16, mtu, true);
    check(libc().ioctl(fd, SIOCSIFMTU, req.addr), `SIOCSIFMTU(${name})`);
  }));
}

export interface InterfaceAddress {
  ifname: string;
  index: number;
  family: 4 | 6;
  /** Address text as `ip` prints it. */
  local: string;
  prefixlen: number;
  scope: string;
}

/** Every IPv4/IPv6 address, from `ip -j addr` (optionally `ip -n NETNS`). */
export function interfaceAddresses(netns?: string): InterfaceAddress[] {
  const args = netns ? ['-n', netns, '-j', 'addr', 'show'] : ['-j', 'addr', 'show'];
  const text = execFileSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  const links = JSON.parse(text) as Array<{ ifindex: number; ifname: string; addr_info?: Array<{ family: string; local: string; prefixlen: number; scope: string }> }>;
  const out: InterfaceAddress[] = [];
  for (const l of links) {
    for (const a of l.addr_info ?? []) {
      if (a.family !== 'inet' && a.family !== 'inet6') continue;
      out.push({ ifname: l.ifname, index: l.ifindex, family: a.family === 'inet' ? 4 : 6, local: a.local, prefixlen: a.prefixlen, scope: a.scope });
    }
  }
  return out;
}

function popcount32(v: number): number {
  let n = 0;
  for (let x = v >>> 0; x !== 0; x = (x & (x - 1)) >>> 0) n++;
  return n;
}

/** "10.0.0.1/24" for the primary IPv4 of an InterfaceInfo, or "" (diagnostics). */
export function ipv4Text(info: InterfaceInfo): string {
  return info.ipv4 === null ? '' : `${formatIp4(info.ipv4)}/${info.ipv4Prefix}`;
}
