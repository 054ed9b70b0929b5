/**
 * Control-protocol records (src/ctl/types.ts) from the live objects: what the
 * kernel's netlink dump returns (ip_vs_genl_fill_service / _dest / _stats64).
 * Counters are reported relative to their zero point; rates are the
 * estimator's decoded averages.
 */
import type { DestEntry, ServiceEntry, StatsEntry } from '../ctl/types.js';
import { readRates } from '../est/estimator.js';
import { formatIp, formatIp4 } from '../util/ip.js';
import { ST_CONNS, ST_INBYTES, ST_INPKTS, ST_OUTBYTES, ST_OUTPKTS, type Dest, type Service, type Stats } from './types.js';

export function statsEntry(s: Stats): StatsEntry {
  const r = readRates(s);
  return {
    conns: s.cnt[ST_CONNS]! - s.zero[ST_CONNS]!,
    inpkts: s.cnt[ST_INPKTS]! - s.zero[ST_INPKTS]!,
    outpkts: s.cnt[ST_OUTPKTS]! - s.zero[ST_OUTPKTS]!,
    inbytes: s.cnt[ST_INBYTES]! - s.zero[ST_INBYTES]!,
    outbytes: s.cnt[ST_OUTBYTES]! - s.zero[ST_OUTBYTES]!,
    cps: r.cps,
    inpps: r.inpps,
    outpps: r.outpps,
    inbps: r.inbps,
    outbps: r.outbps,
  };
}

/** IPv4: the mask in dotted form; IPv6: the prefix length in decimal. */
export function netmaskText(af: 4 | 6, netmask: number): string {
  return af === 4 ? formatIp4(netmask >>> 0) : String(netmask);
}

export function destEntry(d: Dest): DestEntry {
  return {
    af: d.addr.af,
    addr: formatIp(d.addr),
    port: d.port,
    fwdMethod: d.fwdMethod,
    weight: d.weight,
    uThreshold: d.uThreshold,
    lThreshold: d.lThreshold,
    tunType: d.tunType,
    tunPort: d.tunPort,
    tunFlags: d.tunFlags,
    activeConns: d.activeConns,
    inactConns: d.inactConns,
    persistConns: d.persistConns,
    stats: statsEntry(d.stats),
  };
}

/**
 * A service with its dests in kernel list order (newest first). Flags are the
 * kernel's, so a listed service carries SVC_F_HASHED (0x0002) like netlink reports it.
 */
export function serviceEntry(s: Service): ServiceEntry {
  return {
    af: s.af,
    protocol: s.protocol,
    addr: formatIp(s.addr),
    port: s.port,
    fwmark: s.fwmark,
    schedName: s.schedName,
    flags: s.flags,
    timeout: s.timeout,
    netmask: netmaskText(s.af, s.netmask),
    pe: s.pe ?? '',
    numDests: s.dests.length,
    stats: statsEntry(s.stats),
    dests: s.dests.map(destEntry),
  };
}
