/**
 * AF_PACKET (SOCK_RAW) backend: batches of frames in and out with one
 * recvmmsg/sendmmsg per up to `batchSize` frames, through koffi.
 *
 * Memory: the kernel reads and writes the batch's own arena (`FrameBatch.buf`)
 * directly. A JS ArrayBuffer's backing store never moves, so its address (from
 * koffi.address) stays valid for the buffer's life: no copies, no manual free,
 * and a frame rewritten in place is sent from the slot it was received into.
 * The per-socket kernel structures (mmsghdr[], iovec[], sockaddr_ll[], cmsg
 * space) live in one ArrayBuffer per socket and are rewritten per call with
 * integer stores only: nothing is allocated per frame or per batch.
 *
 * Sockets:
 * - one rx socket per interface, created with protocol 0 (so it queues nothing)
 *   and then bound with ETH_P_ALL to its ifindex: otherwise frames from every
 *   interface could slip in between socket() and bind();
 * - PACKET_AUXDATA gives tp_status (CSUMNOTREADY / CSUM_VALID) and the VLAN tag,
 *   which the kernel strips from the frame when the device offloads VLANs; we put
 *   the tag back into the frame (4 bytes of headroom) like libpcap does;
 * - PACKET_IGNORE_OUTGOING so frames this host sends are not read back;
 * - one unbound tx socket (protocol 0: it never receives) with
 *   PACKET_QDISC_BYPASS; every message carries a sockaddr_ll naming the egress
 *   ifindex, so one sendmmsg can spray frames over several interfaces. Frames
 *   sent with the qdisc bypassed are not shown to other packet sockets (tcpdump
 *   on the director's own interface will not see them; capture on the peer).
 * - non-blocking: recvmmsg's own timeout only fires after a first datagram, so
 *   waiting is done with poll() (`wait`) or libuv (`watch`).
 * - optionally (`vnetHdr`) PACKET_VNET_HDR on every socket: each frame then travels with a
 *   struct virtio_net_hdr (checksum and segmentation offload state), so GSO/GRO super-frames
 *   of up to 64 KiB are received whole (into VNET_SLOT_SIZE slots) and sent whole, and a
 *   partial checksum goes out partial: the kernel, or the peer, finishes both. The header
 *   lives in the arena right in front of the frame (in the headroom; segments of a
 *   FRAME_SEGMENTED frame are SEG_GAP bytes apart for it), so each message is still one
 *   iovec: the kernel keeps its single-segment fast path (ITER_UBUF), which a second iovec
 *   for the header would lose. Measured on a veth (CPU per frame, medians): +2% to receive
 *   and +4% to send 60-byte frames, +7% to receive 1514-byte ones. The tx socket then goes
 *   through the qdisc layer (no PACKET_QDISC_BYPASS, see AfPacketOptions.qdiscBypass), where
 *   the kernel can segment.
 */
import koffi from 'koffi';
import {
  AF_PACKET, SOCK_RAW, SOCK_NONBLOCK, SOCK_CLOEXEC, ETH_P_ALL, SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE, SO_SNDBUF,
  SO_SNDBUFFORCE, SOL_PACKET, PACKET_AUXDATA, PACKET_IGNORE_OUTGOING, PACKET_QDISC_BYPASS, PACKET_ADD_MEMBERSHIP,
  PACKET_VNET_HDR, VNET_HDR_LEN, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_F_DATA_VALID,
  PACKET_MR_PROMISC, PACKET_FANOUT, PACKET_STATISTICS, PACKET_OUTGOING,
  TP_STATUS_CSUMNOTREADY, TP_STATUS_CSUM_VALID, TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID, MSG_DONTWAIT,
  MSG_TRUNC, MMSGHDR_SIZE, MSG_NAME, MSG_NAMELEN, MSG_IOV, MSG_IOVLEN, MSG_CONTROL, MSG_CONTROLLEN, MSG_FLAGS,
  MMSG_LEN, IOVEC_SIZE, SOCKADDR_LL_SIZE, CONTROL_SPACE, CMSG_HDR, POLLIN, POLLFD_SIZE, EAGAIN, EINTR,
  check, errno, libc, put64, withNetns,
} from './afpacket-libc.js';
import { interfaceInfo, type InterfaceInfo } from './afpacket-netdev.js';
import { attachFanoutFilter, fanoutJoinValue, rxRoles } from './afpacket-fanout.js';
import {
  FrameBatch, HEADROOM, VNET_SLOT_SIZE, FRAME_CSUM_NOT_READY, FRAME_CSUM_VALID, FRAME_OUTGOING, FRAME_GSO,
  FRAME_SEGMENTED, GSO_UDP_L4, SEG_GAP, V_DROP, V_FORWARD, V_REPLY, type PacketIo,
} from './batch.js';

export interface AfPacketOptions {
  /** Open the sockets inside this network namespace (name under /var/run/netns, or a path). */
  netns?: string;
  /** Frames per recvmmsg/sendmmsg call (default 64). */
  batchSize?: number;
  /** Receive buffer per rx socket, bytes (default 32 MiB; SO_RCVBUFFORCE, falling back to SO_RCVBUF). */
  rcvbuf?: number;
  /** Send buffer of the tx socket, bytes (default 4 MiB). */
  sndbuf?: number;
  /**
   * PACKET_QDISC_BYPASS on the tx socket (default true, but false with vnetHdr: the bypass
   * (__dev_direct_xmit) drops a GSO frame that the egress device cannot take whole, since
   * segmenting it in software replaces the skb; the qdisc path segments it and sends the pieces).
   */
  qdiscBypass?: boolean;
  /** PACKET_IGNORE_OUTGOING on the rx sockets (default true). */
  ignoreOutgoing?: boolean;
  /** PACKET_AUXDATA on the rx sockets (default true). */
  auxdata?: boolean;
  /** Put the interfaces in promiscuous mode while open (default false). */
  promisc?: boolean;
  /**
   * Join PACKET_FANOUT group `group` (hash mode, with defrag) so several processes/workers share the load
   * (a group belongs to one device: the k-th interface joins group `group + k`);
   * ARP and IPv6 neighbour discovery then come from one more socket per interface, outside the group, so
   * every member sees all of it (afpacket-fanout.ts).
   */
  fanoutGroup?: number;
  /** Open only a tx socket (no rx sockets): for generators and injectors. */
  txOnly?: boolean;
  /**
   * PACKET_VNET_HDR on every socket (default false): GSO/GRO super-frames are received and
   * sent whole and partial checksums stay partial (see the module comment). Batches must then
   * have VNET_SLOT_SIZE slots to hold super-frames (`createBatch` makes such batches).
   */
  vnetHdr?: boolean;
}

export interface AfPacketStats {
  /** recvmmsg calls that returned at least one frame, and frames they returned. */
  rxCalls: number;
  rxFrames: number;
  /** Frames larger than a slot (GSO/GRO super-frames without vnetHdr): dropped here. */
  rxTruncated: number;
  /** sendmmsg calls and frames the kernel accepted. */
  txCalls: number;
  txFrames: number;
  /** Frames the kernel refused (EMSGSIZE, ENETDOWN, ...); lastTxErrno tells why. */
  txErrors: number;
  lastTxErrno: number;
  lastRxErrno: number;
  /** From PACKET_STATISTICS, accumulated: frames the kernel queued and dropped (rcvbuf full). */
  kernelPackets: number;
  kernelDrops: number;
}

interface SockState {
  fd: number;
  ifindex: number;
  /** One ArrayBuffer per socket: mmsghdr[], iovec[], sockaddr_ll[], control[]. */
  u8: Uint8Array;
  u16: Uint16Array;
  u32: Uint32Array;
  addr: number;
  iovOff: number;
  nameOff: number;
  ctlOff: number;
  /** 32 bytes for setsockopt/getsockopt/bind arguments. */
  scratchOff: number;
  /** rx: the arena, first slot and entry count the iovecs currently point at (rewritten only when these change). */
  iovBuf: Uint8Array | null;
  iovStart: number;
  iovCount: number;
  /** rx: entries the kernel filled on the last call; only those need their in/out lengths reset. */
  dirty: number;
  /**
   * rx, while watched: the socket may hold frames (its poll fired, and no read since
   * came back short). A short read means the queue was empty at that moment, and
   * epoll is level-triggered, so until the next poll event another recvmmsg would
   * only return EAGAIN — a syscall (1.1–1.7 µs here) per socket per drain saved.
   */
  armed: boolean;
}

const DEFAULT_BATCH = 64;
const MAX_TX_RETRIES = 8;

/** Native (stable) address of a Uint8Array's first byte; cached per buffer. */
const addrCache = new WeakMap<Uint8Array, number>();
function addrOf(buf: Uint8Array): number {
  let a = addrCache.get(buf);
  if (a === undefined) {
    if (buf.byteLength === 0) throw new Error('AF_PACKET: batch arena is empty or detached');
    // Touching .buffer moves a small on-heap typed array's bytes off the JS heap, where they never move.
    void buf.buffer;
    a = Number(koffi.address(buf));
    addrCache.set(buf, a);
  }
  return a;
}

function setIntOpt(fd: number, level: number, name: number, value: number, s: SockState, what: string): number {
  s.u32[s.scratchOff >>> 2] = value >>> 0;
  const rc = libc().setsockopt(fd, level, name, s.addr + s.scratchOff, 4);
  if (rc < 0 && what) check(rc, what);
  return rc;
}

function newSockState(fd: number, ifindex: number, batchSize: number, rx: boolean): SockState {
  const iovOff = batchSize * MMSGHDR_SIZE;
  const nameOff = iovOff + batchSize * IOVEC_SIZE;
  // sockaddr_ll slots are 24 bytes apart so the ifindex field stays 4-byte aligned.
  const ctlOff = nameOff + batchSize * 24;
  const scratchOff = ctlOff + batchSize * CONTROL_SPACE;
  const size = scratchOff + 32;
  const ab = new ArrayBuffer(size);
  const u8 = new Uint8Array(ab);
  const s: SockState = {
    fd, ifindex, u8, u16: new Uint16Array(ab), u32: new Uint32Array(ab), addr: addrOf(u8), iovOff, nameOff, ctlOff, scratchOff,
    iovBuf: null, iovStart: 0, iovCount: 0, dirty: 0, armed: true,
  };
  // Constant fields: every mmsghdr j points at iovec j, sockaddr_ll j and control block j.
  for (let j = 0; j < batchSize; j++) {
    const m = j * MMSGHDR_SIZE;
    put64(s.u32, m + MSG_NAME, s.addr + nameOff + j * 24);
    put64(s.u32, m + MSG_IOV, s.addr + iovOff + j * IOVEC_SIZE);
    put64(s.u32, m + MSG_IOVLEN, 1);
    // Only rx sockets ask for ancillary data (PACKET_AUXDATA); tx messages carry none.
    if (rx) put64(s.u32, m + MSG_CONTROL, s.addr + ctlOff + j * CONTROL_SPACE);
  }
  return s;
}

export class AfPacketIo implements PacketIo {
  /** Facts about each interface opened for receive (same order as the rx sockets). */
  readonly interfaces: InterfaceInfo[];
  readonly batchSize: number;
  /** PACKET_VNET_HDR is on (opts.vnetHdr). */
  readonly vnetHdr: boolean;
  readonly stats: AfPacketStats = {
    rxCalls: 0, rxFrames: 0, rxTruncated: 0, txCalls: 0, txFrames: 0, txErrors: 0, lastTxErrno: 0, lastRxErrno: 0,
    kernelPackets: 0, kernelDrops: 0,
  };
  private readonly rx: SockState[] = [];
  private readonly tx: SockState;
  private readonly defaultIfindex: number;
  private readonly pollfds: Uint8Array;
  private readonly pollU32: Uint32Array;
  private readonly pollAddr: number;
  private readonly watchers: Array<{ stop(): void; close(): void }> = [];
  private next = 0;
  private closed = false;

  /**
   * Opens rx sockets on `ifnames` (one or many) and a tx socket, all in `opts.netns`.
   * Frames leave through `batch.ifindex[i]`, or the first interface when that is 0.
   */
  static open(ifnames: string | string[], opts: AfPacketOptions = {}): AfPacketIo {
    const names = typeof ifnames === 'string' ? [ifnames] : ifnames;
    if (names.length === 0) throw new RangeError('AF_PACKET: no interface given');
    return withNetns(opts.netns, () => new AfPacketIo(names, opts));
  }

  private constructor(names: string[], opts: AfPacketOptions) {
    const c = libc();
    this.batchSize = opts.batchSize ?? DEFAULT_BATCH;
    if (!(this.batchSize >= 1 && this.batchSize <= 1024)) throw new RangeError('AF_PACKET: batchSize must be 1..1024');
    const vnet = opts.vnetHdr ?? false;
    this.vnetHdr = vnet;
    this.interfaces = names.map((n) => interfaceInfo(n));
    this.defaultIfindex = this.interfaces[0]!.index;
    const created: number[] = [];
    try {
      const txFd = check(c.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), 'socket(AF_PACKET)');
      created.push(txFd);
      this.tx = newSockState(txFd, 0, this.batchSize, false);
      // Before anything is sent: the kernel then reads a virtio_net_hdr in front of every frame.
      if (vnet) setIntOpt(txFd, SOL_PACKET, PACKET_VNET_HDR, 1, this.tx, 'setsockopt(PACKET_VNET_HDR)');
      const sndbuf = opts.sndbuf ?? 4 << 20;
      if (setIntOpt(txFd, SOL_SOCKET, SO_SNDBUFFORCE, sndbuf, this.tx, '') < 0) {
        setIntOpt(txFd, SOL_SOCKET, SO_SNDBUF, sndbuf, this.tx, 'setsockopt(SO_SNDBUF)');
      }
      if (opts.qdiscBypass ?? !vnet) setIntOpt(txFd, SOL_PACKET, PACKET_QDISC_BYPASS, 1, this.tx, 'setsockopt(PACKET_QDISC_BYPASS)');
      const fanout = opts.fanoutGroup !== undefined;
      // With fanout, a second socket per interface, outside the group, reads the neighbour traffic (afpacket-fanout.ts).
      if (!opts.txOnly) {
        for (const { iface, neighbour } of rxRoles(this.interfaces.length, fanout)) {
          const info = this.interfaces[iface]!;
          const fd = check(c.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), 'socket(AF_PACKET)');
          created.push(fd);
          const s = newSockState(fd, info.index, this.batchSize, true);
          // Before bind(): no frame may be queued without its virtio_net_hdr.
          if (vnet) setIntOpt(fd, SOL_PACKET, PACKET_VNET_HDR, 1, s, 'setsockopt(PACKET_VNET_HDR)');
          if (fanout) attachFanoutFilter(fd, neighbour);
          const rcvbuf = neighbour ? 1 << 20 : opts.rcvbuf ?? 32 << 20;
          if (setIntOpt(fd, SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf, s, '') < 0) {
            setIntOpt(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf, s, 'setsockopt(SO_RCVBUF)');
          }
          if (opts.auxdata ?? true) setIntOpt(fd, SOL_PACKET, PACKET_AUXDATA, 1, s, 'setsockopt(PACKET_AUXDATA)');
          if (opts.ignoreOutgoing ?? true) setIntOpt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1, s, 'setsockopt(PACKET_IGNORE_OUTGOING)');
          if (opts.promisc) {
            // struct packet_mreq { int mr_ifindex; u16 mr_type; u16 mr_alen; u8 mr_address[8]; }
            const sc = s.scratchOff;
            s.u8.fill(0, sc, sc + 16);
            s.u32[sc >>> 2] = info.index;
            s.u16[(sc + 4) >>> 1] = PACKET_MR_PROMISC;
            check(c.setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, s.addr + sc, 16), 'setsockopt(PACKET_ADD_MEMBERSHIP)');
          }
          // bind(sockaddr_ll{AF_PACKET, htons(ETH_P_ALL), ifindex}) starts the capture.
          const sc = s.scratchOff;
          s.u8.fill(0, sc, sc + SOCKADDR_LL_SIZE);
          s.u16[sc >>> 1] = AF_PACKET;
          s.u16[(sc + 2) >>> 1] = ((ETH_P_ALL & 0xff) << 8) | (ETH_P_ALL >>> 8);
          s.u32[(sc + 4) >>> 2] = info.index;
          check(c.bind(fd, s.addr + sc, SOCKADDR_LL_SIZE), `bind(${info.name})`);
          if (fanout && !neighbour) {
            setIntOpt(fd, SOL_PACKET, PACKET_FANOUT, fanoutJoinValue(opts.fanoutGroup!, iface, opts.ignoreOutgoing ?? true), s,
              'setsockopt(PACKET_FANOUT)');
          }
          this.rx.push(s);
        }
      }
    } catch (e) {
      for (const fd of created) c.close(fd);
      throw e;
    }
    const n = Math.max(1, this.rx.length);
    const pab = new ArrayBuffer(n * POLLFD_SIZE);
    this.pollfds = new Uint8Array(pab);
    this.pollU32 = new Uint32Array(pab);
    this.pollAddr = addrOf(this.pollfds);
  }

  /**
   * A batch suitable for this backend (`batchSize` slots). Any FrameBatch works; with vnetHdr,
   * this one has slots for whole super-frames and is marked `txOffload`.
   */
  createBatch(capacity = this.batchSize): FrameBatch {
    if (!this.vnetHdr) return new FrameBatch(capacity);
    const b = new FrameBatch(capacity, undefined, VNET_SLOT_SIZE);
    b.txOffload = true;
    return b;
  }

  /** File descriptors of the rx sockets (for external event loops); with fanout, the neighbour sockets follow the group's. */
  get rxFds(): number[] {
    return this.rx.map((s) => s.fd);
  }

  /** File descriptor of the tx socket. */
  get txFd(): number {
    return this.tx.fd;
  }

  /** Receives what is queued on the rx sockets (round-robin, without blocking) into `batch`. */
  recv(batch: FrameBatch): number {
    batch.count = 0;
    const nrx = this.rx.length;
    if (nrx === 0) return 0;
    const bufAddr = addrOf(batch.buf);
    const first = this.next;
    this.next = first + 1 === nrx ? 0 : first + 1;
    const watched = this.watchers.length > 0;
    for (let k = 0; k < nrx && batch.count < batch.capacity; k++) {
      let si = first + k;
      if (si >= nrx) si -= nrx;
      const s = this.rx[si]!;
      if (watched && !s.armed) continue;
      if (this.recvFrom(s, batch, bufAddr)) s.armed = false;
    }
    return batch.count;
  }

  /** Reads what fits into the batch from one socket; true when the read came back short (queue drained). */
  private recvFrom(s: SockState, batch: FrameBatch, bufAddr: number): boolean {
    const start = batch.count;
    let max = batch.capacity - start;
    if (max > this.batchSize) max = this.batchSize;
    const u32 = s.u32;
    const slot = batch.slotSize;
    // Reset only what the kernel changed last time, and re-aim the iovecs only when the batch or slot changes:
    // an idle poll then costs one syscall and no per-entry stores.
    let reset = s.dirty;
    if (s.iovBuf !== batch.buf || s.iovStart !== start || s.iovCount < max) {
      // With the vnet header the kernel writes it first, into the headroom right before the frame.
      const hdr = this.vnetHdr ? VNET_HDR_LEN : 0;
      for (let j = 0; j < max; j++) {
        const iov = s.iovOff + j * IOVEC_SIZE;
        put64(u32, iov, bufAddr + (start + j) * slot + HEADROOM - hdr);
        u32[(iov + 8) >>> 2] = batch.frameMax + hdr;
        u32[((iov + 8) >>> 2) + 1] = 0;
      }
      s.iovBuf = batch.buf;
      s.iovStart = start;
      s.iovCount = max;
      reset = max;
    }
    for (let j = 0; j < reset; j++) {
      const m = (j * MMSGHDR_SIZE) >>> 2;
      u32[m + (MSG_NAMELEN >>> 2)] = SOCKADDR_LL_SIZE;
      u32[m + (MSG_CONTROLLEN >>> 2)] = CONTROL_SPACE;
      u32[m + (MSG_CONTROLLEN >>> 2) + 1] = 0;
      u32[m + (MSG_FLAGS >>> 2)] = 0;
    }
    const n = libc().recvmmsg(s.fd, s.addr, max, MSG_DONTWAIT, 0);
    s.dirty = n > 0 ? n : 0;
    if (n <= 0) {
      if (n < 0) {
        const e = errno();
        if (e !== EAGAIN && e !== EINTR) this.stats.lastRxErrno = e;
      }
      return true;
    }
    this.stats.rxCalls++;
    this.stats.rxFrames += n;
    const buf = batch.buf;
    const u16 = s.u16;
    const vnet = this.vnetHdr;
    // msg_len counts the virtio_net_hdr too.
    const hdrLen = vnet ? VNET_HDR_LEN : 0;
    let i = start;
    for (let j = 0; j < n; j++) {
      const m = (j * MMSGHDR_SIZE) >>> 2;
      let len = u32[m + (MMSG_LEN >>> 2)]! - hdrLen;
      if ((u32[m + (MSG_FLAGS >>> 2)]! & MSG_TRUNC) !== 0) {
        // Larger than a slot: a GRO/TSO super-frame (without vnetHdr). Not forwardable as is.
        this.stats.rxTruncated++;
        continue;
      }
      let vflags = 0;
      let gsoType = 0;
      if (vnet) {
        // struct virtio_net_hdr { u8 flags, gso_type; le16 hdr_len, gso_size, csum_start, csum_offset; },
        // read before anything below may write over the headroom it lies in.
        const vh = (start + j) * slot + HEADROOM - VNET_HDR_LEN;
        vflags = buf[vh]!;
        gsoType = buf[vh + 1]!;
        if (gsoType !== 0) batch.gsoSize[i] = buf[vh + 4]! | (buf[vh + 5]! << 8);
        if ((vflags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) {
          batch.csumStart[i] = buf[vh + 6]! | (buf[vh + 7]! << 8);
          batch.csumOffset[i] = buf[vh + 8]! | (buf[vh + 9]! << 8);
        }
      }
      let off = i * slot + HEADROOM;
      if (i !== start + j) {
        // An earlier frame of this call was dropped: move this one down so frame i sits in slot i.
        const from = (start + j) * slot + HEADROOM;
        buf.copyWithin(off, from, from + len);
      }
      const name = s.nameOff + j * 24;
      const pkttype = s.u8[name + 10]!;
      let flags = pkttype === PACKET_OUTGOING ? FRAME_OUTGOING : 0;
      const ctl = s.ctlOff + j * CONTROL_SPACE;
      if (u32[m + (MSG_CONTROLLEN >>> 2)]! >= CMSG_HDR + 20 && u32[(ctl + 8) >>> 2] === SOL_PACKET &&
          u32[(ctl + 12) >>> 2] === PACKET_AUXDATA) {
        // struct tpacket_auxdata { u32 tp_status, tp_len, tp_snaplen; u16 tp_mac, tp_net, tp_vlan_tci, tp_vlan_tpid; }
        const status = u32[(ctl + CMSG_HDR) >>> 2]!;
        if ((status & TP_STATUS_CSUMNOTREADY) !== 0) flags |= FRAME_CSUM_NOT_READY;
        else if ((status & TP_STATUS_CSUM_VALID) !== 0) flags |= FRAME_CSUM_VALID;
        if ((status & TP_STATUS_VLAN_VALID) !== 0 && len >= 12) {
          // The device took the 802.1Q tag out of the frame (VLAN offload): put it back in front of the EtherType.
          const tci = u16[(ctl + CMSG_HDR + 16) >>> 1]!;
          const tpid = (status & TP_STATUS_VLAN_TPID_VALID) !== 0 ? u16[(ctl + CMSG_HDR + 18) >>> 1]! : 0x8100;
          buf.copyWithin(off - 4, off, off + 12);
          off -= 4;
          len += 4;
          buf[off + 12] = tpid >>> 8;
          buf[off + 13] = tpid & 0xff;
          buf[off + 14] = tci >>> 8;
          buf[off + 15] = tci & 0xff;
        }
      }
      if (vnet) {
        if ((vflags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) {
          flags = (flags & ~FRAME_CSUM_VALID) | FRAME_CSUM_NOT_READY;
          // csum_start counts from the frame as the kernel delivered it: a VLAN tag put back moves it.
          batch.csumStart[i] += i * slot + HEADROOM - off;
        } else if ((vflags & VIRTIO_NET_HDR_F_DATA_VALID) !== 0) {
          flags |= FRAME_CSUM_VALID;
        }
        if (gsoType !== 0) {
          flags |= FRAME_GSO;
          batch.gsoType[i] = gsoType;
        }
      }
      batch.off[i] = off;
      batch.len[i] = len;
      batch.flags[i] = flags;
      batch.ifindex[i] = u32[(name + 4) >>> 2]!;
      batch.verdict[i] = V_DROP;
      batch.reason[i] = 0;
      batch.tsUs[i] = 0;
      i++;
    }
    batch.count = i;
    return n < max;
  }

  /**
   * Sends every frame i < batch.count whose verdict is V_FORWARD or V_REPLY, out of
   * interface batch.ifindex[i] (0 = the first interface). Frames the kernel refuses
   * are counted in stats.txErrors and skipped. Returns the frames sent.
   */
  send(batch: FrameBatch): number {
    if (this.vnetHdr) return this.sendVnet(batch);
    const bufAddr = addrOf(batch.buf);
    const verdict = batch.verdict;
    const buf = batch.buf;
    let sent = 0;
    let j = 0;
    for (let i = 0; i < batch.count; i++) {
      const v = verdict[i];
      if (v !== V_FORWARD && v !== V_REPLY) continue;
      const off = batch.off[i]!;
      this.stageMessage(j, bufAddr + off, batch.len[i]!, buf, off, batch.ifindex[i]!);
      if (++j === this.batchSize) {
        sent += this.flush(j);
        j = 0;
      }
    }
    if (j > 0) sent += this.flush(j);
    return sent;
  }

  /**
   * send() with PACKET_VNET_HDR: every message is the frame's virtio_net_hdr, written into the
   * VNET_HDR_LEN bytes in front of the frame, then the frame, as one iovec. A FRAME_SEGMENTED
   * frame goes out as its segments, in order (the SEG_GAP bytes between them take their
   * headers), each a frame of its own, with the frame's offload fields: their checksums may be
   * partial (FRAME_CSUM_NOT_READY, csumStart relative to each segment), and with FRAME_GSO each
   * is itself a super-frame for the kernel to cut (the parts of a GUE remcsum frame, gue-gso.ts).
   */
  private sendVnet(batch: FrameBatch): number {
    const bufAddr = addrOf(batch.buf);
    const verdict = batch.verdict;
    const buf = batch.buf;
    let sent = 0;
    let j = 0;
    for (let i = 0; i < batch.count; i++) {
      const v = verdict[i];
      if (v !== V_FORWARD && v !== V_REPLY) continue;
      const fl = batch.flags[i]!;
      const off = batch.off[i]!;
      const len = batch.len[i]!;
      const ifx = batch.ifindex[i]!;
      let nseg = 1;
      let stride = 0;
      if ((fl & FRAME_SEGMENTED) !== 0) {
        nseg = batch.segs[i]!;
        stride = batch.segStride[i]!;
      }
      for (let k = 0; k < nseg; k++) {
        const o = off + k * stride;
        const h = o - VNET_HDR_LEN;
        if ((fl & (FRAME_CSUM_NOT_READY | FRAME_GSO)) === 0) {
          // A complete frame: no offload asked for.
          buf[h] = 0; buf[h + 1] = 0; buf[h + 2] = 0; buf[h + 3] = 0; buf[h + 4] = 0;
          buf[h + 5] = 0; buf[h + 6] = 0; buf[h + 7] = 0; buf[h + 8] = 0; buf[h + 9] = 0;
        } else {
          this.vnetHeader(h, batch, i, fl, o);
        }
        this.stageMessage(j, bufAddr + h, VNET_HDR_LEN + (k + 1 < nseg ? stride - SEG_GAP : len - k * stride), buf, o, ifx);
        if (++j === this.batchSize) {
          sent += this.flush(j);
          j = 0;
        }
      }
    }
    if (j > 0) sent += this.flush(j);
    return sent;
  }

  /**
   * Message j of the next sendmmsg: one iovec of `len` bytes at native address `addr`, sent out
   * of `ifx` (0 = the first interface) with the EtherType of the frame at buf[frameOff].
   */
  private stageMessage(j: number, addr: number, len: number, buf: Uint8Array, frameOff: number, ifx: number): void {
    const t = this.tx;
    const u32 = t.u32;
    const iov = t.iovOff + j * IOVEC_SIZE;
    put64(u32, iov, addr);
    u32[(iov + 8) >>> 2] = len;
    u32[((iov + 8) >>> 2) + 1] = 0;
    // sockaddr_ll: AF_PACKET, the frame's own EtherType as sll_protocol (both network order), egress ifindex.
    const name = t.nameOff + j * 24;
    u32[name >>> 2] = AF_PACKET | (buf[frameOff + 12]! << 16) | (buf[frameOff + 13]! << 24);
    u32[(name + 4) >>> 2] = ifx === 0 ? this.defaultIfindex : ifx;
    u32[(name + 8) >>> 2] = 0; // hatype, pkttype, halen: unused for SOCK_RAW sends
    const m = (j * MMSGHDR_SIZE) >>> 2;
    u32[m + (MSG_NAMELEN >>> 2)] = SOCKADDR_LL_SIZE;
    u32[m + (MSG_FLAGS >>> 2)] = 0;
  }

  /**
   * Writes, at buf[h, h + VNET_HDR_LEN), the virtio_net_hdr for frame i (at `off`) that asks the
   * kernel to finish its checksum and/or cut it into segments (little-endian fields). hdr_len
   * (the bytes the kernel keeps linear) is the whole transport header for GSO frames, else the
   * minimum the kernel accepts.
   */
  private vnetHeader(h: number, batch: FrameBatch, i: number, fl: number, off: number): void {
    const buf = batch.buf;
    let vflags = 0;
    let gsoType = 0;
    let gsoSize = 0;
    let hl = 0;
    let cs = 0;
    let co = 0;
    const gso = (fl & FRAME_GSO) !== 0;
    if ((fl & FRAME_CSUM_NOT_READY) !== 0) {
      vflags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      cs = batch.csumStart[i]!;
      co = batch.csumOffset[i]!;
      hl = cs + co + 2;
      if (gso) hl = cs + ((batch.gsoType[i]! & 0x7f) === GSO_UDP_L4 ? 8 : (buf[off + cs + 12]! >>> 4) << 2);
    }
    if (gso) {
      gsoType = batch.gsoType[i]!;
      gsoSize = batch.gsoSize[i]!;
    }
    buf[h] = vflags;
    buf[h + 1] = gsoType;
    buf[h + 2] = hl & 0xff; buf[h + 3] = hl >>> 8;
    buf[h + 4] = gsoSize & 0xff; buf[h + 5] = gsoSize >>> 8;
    buf[h + 6] = cs & 0xff; buf[h + 7] = cs >>> 8;
    buf[h + 8] = co & 0xff; buf[h + 9] = co >>> 8;
  }

  private flush(n: number): number {
    const t = this.tx;
    const c = libc();
    let k = 0;
    let sent = 0;
    let retries = 0;
    while (k < n) {
      const r = c.sendmmsg(t.fd, t.addr + k * MMSGHDR_SIZE, n - k, MSG_DONTWAIT);
      if (r > 0) {
        this.stats.txCalls++;
        k += r;
        sent += r;
        continue;
      }
      const e = errno();
      if ((e === EAGAIN || e === EINTR) && retries < MAX_TX_RETRIES) {
        // Send buffer full (only without qdisc bypass): wait a little for it to drain.
        retries++;
        this.waitWritable(1);
        continue;
      }
      // The kernel refused message k (too big for the MTU, interface down, ...): skip it.
      this.stats.txErrors++;
      this.stats.lastTxErrno = e;
      k++;
    }
    this.stats.txFrames += sent;
    return sent;
  }

  private waitWritable(ms: number): void {
    // struct pollfd { int fd; short events; short revents; } with POLLOUT = 4.
    this.pollU32[0] = this.tx.fd;
    this.pollU32[1] = 4;
    libc().poll(this.pollAddr, 1, ms);
  }

  /**
   * Blocks up to `timeoutMs` (0 = just check, -1 = forever) until a frame is queued
   * on an rx socket. Blocking poll(): use it in a worker thread, or use `watch`.
   */
  wait(timeoutMs: number): boolean {
    const n = this.rx.length;
    if (n === 0) return false;
    const p = this.pollU32;
    for (let k = 0; k < n; k++) {
      p[k * 2] = this.rx[k]!.fd;
      p[k * 2 + 1] = POLLIN;
    }
    return libc().poll(this.pollAddr, n, timeoutMs) > 0;
  }

  /**
   * Marks every rx socket as possibly holding frames, so the next recv() reads each of them
   * even after a short read (busy polling: frames arrive without a poll event in between).
   */
  armAll(): void {
    for (const s of this.rx) s.armed = true;
  }

  /**
   * Calls `onReadable` from the Node event loop whenever an rx socket has frames
   * (libuv poll on the socket fds, via koffi). Returns a function that stops it.
   */
  watch(onReadable: () => void): () => void {
    const handles = this.rx.map((s) => koffi.node.poll(s.fd, { readable: true }, () => {
      s.armed = true;
      onReadable();
    }));
    this.watchers.push(...handles);
    return () => {
      for (const h of handles) {
        const idx = this.watchers.indexOf(h);
        if (idx >= 0) {
          this.watchers.splice(idx, 1);
          h.stop();
          h.close();
        }
      }
    };
  }

  /** Reads (and resets) the kernel's PACKET_STATISTICS and adds them to stats. */
  readKernelStats(): AfPacketStats {
    const c = libc();
    for (const s of this.rx) {
      // struct tpacket_stats { u32 tp_packets; u32 tp_drops; } at 0, socklen_t at 8.
      const w = s.scratchOff >>> 2;
      s.u32[w] = 0;
      s.u32[w + 1] = 0;
      s.u32[w + 2] = 8;
      if (c.getsockopt(s.fd, SOL_PACKET, PACKET_STATISTICS, s.addr + s.scratchOff, s.addr + s.scratchOff + 8) === 0) {
        this.stats.kernelPackets += s.u32[w]!;
        this.stats.kernelDrops += s.u32[w + 1]!;
      }
    }
    return this.stats;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const h of this.watchers.splice(0)) {
      h.stop();
      h.close();
    }
    const c = libc();
    for (const s of this.rx) c.close(s.fd);
    c.close(this.tx.fd);
  }
}
