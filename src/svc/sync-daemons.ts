/**
 * The sync daemon registry of one namespace: the configurations of the running
 * master and backup, filled in with the kernel's defaults, and the kernel's
 * errors (ip_vs_genl_new_daemon, start_sync_thread, stop_sync_thread).
 * Starting one only records it and calls a hook; the sync protocol lives in src/sync/.
 */
import { existsSync } from 'node:fs';
import { CtlError, type SyncDaemon } from '../ctl/types.js';
import { formatIp, parseIp, type IpAddr } from '../util/ip.js';
import { SYNC_STATE_BACKUP, SYNC_STATE_MASTER, type IpvsTable } from './table.js';

/** IP_VS_SYNC_GROUP, IP_VS_SYNC_PORT and the default TTL. */
export const DEFAULT_SYNC_GROUP = '224.0.0.81';
export const DEFAULT_SYNC_PORT = 8848;
export const DEFAULT_SYNC_TTL = 1;
/** IP_VS_IFNAME_MAXLEN - 1. */
export const IFNAME_MAX = 15;

export interface SyncDaemonHooks {
  /** Whether the multicast interface exists in this namespace (else ENODEV). Default: /sys/class/net/<name>. */
  interfaceExists?(name: string): boolean;
  /** The interface MTU, used for a backup's default sync_maxlen. Default: 1500. */
  interfaceMtu?(name: string): number;
  /** A daemon was started with this (completed) configuration. */
  onStart?(d: SyncDaemon): void;
  onStop?(state: 'master' | 'backup'): void;
}

function sysfsInterfaceExists(name: string): boolean {
  return name !== '' && !name.includes('/') && name !== '.' && name !== '..' && existsSync(`/sys/class/net/${name}`);
}

function einval(msg: string): never {
  throw new CtlError('EINVAL', msg);
}

function isMulticast(a: IpAddr): boolean {
  return a.af === 4 ? a.w0 >>> 28 === 0xe : a.w0 >>> 24 === 0xff;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

export class SyncDaemons {
  private master: SyncDaemon | null = null;
  private backup: SyncDaemon | null = null;

  constructor(private readonly table: IpvsTable, private readonly hooks: SyncDaemonHooks = {}) {}

  /**
   * Starts (records) a daemon. Errors in the kernel's order: bad request or a
   * non-multicast group (EINVAL), mixed-family dests present (EINVAL), unknown
   * interface (ENODEV), that role already running (EEXIST).
   */
  start(d: SyncDaemon): SyncDaemon {
    if (typeof d.mcastIfn !== 'string' || d.mcastIfn.length > IFNAME_MAX) einval('bad interface name');
    if (!Number.isInteger(d.syncId) || d.syncId < 0 || d.syncId > 0xffffffff) einval('bad sync id');
    const maxlen = d.syncMaxlen ?? 0;
    const port = d.mcastPort ?? 0;
    const ttl = d.mcastTtl ?? 0;
    if (!Number.isInteger(maxlen) || maxlen < 0 || maxlen > 0xffff) einval('bad sync maxlen');
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) einval('bad port');
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0xff) einval('bad ttl');
    let group: IpAddr | null = null;
    if (d.mcastGroup !== undefined && d.mcastGroup !== '') {
      group = parseIp(d.mcastGroup);
      if (group === null || !isMulticast(group)) einval('the sync group must be a multicast address');
    }
    // The synchronisation protocol cannot describe mixed-family services.
    if (this.table.mixedFamilyDests > 0) einval('mixed-family dests exist');

    const groupText = group === null ? DEFAULT_SYNC_GROUP : formatIp(group);
    const v6 = group !== null && group.af === 6;
    const exists = this.hooks.interfaceExists ?? sysfsInterfaceExists;
    if (!exists(d.mcastIfn)) throw new CtlError('ENODEV', `unknown mcast interface ${d.mcastIfn}`);
    const backup = d.state === 'backup';
    const hlen = v6 ? 40 + 8 : 20 + 8;
    // A master's default payload ignores the MTU (1500); a backup sizes its buffer from the interface.
    const mtu = backup ? clamp(this.hooks.interfaceMtu?.(d.mcastIfn) ?? 1500, 1500, 65535) : 1500;
    const syncMaxlen = maxlen !== 0 ? clamp(maxlen, backup ? 1024 : 1, 65535 - hlen) : mtu - hlen;

    if (d.state !== 'master' && d.state !== 'backup') einval('bad daemon state');
    if ((backup ? this.backup : this.master) !== null) throw new CtlError('EEXIST', 'daemon already running');
    const cfg: SyncDaemon = {
      state: d.state,
      mcastIfn: d.mcastIfn,
      syncId: d.syncId,
      syncMaxlen,
      mcastGroup: groupText,
      mcastPort: port !== 0 ? port : DEFAULT_SYNC_PORT,
      mcastTtl: ttl !== 0 ? ttl : DEFAULT_SYNC_TTL,
    };
    if (backup) this.backup = cfg;
    else this.master = cfg;
    this.table.syncState |= backup ? SYNC_STATE_BACKUP : SYNC_STATE_MASTER;
    this.hooks.onStart?.({ ...cfg });
    return { ...cfg };
  }

  /** Stops the daemon of that role (the kernel ignores the sync id here); ESRCH when not running. */
  stop(state: 'master' | 'backup'): void {
    if (state !== 'master' && state !== 'backup') einval('bad daemon state');
    if ((state === 'backup' ? this.backup : this.master) === null) throw new CtlError('ESRCH', 'no daemon is running');
    if (state === 'backup') this.backup = null;
    else this.master = null;
    this.table.syncState &= ~(state === 'backup' ? SYNC_STATE_BACKUP : SYNC_STATE_MASTER);
    this.hooks.onStop?.(state);
  }

  /** Running daemons, master first (ip_vs_genl_dump_daemons). */
  list(): SyncDaemon[] {
    const out: SyncDaemon[] = [];
    if (this.master !== null) out.push({ ...this.master });
    if (this.backup !== null) out.push({ ...this.backup });
    return out;
  }
}
