/**
 * ulvs extension: `--json` forms of the listings (schema in docs/json-schema.md).
 * Addresses are always numeric, counters always exact, and every field is
 * present whatever the text-format options; ordering follows the text listing
 * (sorted unless --nosort).
 */
import type { ConnEntry, DestEntry, Info, ServiceEntry, StatsEntry, SyncDaemon, Timeouts } from '../../ctl/types.js';
import type { MarkRule } from '../../ctl/api.js';
import { FWD_DROUTE, FWD_LOCALNODE, FWD_MASQ, FWD_TUNNEL, SVC_F_ONEPACKET, SVC_F_PERSISTENT, SVC_F_SCHED_MASK } from '../../svc/types.js';
import { canonicalAddr, inetAton, ntop4, parseAddrText } from './libc.js';
import { sortDests, sortServices } from './sort.js';
import { markProtoName } from './marks.js';
import { TUN_NAMES } from './options.js';

function jsonText(v: unknown): string {
  return JSON.stringify(v, null, 2) + '\n';
}

function protoText(p: number): string | null {
  if (p === 6) return 'tcp';
  if (p === 17) return 'udp';
  if (p === 132) return 'sctp';
  return null;
}

function methodText(m: number): string {
  switch (m & 7) {
    case FWD_MASQ: return 'masq';
    case FWD_LOCALNODE: return 'local';
    case FWD_TUNNEL: return 'tunnel';
    case FWD_DROUTE: return 'route';
    default: return 'unknown';
  }
}

function statsJson(s: StatsEntry) {
  return {
    conns: s.conns, inPkts: s.inpkts, outPkts: s.outpkts, inBytes: s.inbytes, outBytes: s.outbytes,
  };
}

function ratesJson(s: StatsEntry) {
  return { cps: s.cps, inPps: s.inpps, outPps: s.outpps, inBps: s.inbps, outBps: s.outbps };
}

function schedFlagNames(se: ServiceEntry): string[] {
  const names = se.schedName === 'sh' ? ['sh-fallback', 'sh-port', 'flag-3']
    : se.schedName === 'mh' ? ['mh-fallback', 'mh-port', 'flag-3']
    : ['flag-1', 'flag-2', 'flag-3'];
  const out: string[] = [];
  for (let i = 0; i < 3; i++) if (se.flags & (0x8 << i)) out.push(names[i]!);
  return out;
}

function netmaskJson(se: ServiceEntry): string | number {
  if (se.af === 6) return Number.parseInt(se.netmask, 10);
  const m = inetAton(se.netmask);
  return m === null ? se.netmask : ntop4(m);
}

function destJson(d: DestEntry) {
  const tunnel = (d.fwdMethod & 7) === FWD_TUNNEL
    ? {
      type: TUN_NAMES[d.tunType] ?? String(d.tunType),
      port: d.tunType === 1 ? d.tunPort : null,
      csum: d.tunType === 0 ? null : (['nocsum', 'csum', 'remcsum'][d.tunFlags] ?? String(d.tunFlags)),
    }
    : null;
  return {
    af: d.af,
    address: canonicalAddr(d.addr),
    port: d.port,
    forward: methodText(d.fwdMethod),
    weight: d.weight,
    uThreshold: d.uThreshold,
    lThreshold: d.lThreshold,
    activeConns: d.activeConns,
    inactConns: d.inactConns,
    persistConns: d.persistConns,
    tunnel,
    stats: statsJson(d.stats),
    rates: ratesJson(d.stats),
  };
}

export function serviceJson(se: ServiceEntry, nosort: boolean) {
  const persistent = (se.flags & SVC_F_PERSISTENT) !== 0;
  return {
    af: se.af,
    fwmark: se.fwmark !== 0 ? se.fwmark >>> 0 : null,
    protocol: se.fwmark !== 0 ? null : protoText(se.protocol),
    address: se.fwmark !== 0 ? null : canonicalAddr(se.addr),
    port: se.fwmark !== 0 ? null : se.port,
    scheduler: se.schedName,
    schedFlags: (se.flags & SVC_F_SCHED_MASK) ? schedFlagNames(se) : [],
    persistent: persistent ? { timeout: se.timeout, netmask: netmaskJson(se) } : null,
    pe: se.pe ? se.pe : null,
    ops: (se.flags & SVC_F_ONEPACKET) !== 0,
    stats: statsJson(se.stats),
    rates: ratesJson(se.stats),
    dests: (nosort ? se.dests : sortDests(se.dests)).map(destJson),
  };
}

/** `-L --json`: the whole table. */
export function listAllJson(info: Info, services: readonly ServiceEntry[], nosort: boolean): string {
  const v = info.version;
  const list = nosort ? services : sortServices(services);
  return jsonText({
    version: `${(v >> 16) & 0xff}.${(v >> 8) & 0xff}.${v & 0xff}`,
    connTabSize: info.connTabSize,
    services: list.map((se) => serviceJson(se, nosort)),
  });
}

/** `-L -t|-u|--sctp-service|-f ... --json`: one service. */
export function listServiceJson(se: ServiceEntry, nosort: boolean): string {
  return jsonText({ services: [serviceJson(se, nosort)] });
}

function endpointJson(addr: string, port: number) {
  const p = parseAddrText(addr);
  return { address: p === null ? addr : canonicalAddr(addr), port };
}

/** `-L -c --json` */
export function connectionsJson(conns: readonly ConnEntry[]): string {
  return jsonText({
    connections: conns.map((c) => ({
      protocol: c.protoName,
      af: c.af,
      client: endpointJson(c.caddr, c.cport),
      virtual: endpointJson(c.vaddr, c.vport),
      destination: endpointJson(c.daddr, c.dport),
      state: c.state,
      expires: c.expires,
      pe: c.peName ? { name: c.peName, data: c.peData } : null,
    })),
  });
}

/** `-L --timeout --json` */
export function timeoutJson(t: Timeouts): string {
  return jsonText({ tcp: t.tcp, tcpFin: t.tcpFin, udp: t.udp });
}

/** `-L --daemon --json` */
export function daemonJson(daemons: readonly SyncDaemon[]): string {
  const ordered = ['master', 'backup'].flatMap((s) => daemons.filter((d) => d.state === s));
  return jsonText({
    daemons: ordered.map((d) => ({
      state: d.state,
      mcastInterface: d.mcastIfn,
      syncId: d.syncId,
      syncMaxlen: d.syncMaxlen || null,
      mcastGroup: d.mcastGroup || null,
      mcastPort: d.mcastPort || null,
      mcastTtl: d.mcastTtl || null,
    })),
  });
}

/** `-L --mark-rules --json` */
export function markRulesJson(rules: readonly MarkRule[]): string {
  return jsonText({
    markRules: rules.map((r) => ({
      protocol: markProtoName(r.protocol),
      af: r.af,
      address: r.addr,
      prefix: r.prefix,
      ports: { low: r.portLo, high: r.portHi },
      mark: r.mark >>> 0,
    })),
  });
}
