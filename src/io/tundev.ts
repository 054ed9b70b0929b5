/**
 * A TUN device (/dev/net/tun, IFF_TUN | IFF_NO_PI): packets written to it enter the
 * local IP stack as if they had arrived on the device, and packets the stack routes
 * to it can be read. Used by the userspace tunnel decapsulator: the inner packet of
 * an IPIP/GRE/GUE frame is written here, so the kernel accepts it for the VIP on lo.
 *
 * The device lives as long as the file descriptor (not persistent) and is created in
 * the caller's network namespace (or `netns`, via setns for the duration of the open).
 * A packet written here gets CHECKSUM_NONE: its L4 checksum must be complete, unless the device
 * is opened with `vnetHdr`: then every packet written is preceded by a virtio_net_hdr
 * (VNET_HDR_LEN bytes), which may leave the checksum partial and describe a GSO super-frame
 * (the local stack takes it whole, as it takes a GRO-merged packet).
 */
import koffi from 'koffi';
import { openSync, closeSync, constants as fsc } from 'node:fs';
import {
  IFF_NO_PI, IFF_TAP, IFF_TUN, IFF_VNET_HDR, IFREQ_SIZE, TUNSETIFF, EAGAIN, check, errno, libc, putIfName, withNetns,
} from './afpacket-libc.js';
import { interfaceInfo, setInterfaceUp } from './afpacket-netdev.js';

export interface TunOptions {
  netns?: string;
  /** IFF_TAP (Ethernet frames) instead of IFF_TUN (IP packets). */
  tap?: boolean;
  /** Bring the device up (default true). */
  up?: boolean;
  /** IFF_VNET_HDR: packets carry a virtio_net_hdr in front (default false). */
  vnetHdr?: boolean;
}

const addrCache = new WeakMap<Uint8Array, number>();
function addrOf(buf: Uint8Array): number {
  let a = addrCache.get(buf);
  if (a === undefined) {
    // Touching .buffer moves a small on-heap typed array's bytes off the JS heap, where they never move.
    void buf.buffer;
    a = Number(koffi.address(buf));
    addrCache.set(buf, a);
  }
  return a;
}

export class TunDevice {
  /** Packets written, and writes the kernel refused (lastErrno tells why). */
  written = 0;
  writeErrors = 0;
  lastErrno = 0;
  private closed = false;

  private constructor(
    readonly fd: number, readonly name: string, readonly ifindex: number,
    /** Opened with IFF_VNET_HDR (TunOptions.vnetHdr). */
    readonly vnetHdr: boolean,
  ) {}

  /** Creates (or attaches to) TUN device `name` ("" lets the kernel pick tunN). */
  static open(name: string, opts: TunOptions = {}): TunDevice {
    return withNetns(opts.netns, () => {
      // libuv opens every file with O_CLOEXEC.
      const fd = openSync('/dev/net/tun', fsc.O_RDWR | fsc.O_NONBLOCK);
      try {
        const req = new Uint8Array(new ArrayBuffer(IFREQ_SIZE));
        if (name) putIfName(req, 0, name);
        const flags = (opts.tap ? IFF_TAP : IFF_TUN) | IFF_NO_PI | (opts.vnetHdr ? IFF_VNET_HDR : 0);
        req[16] = flags & 0xff;
        req[17] = flags >>> 8;
        check(libc().ioctl(fd, TUNSETIFF, addrOf(req)), `TUNSETIFF(${name || 'tun%d'})`);
        let end = 0;
        while (end < 16 && req[end] !== 0) end++;
        const actual = String.fromCharCode(...req.subarray(0, end));
        if (opts.up ?? true) setInterfaceUp(actual, true);
        return new TunDevice(fd, actual, interfaceInfo(actual).index, opts.vnetHdr ?? false);
      } catch (e) {
        closeSync(fd);
        throw e;
      }
    });
  }

  /** Writes one packet, bytes [off, off+len) of `buf` (no copy). Returns false if the kernel refused it. */
  write(buf: Uint8Array, off: number, len: number): boolean {
    const r = libc().write(this.fd, addrOf(buf) + off, len);
    if (r === len) {
      this.written++;
      return true;
    }
    this.writeErrors++;
    this.lastErrno = r < 0 ? errno() : 0;
    return false;
  }

  /** Reads one packet into `buf` at `off` (at most `max` bytes); returns its length, or 0 when none is queued. */
  read(buf: Uint8Array, off: number, max: number): number {
    const r = libc().read(this.fd, addrOf(buf) + off, max);
    if (r >= 0) return r;
    const e = errno();
    if (e !== EAGAIN) this.lastErrno = e;
    return 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}
