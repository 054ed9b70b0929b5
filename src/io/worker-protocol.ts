/**
 * Messages between the control plane (main thread) and the data-plane worker
 * (io/worker-main.ts), and the layout of the shared counter block. Everything
 * that crosses is structured-clone friendly (plain records, no class instances).
 */
import { REASON_COUNT } from '../core/reasons.js';
import type { NeighEntry } from '../neigh/cache.js';

export type BackendName = 'afpacket' | 'afpacket-ring' | 'pcap' | 'none';

export interface WorkerInit {
  /** Network namespace the worker thread enters first (name under /var/run/netns or a path); null = the process's. */
  netns: string | null;
  /** Interfaces to serve (names in the process's network namespace); [] with backend 'none'. */
  interfaces: string[];
  backend: BackendName;
  capacity: number;
  seed: number;
  batchSize: number;
  /** AF_PACKET with PACKET_VNET_HDR: GSO super-frames and partial checksums pass through whole (AfPacketOptions.vnetHdr). */
  vnetHdr?: boolean;
  /** After a drain that received frames, keep polling (non-blocking) until this many µs pass without a frame (0 = off). */
  busyPollUs?: number;
  /** AF_PACKET socket buffers, bytes (AfPacketOptions.rcvbuf / sndbuf; backend defaults when absent). */
  rcvbuf?: number;
  sndbuf?: number;
  /** Join this PACKET_FANOUT group (hash mode) on every rx socket. */
  fanoutGroup?: number;
  /** Wall-clock ms (timeOrigin + now) that is second 0 of the director's clock. */
  clockOriginMs: number;
  /** Counter block (COUNTER_SLOTS float64 values), written by the worker, read by anyone. */
  counters: SharedArrayBuffer;
  /** Routes to use instead of the kernel's (tests); null = read /proc/net/route and refresh it. */
  routes: Array<{ dst: number; prefix: number; gateway: number; ifname: string; metric: number }> | null;
  /** Seconds an unresolved frame may wait for its next hop (default 3). */
  neighWait?: number;
}

/** What to hide from the kernel's stack (kernel-guard.ts turns it into nftables rules). */
export interface HideSpec {
  /** Virtual services: traffic to addr:port (port 0 = every port) of protocol proto. */
  vips: Array<{ af: 4 | 6; proto: number; addr: string; port: number }>;
  /** Fwmark services: the classifier rules that mark traffic for them (proto 0 = any). */
  marks: Array<{ af: 4 | 6; proto: number; addr: string; prefix: number; portLo: number; portHi: number }>;
  /** NAT real servers: their replies, from addr:port (proto 0 = tcp, udp and sctp; port 0 = any). */
  reals: Array<{ af: 4 | 6; proto: number; addr: string; port: number }>;
}

export type HideVip = HideSpec['vips'][number];
export type HideMark = HideSpec['marks'][number];
export type HideReal = HideSpec['reals'][number];

/**
 * How one operation changed what must be hidden. The worker sends this instead of
 * the whole HideSpec so that a change costs the same with 10 or 10,000 services
 * (the full spec was built, compared and cloned on every operation). `del` applies
 * before `add`. A real appears once per NAT dest that has it, so the receiver
 * counts: the same address:port stays hidden while any NAT dest still uses it.
 * `marks`, when present, replaces the whole list (it follows the classifier rules,
 * which only change with their own operations).
 */
export interface HideChange {
  add: { vips: HideVip[]; reals: HideReal[] };
  del: { vips: HideVip[]; reals: HideReal[] };
  marks?: HideMark[];
}

export interface IfaceFacts {
  name: string;
  index: number;
  mac: string;
  ip4: string;
  mtu: number;
}

export type ToWorker =
  | { t: 'op'; id: number; op: string; args: unknown[] }
  | { t: 'tick'; now: number }
  | { t: 'start-io'; id: number }
  | { t: 'neigh'; id: number }
  | { t: 'stop'; id: number };

export interface WireError {
  /** Set when the error was a CtlError (its errno name). */
  errno?: string;
  message: string;
}

export type FromWorker =
  | { t: 'ready'; ifaces: IfaceFacts[]; capacity: number }
  | { t: 'result'; id: number; ok: true; value: unknown; hide?: HideChange }
  | { t: 'result'; id: number; ok: false; error: WireError; hide?: HideChange }
  | { t: 'neigh'; id: number; entries: NeighEntry[] }
  | { t: 'log'; line: string }
  | { t: 'fatal'; message: string };

// ----------------------------------------------------------------------------- counters

/** Engine reason counters occupy slots [0, REASON_COUNT); the data plane's own follow. */
export const C_RX_FRAMES = REASON_COUNT;
export const C_TX_FRAMES = REASON_COUNT + 1;
export const C_TX_ERRORS = REASON_COUNT + 2;
/** Frames larger than the MTU (GRO/LRO/TSO super-frames): dropped before the engine. */
export const C_SUPER_FRAMES = REASON_COUNT + 3;
export const C_KERNEL_DROPS = REASON_COUNT + 4;
export const C_BATCHES = REASON_COUNT + 5;
/** Frames that waited for a next hop, those sent after it resolved, those dropped (timeout / queue full). */
export const C_NEIGH_QUEUED = REASON_COUNT + 6;
export const C_NEIGH_RELEASED = REASON_COUNT + 7;
export const C_NEIGH_DROPPED = REASON_COUNT + 8;
export const C_ARP_REQUESTS = REASON_COUNT + 9;
export const C_GARP_SENT = REASON_COUNT + 10;
export const C_NEIGH_ENTRIES = REASON_COUNT + 11;
export const C_NO_ROUTE = REASON_COUNT + 12;
/** Seconds (director clock) of the last update. */
export const C_UPDATED = REASON_COUNT + 13;
export const COUNTER_SLOTS = REASON_COUNT + 14;

export interface DataPlaneCounters {
  /** Engine outcome counts by reason name (nat-in, no-neighbour, not-ours, ...); zeros left out. */
  reasons: Record<string, number>;
  rxFrames: number;
  txFrames: number;
  txErrors: number;
  superFrames: number;
  kernelDrops: number;
  batches: number;
  neighQueued: number;
  neighReleased: number;
  neighDropped: number;
  arpRequests: number;
  garpSent: number;
  neighEntries: number;
  noRoute: number;
  updated: number;
}
