/**
 * AF_PACKET backend over the kernel's memory-mapped packet rings (PACKET_MMAP):
 * a receive ring (TPACKET_V2 by default, or TPACKET_V3) and a TPACKET_V3 transmit
 * ring per interface, all mapped into one contiguous region of this process. Same
 * PacketIo contract and the same per-frame metadata as AfPacketIo (afpacket.ts),
 * so the data plane can run on either (`ulvs daemon --backend afpacket-ring`).
 *
 * Why one region: the engine rewrites frames in place in its batch's arena, and
 * copying between two JS buffers without allocating (DESIGN rule 1) is only cheap
 * inside one buffer (`copyWithin`, ~30 ns for a small frame; an FFI memcpy costs
 * ~90 ns and `set(subarray())` allocates a view per frame). So the region holds
 *   [batch arena: batchSize slots][rx ring if0][rx ring if1]…[tx ring if0]…
 * and `createBatch()` returns the one FrameBatch whose `buf` is the whole region:
 *   - zero-copy (default): a frame's `off` points into the rx ring itself. The ring
 *     has room in front of every frame (PACKET_RESERVE = HEADROOM), so VLAN
 *     re-insertion and tunnel encapsulation work as in a slot. Ring slots (V2) or
 *     blocks (V3) go back to the kernel at the next recv(): frames of a batch stay
 *     valid until then.
 *   - copy (`zeroCopy: false`): each frame is copied into its slot (one copyWithin).
 * Either way transmit copies each frame into a tx ring slot (one copyWithin) and
 * kicks the kernel with one send() per interface per batch. Batches that are not
 * this io's (the engine's TxQueue, tests) work too, through memcpy.
 *
 * Receive: an empty recv() reads one word of ring memory, no syscall.
 * - TPACKET_V3 (`rxVersion: 3`): the kernel packs variable-size frames into fixed
 *   blocks and hands a block over (block_status |= TP_STATUS_USER) when it is full or
 *   when `retireTovMs` passes; poll() wakes only on that hand-over, so below the rate
 *   that fills a block every frame waits up to retireTovMs (≥ 1 ms). Measured on a veth
 *   lab: a 1 ms round trip instead of ~40 µs, and keep-alive HTTP through the director
 *   at 0.35–0.65× of recvmmsg. Good for bulk capture, wrong for a forwarder.
 * - TPACKET_V2 (default): one fixed slot per frame, each handed over (and poll() woken)
 *   as it arrives, like recvmmsg; slots are sized for the MTU, so a small frame takes a
 *   whole slot (more ring memory per frame than V3).
 * The per-frame tp_status carries what PACKET_AUXDATA carries for recvmmsg
 * (CSUMNOTREADY, CSUM_VALID, VLAN tag), mapped to the same FRAME_* flags.
 *
 * Transmit: a frame slot is ours while its tp_status is AVAILABLE; we write the
 * frame and set SEND_REQUEST; send() makes the kernel walk the ring from its head
 * and transmit every SEND_REQUEST slot in order. Slots are filled strictly in ring
 * order, so our head always equals the kernel's. PACKET_LOSS makes the kernel skip a
 * malformed slot instead of stopping the ring on it; frames over the MTU are caught
 * here first and counted like sendmmsg's EMSGSIZE.
 *
 * Sockets: rx sockets are created with protocol 0 and bound with ETH_P_ALL after the
 * ring exists (nothing from other interfaces slips in), with PACKET_IGNORE_OUTGOING;
 * tx sockets are bound to their interface with protocol 0 (they never receive), with
 * PACKET_QDISC_BYPASS. Memory ordering: the ring is shared with the kernel; x86-64
 * keeps loads and stores in program order (TSO), which is what reading a status word
 * before the frame, and writing the frame before its status, rely on.
 */
import koffi from 'koffi';
import {
  AF_PACKET, SOCK_RAW, SOCK_NONBLOCK, SOCK_CLOEXEC, ETH_P_ALL, SOL_SOCKET, SO_SNDBUF, SO_SNDBUFFORCE, SOL_PACKET,
  PACKET_IGNORE_OUTGOING, PACKET_QDISC_BYPASS, PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC, PACKET_FANOUT,
  PACKET_STATISTICS, PACKET_OUTGOING,
  PACKET_VERSION, PACKET_RESERVE,
  PACKET_RX_RING, PACKET_TX_RING, PACKET_LOSS, TPACKET_V2, TPACKET_V3, TP_STATUS_USER, TP_STATUS_KERNEL, TP_STATUS_AVAILABLE,
  TP_STATUS_SEND_REQUEST, TP_STATUS_SENDING, TP_STATUS_WRONG_FORMAT, TP_STATUS_CSUMNOTREADY, TP_STATUS_CSUM_VALID,
  TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID, MSG_DONTWAIT, SOCKADDR_LL_SIZE, POLLIN, POLLOUT, POLLFD_SIZE,
  PROT_READ, PROT_WRITE, MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_NORESERVE, EAGAIN, EINTR, ENOBUFS,
  EMSGSIZE, ENXIO, SysError, check, errno, libc, nativeAlloc, nativeFree, withNetns, type NativeMem,
} from './afpacket-libc.js';
import { interfaceInfo, type InterfaceInfo } from './afpacket-netdev.js';
import {
  FrameBatch, HEADROOM, SLOT_FRAME_MAX, SLOT_SIZE, FRAME_CSUM_NOT_READY, FRAME_CSUM_VALID, FRAME_OUTGOING,
  V_DROP, V_FORWARD, V_REPLY, type PacketIo,
} from './batch.js';
import { AfPacketIo, type AfPacketStats } from './afpacket.js';
import { attachFanoutFilter, fanoutJoinValue, rxRoles } from './afpacket-fanout.js';

export interface AfPacketRingOptions {
  /** Open the sockets inside this network namespace (name under /var/run/netns, or a path). */
  netns?: string;
  /** Most frames per recv() and per transmit kick (default 64). */
  batchSize?: number;
  /**
   * Receive ring layout (default 2). TPACKET_V2: one fixed-size slot per frame, each handed
   * over (and poll() woken) as it arrives. TPACKET_V3: variable-size frames packed into
   * blocks, a block handed over when full or after retireTovMs (latency, see above).
   */
  rxVersion?: 2 | 3;
  /** Receive ring per interface, bytes (default 32 MiB: 16384 V2 slots at MTU 1500; rounded to whole blocks). */
  rxRingBytes?: number;
  /** Ring block size, bytes (power of two, ≥ 4096; default 64 KiB). */
  rxBlockBytes?: number;
  /** TPACKET_V3 tp_retire_blk_tov: a partly filled block is handed over after this many ms (default 1). */
  retireTovMs?: number;
  /** Transmit ring slots per interface (default 512). */
  txFrames?: number;
  /** Batches from createBatch() point into the rx ring instead of holding copies (default true). */
  zeroCopy?: boolean;
  /** PACKET_QDISC_BYPASS on the tx sockets (default true). */
  qdiscBypass?: boolean;
  /** PACKET_IGNORE_OUTGOING on the rx sockets (default true). */
  ignoreOutgoing?: boolean;
  /** Put the interfaces in promiscuous mode while open (default false). */
  promisc?: boolean;
  /**
   * Join PACKET_FANOUT group `group` (hash mode, with defrag) so several processes/workers share the load
   * (a group belongs to one device: the k-th interface joins group `group + k`);
   * ARP and IPv6 neighbour discovery then come from one more (small, TPACKET_V2) ring per interface,
   * outside the group, so every member sees all of it (afpacket-fanout.ts).
   */
  fanoutGroup?: number;
  /** Open only tx rings (no rx rings): for generators and injectors. */
  txOnly?: boolean;
  /**
   * How frames leave (default 'ring'): copied into the TPACKET_V3 tx ring, one send() per
   * batch; or 'sendmmsg': the recvmmsg backend's sendmmsg, its iovecs pointing at the frames
   * where they are (in the rx ring for zero-copy batches), so userspace copies nothing.
   */
  txMode?: 'ring' | 'sendmmsg';
}

export interface AfPacketRingStats extends AfPacketStats {
  /** Receive ring units read and handed back to the kernel: blocks (TPACKET_V3) or frames (V2). */
  rxBlocks: number;
  /** From PACKET_STATISTICS (TPACKET_V3): times the kernel found no free block. */
  kernelFreezes: number;
}

/**
 * A receive ring is a circle of units the kernel and we pass back and forth through a
 * status word: blocks of frames (TPACKET_V3, status in the block descriptor) or single
 * frame slots (TPACKET_V2, status in the frame header).
 */
interface RxRing {
  fd: number;
  ifindex: number;
  v3: boolean;
  /** Ring start, unit count and size (bytes, in the region), the status word's offset in a unit. */
  off: number;
  blocks: number;
  blockSize: number;
  statusAt: number;
  /** Unit being read; V3: offset of its next frame and frames of it not read yet (0 = not started). */
  blk: number;
  pkt: number;
  left: number;
  /** Zero-copy: units before `blk` read completely but still lent to the caller's batch. */
  held: number;
}

interface TxRing {
  fd: number;
  ifindex: number;
  /** Largest frame the device takes: MTU + Ethernet header (+ 4 for an 802.1Q tag). */
  maxLen: number;
  off: number;
  frameSize: number;
  frames: number;
  /** Next slot to fill (equals the kernel's head), and slots filled since the last kick. */
  head: number;
  queued: number;
}

// struct tpacket_block_desc: u32 version, u32 offset_to_priv, then tpacket_hdr_v1 from byte 8.
const BD_STATUS = 8;
const BD_NUM_PKTS = 12;
const BD_FIRST_PKT = 16;
// struct tpacket3_hdr (48 bytes with padding), then struct sockaddr_ll.
const H3_NEXT = 0;
const H3_SNAPLEN = 12;
const H3_LEN = 16;
const H3_STATUS = 20;
const H3_MAC = 24;
const H3_VLAN_TCI = 32;
const H3_VLAN_TPID = 36;
const H3_SLL = 48;
// struct tpacket2_hdr (32 bytes with padding), then struct sockaddr_ll.
const H2_STATUS = 0;
const H2_LEN = 4;
const H2_SNAPLEN = 8;
const H2_MAC = 12;
const H2_VLAN_TCI = 24;
const H2_VLAN_TPID = 26;
const H2_SLL = 32;
/** Largest tp_net for SOCK_RAW + V2: TPACKET_ALIGN(tp_hdrlen 52 + 16) + reserve; the frame starts a MAC header before. */
const V2_NETOFF = 80 + HEADROOM;
/** Without PACKET_TX_HAS_OFF the kernel takes a tx frame from tp_hdrlen - sizeof(sockaddr_ll) = 48. */
const TX_DATA = 48;
/** The V3 rx ring still wants a nominal frame size (it must divide into blocks and hold header + reserve). */
const RX_NOMINAL_FRAME = 2048;
const PAGE = 4096;
const DEFAULT_BATCH = 64;
const MAX_TX_RETRIES = 8;
const TX_BUSY = TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING;
const TX_NOT_TAKEN = TP_STATUS_SEND_REQUEST | TP_STATUS_WRONG_FORMAT;

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;
function pow2AtLeast(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Native (stable) address of a foreign batch's arena; cached per buffer. */
const addrCache = new WeakMap<Uint8Array, number>();
function addrOf(buf: Uint8Array): number {
  let a = addrCache.get(buf);
  if (a === undefined) {
    if (buf.byteLength === 0) throw new Error('AF_PACKET ring: batch arena is empty or detached');
    // Touching .buffer moves a small on-heap typed array's bytes off the JS heap, where they never move.
    void buf.buffer;
    a = Number(koffi.address(buf));
    addrCache.set(buf, a);
  }
  return a;
}

export class AfPacketRingIo implements PacketIo {
  readonly interfaces: InterfaceInfo[];
  readonly batchSize: number;
  readonly zeroCopy: boolean;
  readonly stats: AfPacketRingStats = {
    rxCalls: 0, rxFrames: 0, rxTruncated: 0, txCalls: 0, txFrames: 0, txErrors: 0, lastTxErrno: 0, lastRxErrno: 0,
    kernelPackets: 0, kernelDrops: 0, rxBlocks: 0, kernelFreezes: 0,
  };
  private readonly rx: RxRing[] = [];
  private readonly tx: TxRing[] = [];
  /** txMode 'sendmmsg': the transmit side is a tx-only AfPacketIo. */
  private readonly txMmsg: AfPacketIo | null = null;
  /** tx ring index by ifindex (-1 = not served). */
  private readonly txByIfindex: Int16Array;
  private readonly defaultIfindex: number;
  /** The region: base address, size, and views. */
  private readonly base: number;
  private readonly size: number;
  private readonly mem: Uint8Array;
  private readonly u16: Uint16Array;
  private readonly u32: Uint32Array;
  private readonly arenaSlots: number;
  private batch: FrameBatch | null = null;
  /** setsockopt/getsockopt/bind arguments and pollfds. */
  private readonly scratch: NativeMem;
  private readonly s32: Uint32Array;
  private readonly s16: Uint16Array;
  private readonly watchers: Array<{ stop(): void; close(): void }> = [];
  private next = 0;
  private closed = false;

  /** Opens rings on `ifnames` (one or many), all in `opts.netns`. Frames leave through `batch.ifindex[i]`, or the first interface when 0. */
  static open(ifnames: string | string[], opts: AfPacketRingOptions = {}): AfPacketRingIo {
    const names = typeof ifnames === 'string' ? [ifnames] : ifnames;
    if (names.length === 0) throw new RangeError('AF_PACKET ring: no interface given');
    return withNetns(opts.netns, () => new AfPacketRingIo(names, opts));
  }

  private constructor(names: string[], opts: AfPacketRingOptions) {
    const c = libc();
    this.batchSize = opts.batchSize ?? DEFAULT_BATCH;
    if (!(this.batchSize >= 1 && this.batchSize <= 1024)) throw new RangeError('AF_PACKET ring: batchSize must be 1..1024');
    this.zeroCopy = opts.zeroCopy ?? true;
    this.interfaces = names.map((n) => interfaceInfo(n));
    this.defaultIfindex = this.interfaces[0]!.index;
    this.txByIfindex = new Int16Array(Math.max(...this.interfaces.map((i) => i.index)) + 1).fill(-1);

    const v3 = (opts.rxVersion ?? 2) === 3;
    const blockSize = opts.rxBlockBytes ?? 64 << 10;
    if (blockSize < PAGE || (blockSize & (blockSize - 1)) !== 0) throw new RangeError('AF_PACKET ring: rxBlockBytes must be a power of two ≥ 4096');
    const ringBytes = opts.rxRingBytes ?? 32 << 20;
    const blocks = Math.max(2, Math.ceil(ringBytes / blockSize));
    // V2: a slot takes the headers, the reserve and the largest frame the device delivers (tagged).
    const v2Frame = pow2AtLeast(V2_NETOFF + Math.max(...this.interfaces.map((i) => i.mtu)) + 14 + 4);
    const v2Block = Math.max(v2Frame, blockSize);
    const v2Blocks = Math.max(2, Math.ceil(ringBytes / v2Block));
    const rxBytes = v3 ? blocks * blockSize : v2Blocks * v2Block;
    const tov = opts.retireTovMs ?? 1;
    if (!(Number.isInteger(tov) && tov >= 1)) throw new RangeError('AF_PACKET ring: retireTovMs must be an integer ≥ 1');
    const txMmsg = opts.txMode === 'sendmmsg';
    const txFramesWanted = opts.txFrames ?? 512;

    // Lay out the region: the batch arena, the rx rings, the tx rings (each page-aligned).
    this.arenaSlots = this.batchSize;
    let size = roundUp(this.arenaSlots * SLOT_SIZE, PAGE);
    // Rx rings: one per interface, and with fanout one more (small, V2) for the neighbour traffic (afpacket-fanout.ts).
    const fanout = opts.fanoutGroup !== undefined;
    const roles = rxRoles(names.length, fanout);
    const nbBytes = 2 * v2Block;
    const rxOff: number[] = [];
    if (!opts.txOnly) {
      for (const { neighbour } of roles) {
        rxOff.push(size);
        size += neighbour ? nbBytes : rxBytes;
      }
    }
    const txGeo = this.interfaces.map((info) => {
      // A slot holds the frame header and the largest frame the device takes (tagged), as a power of two.
      const frameSize = Math.max(2048, pow2AtLeast(TX_DATA + info.mtu + 14 + 4));
      const block = Math.max(frameSize, 64 << 10);
      const perBlock = block / frameSize;
      const nblocks = Math.max(1, Math.ceil(txFramesWanted / perBlock));
      return { frameSize, block, nblocks, frames: nblocks * perBlock };
    });
    const txOff: number[] = [];
    for (const g of txGeo) {
      if (txMmsg) break;
      txOff.push(size);
      size += g.block * g.nblocks;
    }
    this.size = size;
    // Reserve the whole range (anonymous, not committed until touched), then map each ring over its part.
    const base = c.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base === -1) throw new SysError('mmap(ring region)', errno());
    this.base = base;
    // 32 bytes of call arguments, then one struct pollfd per interface.
    const scratchSize = 32 + Math.max(1, roles.length) * POLLFD_SIZE;
    this.scratch = nativeAlloc(scratchSize);
    this.s32 = new Uint32Array(this.scratch.bytes.buffer, this.scratch.bytes.byteOffset, scratchSize >>> 2);
    this.s16 = new Uint16Array(this.scratch.bytes.buffer, this.scratch.bytes.byteOffset, scratchSize >>> 1);
    const created: number[] = [];
    try {
      const sc = this.scratch.addr;
      const setInt = (fd: number, level: number, name: number, value: number, what: string): number => {
        this.s32[0] = value >>> 0;
        const rc = c.setsockopt(fd, level, name, sc, 4);
        if (rc < 0 && what) check(rc, what);
        return rc;
      };
      // struct tpacket_req3 { block_size, block_nr, frame_size, frame_nr, retire_blk_tov, sizeof_priv, feature_req_word }
      const setRing = (fd: number, which: number, bsize: number, bnr: number, fsize: number, tovMs: number, what: string): void => {
        const s = this.s32;
        s[0] = bsize; s[1] = bnr; s[2] = fsize; s[3] = bnr * (bsize / fsize); s[4] = tovMs; s[5] = 0; s[6] = 0;
        check(c.setsockopt(fd, SOL_PACKET, which, sc, 28), what);
      };
      const mapAt = (fd: number, off: number, len: number, what: string): void => {
        const r = c.mmap(base + off, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
        if (r !== base + off) throw new SysError(`mmap(${what})`, errno());
      };
      const bindTo = (fd: number, proto: number, ifindex: number, what: string): void => {
        // struct sockaddr_ll { u16 family; be16 protocol; i32 ifindex; ... }
        this.scratch.bytes.fill(0, 0, SOCKADDR_LL_SIZE);
        this.s16[0] = AF_PACKET;
        this.s16[1] = ((proto & 0xff) << 8) | (proto >>> 8);
        this.s32[1] = ifindex;
        check(c.bind(fd, sc, SOCKADDR_LL_SIZE), what);
      };

      // (Already inside opts.netns: the tx-only AfPacketIo opens its socket here too.)
      if (txMmsg) this.txMmsg = AfPacketIo.open(names, { txOnly: true, batchSize: this.batchSize, qdiscBypass: opts.qdiscBypass });
      for (let k = 0; k < this.interfaces.length && !txMmsg; k++) {
        const info = this.interfaces[k]!;
        const g = txGeo[k]!;
        const fd = check(c.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), 'socket(AF_PACKET)');
        created.push(fd);
        setInt(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V3, 'setsockopt(PACKET_VERSION)');
        if (opts.qdiscBypass ?? true) setInt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1, 'setsockopt(PACKET_QDISC_BYPASS)');
        setInt(fd, SOL_PACKET, PACKET_LOSS, 1, 'setsockopt(PACKET_LOSS)');
        // Slots in flight count against the send buffer; leave room for the whole ring.
        const sndbuf = g.frames * g.frameSize * 2;
        if (setInt(fd, SOL_SOCKET, SO_SNDBUFFORCE, sndbuf, '') < 0) setInt(fd, SOL_SOCKET, SO_SNDBUF, sndbuf, 'setsockopt(SO_SNDBUF)');
        setRing(fd, PACKET_TX_RING, g.block, g.nblocks, g.frameSize, 0, 'setsockopt(PACKET_TX_RING)');
        mapAt(fd, txOff[k]!, g.block * g.nblocks, `tx ring ${info.name}`);
        bindTo(fd, 0, info.index, `bind(${info.name})`);
        this.txByIfindex[info.index] = this.tx.length;
        this.tx.push({
          fd, ifindex: info.index, maxLen: info.mtu + 14, off: txOff[k]!, frameSize: g.frameSize, frames: g.frames, head: 0, queued: 0,
        });
      }
      if (!opts.txOnly) {
        for (let r = 0; r < roles.length; r++) {
          const { iface, neighbour } = roles[r]!;
          const info = this.interfaces[iface]!;
          const ringV3 = v3 && !neighbour;
          const bytes = neighbour ? nbBytes : rxBytes;
          const fd = check(c.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), 'socket(AF_PACKET)');
          created.push(fd);
          setInt(fd, SOL_PACKET, PACKET_VERSION, ringV3 ? TPACKET_V3 : TPACKET_V2, 'setsockopt(PACKET_VERSION)');
          // Room in front of every frame for VLAN re-insertion and tunnel headers, as a batch slot has.
          setInt(fd, SOL_PACKET, PACKET_RESERVE, HEADROOM, 'setsockopt(PACKET_RESERVE)');
          // (V2 reads only the first four fields of tpacket_req3: the struct tpacket_req it wants.)
          if (ringV3) setRing(fd, PACKET_RX_RING, blockSize, blocks, RX_NOMINAL_FRAME, tov, 'setsockopt(PACKET_RX_RING)');
          else setRing(fd, PACKET_RX_RING, v2Block, bytes / v2Block, v2Frame, 0, 'setsockopt(PACKET_RX_RING)');
          mapAt(fd, rxOff[r]!, bytes, `rx ring ${info.name}`);
          if (fanout) attachFanoutFilter(fd, neighbour);
          if (opts.ignoreOutgoing ?? true) setInt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1, 'setsockopt(PACKET_IGNORE_OUTGOING)');
          if (opts.promisc) {
            // struct packet_mreq { int mr_ifindex; u16 mr_type; u16 mr_alen; u8 mr_address[8]; }
            this.scratch.bytes.fill(0, 0, 16);
            this.s32[0] = info.index;
            this.s16[2] = PACKET_MR_PROMISC;
            check(c.setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, sc, 16), 'setsockopt(PACKET_ADD_MEMBERSHIP)');
          }
          bindTo(fd, ETH_P_ALL, info.index, `bind(${info.name})`);
          if (fanout && !neighbour) {
            setInt(fd, SOL_PACKET, PACKET_FANOUT, fanoutJoinValue(opts.fanoutGroup!, iface, opts.ignoreOutgoing ?? true),
              'setsockopt(PACKET_FANOUT)');
          }
          // V2 slots never straddle blocks (the slot size divides the block size), so slot i is at off + i * v2Frame.
          this.rx.push(ringV3
            ? { fd, ifindex: info.index, v3: true, off: rxOff[r]!, blocks, blockSize, statusAt: BD_STATUS, blk: 0, pkt: 0, left: 0, held: 0 }
            : { fd, ifindex: info.index, v3: false, off: rxOff[r]!, blocks: bytes / v2Frame, blockSize: v2Frame, statusAt: H2_STATUS, blk: 0, pkt: 0, left: 0, held: 0 });
        }
      }
    } catch (e) {
      for (const fd of created) c.close(fd);
      this.txMmsg?.close();
      c.munmap(base, size);
      nativeFree(this.scratch);
      throw e;
    }
    const ab = koffi.view(base, size);
    this.mem = new Uint8Array(ab);
    this.u16 = new Uint16Array(ab);
    this.u32 = new Uint32Array(ab);
  }

  /**
   * The batch that uses this io's memory (zero-copy receive, copyWithin everywhere).
   * There is one per io: calling again returns it. It must not be used after close().
   * Asking for more slots than `batchSize` gives an ordinary (copying) batch.
   */
  createBatch(capacity = this.batchSize): FrameBatch {
    if (capacity > this.arenaSlots) return new FrameBatch(capacity);
    if (this.batch === null) this.batch = new FrameBatch(this.arenaSlots, this.mem);
    return this.batch;
  }

  /** File descriptors of the rx sockets (for external event loops). */
  get rxFds(): number[] {
    return this.rx.map((s) => s.fd);
  }

  /** Receives what the rings hold (round-robin over interfaces, without a syscall) into `batch`. */
  recv(batch: FrameBatch): number {
    batch.count = 0;
    const nrx = this.rx.length;
    if (nrx === 0 || this.closed) return 0;
    // The caller is done with the previous batch: blocks lent to it go back to the kernel.
    for (let k = 0; k < nrx; k++) if (this.rx[k]!.held > 0) this.release(this.rx[k]!);
    const zc = this.zeroCopy && batch.buf === this.mem;
    const first = this.next;
    this.next = first + 1 === nrx ? 0 : first + 1;
    for (let k = 0; k < nrx && batch.count < batch.capacity; k++) {
      let si = first + k;
      if (si >= nrx) si -= nrx;
      const s = this.rx[si]!;
      if (s.v3) this.recvFrom(s, batch, zc);
      else this.recvFromV2(s, batch, zc);
    }
    if (batch.count > 0) {
      this.stats.rxCalls++;
      this.stats.rxFrames += batch.count;
    }
    return batch.count;
  }

  private release(s: RxRing): void {
    const u32 = this.u32;
    let b = s.blk - s.held;
    if (b < 0) b += s.blocks;
    for (let k = 0; k < s.held; k++) {
      u32[(s.off + b * s.blockSize + s.statusAt) >>> 2] = TP_STATUS_KERNEL;
      if (++b === s.blocks) b = 0;
    }
    s.held = 0;
  }

  private recvFrom(s: RxRing, batch: FrameBatch, zc: boolean): void {
    const u32 = this.u32;
    const u16 = this.u16;
    const same = batch.buf === this.mem;
    const bufAddr = same ? 0 : addrOf(batch.buf);
    let i = batch.count;
    const cap = batch.capacity;
    while (i < cap) {
      if (s.left === 0) {
        const bd = s.off + s.blk * s.blockSize;
        if ((u32[(bd + BD_STATUS) >>> 2]! & TP_STATUS_USER) === 0) break;
        s.left = u32[(bd + BD_NUM_PKTS) >>> 2]!;
        s.pkt = bd + u32[(bd + BD_FIRST_PKT) >>> 2]!;
        if (s.left === 0) { this.blockDone(s, zc); continue; } // a timed-out empty block (old kernels)
      }
      const h = s.pkt;
      const len = u32[(h + H3_LEN) >>> 2]!;
      s.pkt = h + u32[(h + H3_NEXT) >>> 2]!;
      if (u32[(h + H3_SNAPLEN) >>> 2]! < len || len > SLOT_FRAME_MAX) {
        // Cut short by the block, or larger than a slot (GRO/TSO super-frame): not forwardable as is.
        this.stats.rxTruncated++;
      } else {
        this.emit(batch, i, h + u16[(h + H3_MAC) >>> 1]!, len, u32[(h + H3_STATUS) >>> 2]!, u32[(h + H3_VLAN_TCI) >>> 2]! & 0xffff,
          u16[(h + H3_VLAN_TPID) >>> 1]!, this.mem[h + H3_SLL + 10]!, s.ifindex, zc, same, bufAddr);
        i++;
      }
      if (--s.left === 0) this.blockDone(s, zc);
    }
    batch.count = i;
  }

  /** TPACKET_V2: one frame per slot, each handed over by its own tp_status. */
  private recvFromV2(s: RxRing, batch: FrameBatch, zc: boolean): void {
    const u32 = this.u32;
    const u16 = this.u16;
    const same = batch.buf === this.mem;
    const bufAddr = same ? 0 : addrOf(batch.buf);
    let i = batch.count;
    const cap = batch.capacity;
    while (i < cap) {
      const h = s.off + s.blk * s.blockSize;
      const status = u32[(h + H2_STATUS) >>> 2]!;
      if ((status & TP_STATUS_USER) === 0) break;
      const len = u32[(h + H2_LEN) >>> 2]!;
      if (u32[(h + H2_SNAPLEN) >>> 2]! < len || len > SLOT_FRAME_MAX) {
        this.stats.rxTruncated++;
      } else {
        this.emit(batch, i, h + u16[(h + H2_MAC) >>> 1]!, len, status, u16[(h + H2_VLAN_TCI) >>> 1]!, u16[(h + H2_VLAN_TPID) >>> 1]!,
          this.mem[h + H2_SLL + 10]!, s.ifindex, zc, same, bufAddr);
        i++;
      }
      this.blockDone(s, zc);
    }
    batch.count = i;
  }

  /** Frame `src`/`len` of the ring becomes frame i of `batch`: in place (zero-copy) or copied into slot i; metadata from its header. */
  private emit(
    batch: FrameBatch, i: number, src: number, len: number, status: number, tci: number, tpid: number, pkttype: number,
    ifindex: number, zc: boolean, same: boolean, bufAddr: number,
  ): void {
    const buf = batch.buf;
    let off: number;
    if (zc) {
      off = src;
    } else {
      off = i * SLOT_SIZE + HEADROOM;
      if (same) this.mem.copyWithin(off, src, src + len);
      else libc().memcpy(bufAddr + off, this.base + src, len);
    }
    let flags = pkttype === PACKET_OUTGOING ? FRAME_OUTGOING : 0;
    if ((status & TP_STATUS_CSUMNOTREADY) !== 0) flags |= FRAME_CSUM_NOT_READY;
    else if ((status & TP_STATUS_CSUM_VALID) !== 0) flags |= FRAME_CSUM_VALID;
    if ((status & TP_STATUS_VLAN_VALID) !== 0 && len >= 12) {
      // The device took the 802.1Q tag out of the frame (VLAN offload): put it back in front of the EtherType.
      if ((status & TP_STATUS_VLAN_TPID_VALID) === 0) tpid = 0x8100;
      buf.copyWithin(off - 4, off, off + 12);
      off -= 4;
      len += 4;
      buf[off + 12] = tpid >>> 8;
      buf[off + 13] = tpid & 0xff;
      buf[off + 14] = tci >>> 8;
      buf[off + 15] = tci & 0xff;
    }
    batch.off[i] = off;
    batch.len[i] = len;
    batch.flags[i] = flags;
    batch.ifindex[i] = ifindex;
    batch.verdict[i] = V_DROP;
    batch.reason[i] = 0;
    batch.tsUs[i] = 0;
  }

  /** A unit was read to its end: give it back now (copies), or at the next recv() (zero-copy frames still in use). */
  private blockDone(s: RxRing, zc: boolean): void {
    if (zc) s.held++;
    else this.u32[(s.off + s.blk * s.blockSize + s.statusAt) >>> 2] = TP_STATUS_KERNEL;
    this.stats.rxBlocks++;
    if (++s.blk === s.blocks) s.blk = 0;
  }

  /**
   * Sends every frame i < batch.count whose verdict is V_FORWARD or V_REPLY out of
   * interface batch.ifindex[i] (0 = the first interface): one copy into that
   * interface's tx ring, then one send() per interface (per batchSize frames); or,
   * with txMode 'sendmmsg', sendmmsg from where the frames are. Frames the kernel
   * would refuse are counted in stats.txErrors and skipped.
   */
  send(batch: FrameBatch): number {
    if (this.closed) return 0;
    if (this.txMmsg !== null) return this.sendMmsg(this.txMmsg, batch);
    const verdict = batch.verdict;
    const buf = batch.buf;
    const mem = this.mem;
    const u32 = this.u32;
    const same = buf === mem;
    const bufAddr = same ? 0 : addrOf(buf);
    let sent = 0;
    for (let i = 0; i < batch.count; i++) {
      const v = verdict[i];
      if (v !== V_FORWARD && v !== V_REPLY) continue;
      const ifx = batch.ifindex[i]! === 0 ? this.defaultIfindex : batch.ifindex[i]!;
      const ti = ifx < this.txByIfindex.length ? this.txByIfindex[ifx]! : -1;
      if (ti < 0) {
        this.stats.txErrors++;
        this.stats.lastTxErrno = ENXIO;
        continue;
      }
      const t = this.tx[ti]!;
      const off = batch.off[i]!;
      const len = batch.len[i]!;
      // The kernel allows 4 more bytes for an 802.1Q-tagged frame only (packet_extra_vlan_len_allowed).
      const max = buf[off + 12] === 0x81 && buf[off + 13] === 0x00 ? t.maxLen + 4 : t.maxLen;
      if (len > max || len > t.frameSize - TX_DATA) {
        this.stats.txErrors++;
        this.stats.lastTxErrno = EMSGSIZE;
        continue;
      }
      let slot = t.off + t.head * t.frameSize;
      if ((u32[(slot + H3_STATUS) >>> 2]! & TX_BUSY) !== 0) {
        // Ring full (slots still queued or in flight on a slow device): push what is queued, then wait a little.
        sent += this.kick(t);
        if (!this.waitSlot(t)) {
          this.stats.txErrors++;
          this.stats.lastTxErrno = ENOBUFS;
          continue;
        }
        slot = t.off + t.head * t.frameSize;
      }
      if (same) mem.copyWithin(slot + TX_DATA, off, off + len);
      else libc().memcpy(this.base + slot + TX_DATA, bufAddr + off, len);
      u32[(slot + H3_LEN) >>> 2] = len;
      u32[(slot + H3_STATUS) >>> 2] = TP_STATUS_SEND_REQUEST;
      if (++t.head === t.frames) t.head = 0;
      if (++t.queued >= this.batchSize) sent += this.kick(t);
    }
    for (let k = 0; k < this.tx.length; k++) if (this.tx[k]!.queued > 0) sent += this.kick(this.tx[k]!);
    return sent;
  }

  private sendMmsg(m: AfPacketIo, batch: FrameBatch): number {
    const n = m.send(batch);
    const a = m.stats;
    const st = this.stats;
    st.txCalls = a.txCalls; st.txFrames = a.txFrames; st.txErrors = a.txErrors; st.lastTxErrno = a.lastTxErrno;
    return n;
  }

  /** One send(): the kernel transmits the queued slots. Returns how many it took; gives up on the rest after retries. */
  private kick(t: TxRing): number {
    const c = libc();
    const u32 = this.u32;
    let taken = 0;
    let retries = 0;
    for (;;) {
      const rc = c.send(t.fd, 0, 0, MSG_DONTWAIT);
      const e = rc < 0 ? errno() : 0;
      this.stats.txCalls++;
      // The kernel works through the ring in order and stops at the first slot it cannot send.
      let first = t.head - t.queued;
      if (first < 0) first += t.frames;
      let k = 0;
      let idx = first;
      while (k < t.queued && (u32[(t.off + idx * t.frameSize + H3_STATUS) >>> 2]! & TX_NOT_TAKEN) === 0) {
        k++;
        if (++idx === t.frames) idx = 0;
      }
      taken += k;
      t.queued -= k;
      if (t.queued === 0) break;
      if ((rc >= 0 || e === EAGAIN || e === EINTR || e === ENOBUFS) && retries < MAX_TX_RETRIES) {
        // Send buffer full: wait a little for slots in flight to complete.
        retries++;
        this.pollOne(t.fd, POLLOUT, 1);
        continue;
      }
      // Refused (interface down, ...): take the slots back; the kernel's head is at the first of them.
      for (let q = 0; q < t.queued; q++) {
        u32[(t.off + idx * t.frameSize + H3_STATUS) >>> 2] = TP_STATUS_AVAILABLE;
        if (++idx === t.frames) idx = 0;
      }
      t.head = first + k >= t.frames ? first + k - t.frames : first + k;
      this.stats.txErrors += t.queued;
      this.stats.lastTxErrno = e !== 0 ? e : ENOBUFS;
      t.queued = 0;
      break;
    }
    this.stats.txFrames += taken;
    return taken;
  }

  /** Waits (a few ms at most) until the slot at the head is free again. */
  private waitSlot(t: TxRing): boolean {
    for (let r = 0; r < MAX_TX_RETRIES; r++) {
      if ((this.u32[(t.off + t.head * t.frameSize + H3_STATUS) >>> 2]! & TX_BUSY) === 0) return true;
      this.pollOne(t.fd, POLLOUT, 1);
    }
    return (this.u32[(t.off + t.head * t.frameSize + H3_STATUS) >>> 2]! & TX_BUSY) === 0;
  }

  private pollOne(fd: number, events: number, ms: number): number {
    // struct pollfd { int fd; short events; short revents; }, in the scratch block after the 32-byte argument area.
    this.s32[8] = fd;
    this.s32[9] = events;
    return libc().poll(this.scratch.addr + 32, 1, ms);
  }

  /** Whether a ring holds frames not read yet (no syscall). */
  private pending(): boolean {
    for (const s of this.rx) {
      if (s.left > 0) return true;
      if ((this.u32[(s.off + s.blk * s.blockSize + s.statusAt) >>> 2]! & TP_STATUS_USER) !== 0) return true;
    }
    return false;
  }

  /**
   * Blocks up to `timeoutMs` (0 = just check, -1 = forever) until a frame is ready
   * on an rx ring. Blocking poll(): use it in a worker thread, or use `watch`.
   */
  wait(timeoutMs: number): boolean {
    const n = this.rx.length;
    if (n === 0 || this.closed) return false;
    if (this.pending()) return true;
    for (let k = 0; k < n; k++) {
      this.s32[8 + k * 2] = this.rx[k]!.fd;
      this.s32[9 + k * 2] = POLLIN;
    }
    return libc().poll(this.scratch.addr + 32, n, timeoutMs) > 0 || this.pending();
  }

  /**
   * Calls `onReadable` from the Node event loop whenever an rx ring has frames for
   * us (libuv poll on the socket fds, via koffi). Returns a function that stops it.
   */
  watch(onReadable: () => void): () => void {
    const handles = this.rx.map((s) => koffi.node.poll(s.fd, { readable: true }, () => onReadable()));
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

  /** Reads (and resets) the kernel's PACKET_STATISTICS (struct tpacket_stats_v3) and adds them to stats. */
  readKernelStats(): AfPacketRingStats {
    if (this.closed) return this.stats;
    const c = libc();
    const s = this.s32;
    for (const r of this.rx) {
      s[0] = 0; s[1] = 0; s[2] = 0; s[4] = 12;
      if (c.getsockopt(r.fd, SOL_PACKET, PACKET_STATISTICS, this.scratch.addr, this.scratch.addr + 16) === 0) {
        this.stats.kernelPackets += s[0]!;
        this.stats.kernelDrops += s[1]!;
        this.stats.kernelFreezes += s[2]!;
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
    for (const t of this.tx) c.close(t.fd);
    this.txMmsg?.close();
    // The rings (and the createBatch() batch that views them) are gone from here on.
    c.munmap(this.base, this.size);
    nativeFree(this.scratch);
  }
}
