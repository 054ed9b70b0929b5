/**
 * Shape checks for the records that arrive on the control socket. A request is
 * JSON from an arbitrary client: before it reaches the table every field must be
 * present with the right JSON type, and only the known fields are copied (so no
 * `__proto__` key or other extra property travels further). Value ranges are left
 * to the table, which reports them with the kernel's errno in the kernel's order.
 * A record of the wrong shape is EINVAL, like a netlink message whose attributes
 * fail to parse.
 */
import type { MarkRule } from './api.js';
import { CtlError, type DestSpec, type ServiceKey, type ServiceSpec, type SyncDaemon, type Timeouts } from './types.js';

export function malformed(what: string): never {
  throw new CtlError('EINVAL', `malformed request: ${what}`);
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) malformed(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function num(o: Record<string, unknown>, key: string, what: string): number {
  const v = Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) malformed(`${what}.${key} must be a number`);
  return v;
}

function str(o: Record<string, unknown>, key: string, what: string, maxLen = 4096): string {
  const v = Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined;
  if (typeof v !== 'string' || v.length > maxLen) malformed(`${what}.${key} must be a string`);
  return v;
}

/** The table checks af (EAFNOSUPPORT); here it only has to be a number. */
function af(o: Record<string, unknown>, what: string): 4 | 6 {
  return num(o, 'af', what) as 4 | 6;
}

export function serviceKey(v: unknown, what = 'service'): ServiceKey {
  const o = record(v, what);
  return {
    af: af(o, what),
    protocol: num(o, 'protocol', what),
    addr: str(o, 'addr', what, 256),
    port: num(o, 'port', what),
    fwmark: num(o, 'fwmark', what),
  };
}

export function serviceSpec(v: unknown, what = 'service'): ServiceSpec {
  const o = record(v, what);
  return {
    ...serviceKey(o, what),
    schedName: str(o, 'schedName', what, 256),
    flags: num(o, 'flags', what),
    timeout: num(o, 'timeout', what),
    netmask: str(o, 'netmask', what, 256),
    pe: str(o, 'pe', what, 256),
  };
}

export function destSpec(v: unknown, what = 'dest'): DestSpec {
  const o = record(v, what);
  return {
    af: af(o, what),
    addr: str(o, 'addr', what, 256),
    port: num(o, 'port', what),
    fwdMethod: num(o, 'fwdMethod', what),
    weight: num(o, 'weight', what),
    uThreshold: num(o, 'uThreshold', what),
    lThreshold: num(o, 'lThreshold', what),
    tunType: num(o, 'tunType', what),
    tunPort: num(o, 'tunPort', what),
    tunFlags: num(o, 'tunFlags', what),
  };
}

export function timeouts(v: unknown): Timeouts {
  const o = record(v, 'timeouts');
  return { tcp: num(o, 'tcp', 'timeouts'), tcpFin: num(o, 'tcpFin', 'timeouts'), udp: num(o, 'udp', 'timeouts') };
}

export function syncState(v: unknown): 'master' | 'backup' {
  if (v !== 'master' && v !== 'backup') malformed('sync daemon state must be "master" or "backup"');
  return v;
}

export function syncDaemon(v: unknown): SyncDaemon {
  const o = record(v, 'daemon');
  return {
    state: syncState(o['state']),
    mcastIfn: str(o, 'mcastIfn', 'daemon', 256),
    syncId: num(o, 'syncId', 'daemon'),
    syncMaxlen: num(o, 'syncMaxlen', 'daemon'),
    mcastGroup: str(o, 'mcastGroup', 'daemon', 256),
    mcastPort: num(o, 'mcastPort', 'daemon'),
    mcastTtl: num(o, 'mcastTtl', 'daemon'),
  };
}

export function markRule(v: unknown): MarkRule {
  const o = record(v, 'rule');
  return {
    af: af(o, 'rule'),
    protocol: num(o, 'protocol', 'rule'),
    addr: str(o, 'addr', 'rule', 256),
    prefix: num(o, 'prefix', 'rule'),
    portLo: num(o, 'portLo', 'rule'),
    portHi: num(o, 'portHi', 'rule'),
    mark: num(o, 'mark', 'rule'),
  };
}

export function integer(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) malformed(`${what} must be an integer`);
  return v;
}
