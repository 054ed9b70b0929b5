/**
 * ipvsadm 1.31's listings, byte for byte: the banner, the two title lines,
 * service and destination lines for the default, --stats, --rate,
 * --thresholds, --persistent-conn and --tun-info formats (--exact numbers),
 * the -c connection table, --timeout and --daemon. Pure functions over the
 * control records; names come from a NameLookup (null = -n).
 * The JSON forms (--json) live in json.ts and are re-exported here.
 */
import type { ConnEntry, DestEntry, Info, ServiceEntry, SyncDaemon, Timeouts } from '../../ctl/types.js';
import type { MarkRule } from '../../ctl/api.js';
import {
  FWD_DROUTE, FWD_LOCALNODE, FWD_MASQ, FWD_TUNNEL, PROTO_SCTP, PROTO_TCP, PROTO_UDP,
  SVC_F_ONEPACKET, SVC_F_PERSISTENT, SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3, SVC_F_SCHED_MASK,
} from '../../svc/types.js';
import type { ListFormat } from './parse.js';
import { addrPortText, type NameLookup } from './names.js';
import { sortDests, sortServices } from './sort.js';
import { inetAton, ntop4, parseAddrText } from './libc.js';
import { TUN_NAMES } from './options.js';
import { markPortsText, markProtoName } from './marks.js';

export * from './json.js';

const padEnd = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const padStart = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

/** C's %llu of a counter (records carry doubles; counters are non-negative integers). */
function u64(n: number): bigint {
  if (!Number.isFinite(n) || n <= 0) return 0n;
  return BigInt(Math.trunc(n));
}

/** print_largenum(): width 9, or K/M/G/T scaled to width 8 plus the unit; --exact widens instead. */
export function printLargenum(n: number, exact: boolean): string {
  const v = u64(n);
  const s = v.toString();
  if (exact) return padStart(s, s.length <= 8 ? 9 : s.length + 1);
  if (v < 100000000n) return padStart(s, 9);
  if (v < 1000000000n) return padStart((v / 1000n).toString(), 8) + 'K';
  if (v < 100000000000n) return padStart((v / 1000000n).toString(), 8) + 'M';
  if (v < 100000000000000n) return padStart((v / 1000000000n).toString(), 8) + 'G';
  return padStart((v / 1000000000000n).toString(), 8) + 'T';
}

export function bannerText(info: Info): string {
  const v = info.version;
  return `IP Virtual Server version ${(v >> 16) & 0xff}.${(v >> 8) & 0xff}.${v & 0xff} (size=${info.connTabSize})\n`;
}

/** print_title(): the first matching of stats, rate, thresholds, persistent-conn, tun-info, default. */
export function titleText(f: ListFormat): string {
  const head = padEnd('Prot LocalAddress:Port', 33);
  if (f.stats) {
    return `${head} ${['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'].map((x) => padStart(x, 8)).join(' ')}\n` +
      '  -> RemoteAddress:Port\n';
  }
  if (f.rate) {
    return `${head} ${['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'].map((x) => padStart(x, 8)).join(' ')}\n` +
      '  -> RemoteAddress:Port\n';
  }
  if (f.thresholds) {
    return `${head} ${['Uthreshold', 'Lthreshold', 'ActiveConn', 'InActConn'].map((x) => padEnd(x, 10)).join(' ')}\n` +
      '  -> RemoteAddress:Port\n';
  }
  if (f.persistentConn) {
    return `${head} ${padEnd('Weight', 9)} ${padEnd('PersistConn', 11)} ${padEnd('ActiveConn', 10)} ${padEnd('InActConn', 10)}\n` +
      '  -> RemoteAddress:Port\n';
  }
  if (f.tunInfo) {
    return 'Prot LocalAddress:Port Scheduler Flags\n' +
      '  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n';
  }
  return 'Prot LocalAddress:Port Scheduler Flags\n' +
    '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
}

export function protocolName(proto: number): string {
  if (proto === PROTO_TCP) return 'TCP';
  if (proto === PROTO_UDP) return 'UDP';
  if (proto === PROTO_SCTP) return 'SCTP';
  return '?';
}

/** fwd_name() */
export function fwdName(method: number): string {
  switch (method & 7) {
    case FWD_MASQ: return 'Masq';
    case FWD_LOCALNODE: return 'Local';
    case FWD_TUNNEL: return 'Tunnel';
    case FWD_DROUTE: return 'Route';
    default: return '(null)';
  }
}

const TUN_FLAG_TEXT = ['-c', '+c', 'r+c'];

/** fwd_tun_info(): null for non-tunnel dests (printed as n/a). */
export function tunInfoText(d: DestEntry): string | null {
  if ((d.fwdMethod & 7) !== FWD_TUNNEL) return null;
  const flags = TUN_FLAG_TEXT[d.tunFlags] ?? '';
  let s: string;
  switch (d.tunType) {
    case 0: s = TUN_NAMES[0]; break;
    case 1: s = `${TUN_NAMES[1]}:${d.tunPort}:${flags}`; break;
    case 2: s = `${TUN_NAMES[2]}:${flags}`; break;
    default: return null;
  }
  return s.slice(0, 15);
}

/** print_sched_flags(): names depend on the scheduler. */
export function schedFlagsText(se: { schedName: string; flags: number }): string {
  const out: string[] = [];
  if (se.schedName === 'sh') {
    if (se.flags & SVC_F_SCHED1) out.push('sh-fallback');
    if (se.flags & SVC_F_SCHED2) out.push('sh-port');
  } else if (se.schedName === 'mh') {
    if (se.flags & SVC_F_SCHED1) out.push('mh-fallback');
    if (se.flags & SVC_F_SCHED2) out.push('mh-port');
  } else {
    if (se.flags & SVC_F_SCHED1) out.push('flag-1');
    if (se.flags & SVC_F_SCHED2) out.push('flag-2');
    if (se.flags & SVC_F_SCHED3) out.push('flag-3');
  }
  return out.join(',');
}

/** The persistence mask as ipvsadm shows it, or null when it is the default (/32, /128). */
export function maskText(se: { af: 4 | 6; netmask: string }): string | null {
  if (se.af === 6) {
    const n = Number.parseInt(se.netmask, 10);
    return n === 128 || Number.isNaN(n) ? null : String(n);
  }
  const m = inetAton(se.netmask);
  if (m === null || m === 0xffffffff) return null;
  return ntop4(m);
}

/** The service identity: `FWM  <mark>[ IPv6]` or `%-4s %s` (IPv4 cut to 33 characters). */
export function serviceNameText(se: ServiceEntry, names: NameLookup | null): string {
  if (se.fwmark !== 0) {
    // 1.31 prints the mark with %d: marks of 2^31 and above come out negative.
    const m = se.fwmark | 0;
    return se.af === 6 ? `FWM  ${m} IPv6` : `FWM  ${m}`;
  }
  const v = addrPortText(se.af, se.addr, se.port, se.protocol, names);
  const s = `${padEnd(protocolName(se.protocol), 4)} ${v}`;
  return se.af !== 6 && s.length > 33 ? s.slice(0, 33) : s;
}

function destNameText(se: ServiceEntry, d: DestEntry, names: NameLookup | null): string {
  const s = addrPortText(d.af, d.addr, d.port, se.protocol, names);
  return d.af !== 6 && s.length > 28 ? s.slice(0, 28) : s;
}

/** print_service_entry() for the listing formats: the service line and its destination lines. */
export function serviceEntryText(se: ServiceEntry, f: ListFormat, names: NameLookup | null): string {
  const svcName = serviceNameText(se, names);
  let out: string;
  if (f.stats) {
    const s = se.stats;
    out = padEnd(svcName, 33) + [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes].map((n) => printLargenum(n, f.exact)).join('');
  } else if (f.rate) {
    const s = se.stats;
    out = padEnd(svcName, 33) + [s.cps, s.inpps, s.outpps, s.inbps, s.outbps].map((n) => printLargenum(n, f.exact)).join('');
  } else {
    out = `${svcName} ${se.schedName}`;
    if (se.flags & SVC_F_SCHED_MASK) out += ` (${schedFlagsText(se)})`;
    if (se.flags & SVC_F_PERSISTENT) {
      out += ` persistent ${se.timeout >>> 0}`;
      const m = maskText(se);
      if (m !== null) out += ` mask ${m}`;
      if (se.pe) out += ` pe ${se.pe}`;
    }
    if (se.flags & SVC_F_ONEPACKET) out += ' ops';
  }
  out += '\n';

  const dests = f.nosort ? se.dests : sortDests(se.dests);
  for (const d of dests) {
    const dn = destNameText(se, d, names);
    const s = d.stats;
    if (f.stats) {
      out += `  -> ${padEnd(dn, 28)}` + [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes].map((n) => printLargenum(n, f.exact)).join('') + '\n';
    } else if (f.rate) {
      out += `  -> ${padEnd(dn, 28)} ${padStart(u64(s.cps).toString(), 8)} ${padStart(u64(s.inpps).toString(), 8)} ${padStart(u64(s.outpps).toString(), 8)}` +
        printLargenum(s.inbps, f.exact) + printLargenum(s.outbps, f.exact) + '\n';
    } else if (f.thresholds) {
      out += `  -> ${padEnd(dn, 28)} ${[d.uThreshold, d.lThreshold, d.activeConns, d.inactConns].map((n) => padEnd(String(n >>> 0), 10)).join(' ')}\n`;
    } else if (f.persistentConn) {
      out += `  -> ${padEnd(dn, 28)} ${padEnd(String(d.weight >>> 0), 9)} ${padEnd(String(d.persistConns >>> 0), 11)} ` +
        `${padEnd(String(d.activeConns >>> 0), 10)} ${padEnd(String(d.inactConns >>> 0), 10)}\n`;
    } else if (f.tunInfo) {
      out += `  -> ${padEnd(dn, 28)} ${padEnd(fwdName(d.fwdMethod), 7)} ${padEnd(tunInfoText(d) ?? 'n/a', 13)} ` +
        `${padEnd(String(d.weight | 0), 6)} ${padEnd(String(d.activeConns >>> 0), 10)} ${padEnd(String(d.inactConns >>> 0), 10)}\n`;
    } else {
      out += `  -> ${padEnd(dn, 28)} ${padEnd(fwdName(d.fwdMethod), 7)} ${padEnd(String(d.weight | 0), 6)} ` +
        `${padEnd(String(d.activeConns >>> 0), 10)} ${padEnd(String(d.inactConns >>> 0), 10)}\n`;
    }
  }
  return out;
}

/** list_all(): banner, title, every service (sorted unless --nosort). */
export function listAllText(info: Info, services: readonly ServiceEntry[], f: ListFormat, names: NameLookup | null): string {
  const list = f.nosort ? services : sortServices(services);
  return bannerText(info) + titleText(f) + list.map((se) => serviceEntryText(se, f, names)).join('');
}

/** list_service(): no banner, title and the one service. */
export function listServiceText(se: ServiceEntry, f: ListFormat, names: NameLookup | null): string {
  return titleText(f) + serviceEntryText(se, f, names);
}

function connProto(name: string): number {
  if (name === 'TCP') return PROTO_TCP;
  if (name === 'UDP') return PROTO_UDP;
  if (name === 'SCTP') return PROTO_SCTP;
  return 0;
}

function firstWord(s: string): string {
  const m = /^[ \t\n\r\f\v]*([^ \t\n\r\f\v]*)/.exec(s);
  return m === null ? '' : m[1]!;
}

function connAddrText(addr: string, port: number, proto: number, fallbackAf: 4 | 6, names: NameLookup | null): string {
  const p = parseAddrText(addr);
  return addrPortText(p === null ? fallbackAf : p.af, addr, port, proto, names);
}

/** The header list_conn() prints before the entries. */
export function connHeaderText(f: ListFormat): string {
  if (f.persistentConn) {
    return 'IPVS connection entries\n' +
      `pro expire ${padEnd('state', 11)} ${padEnd('source', 18)} ${padEnd('virtual', 18)} ${padEnd('destination', 18)} ${padEnd('pe name', 16)} pe_data\n`;
  }
  return 'IPVS connection entries\n' +
    `pro expire ${padEnd('state', 11)} ${padEnd('source', 18)} ${padEnd('virtual', 18)} destination\n`;
}

/** print_conn(): one /proc/net/ip_vs_conn entry. */
export function connLineText(c: ConnEntry, f: ListFormat, names: NameLookup | null): string {
  const proto = connProto(c.protoName);
  const cname = connAddrText(c.caddr, c.cport, proto, c.af, names);
  const vname = connAddrText(c.vaddr, c.vport, proto, c.af, names);
  const dname = connAddrText(c.daddr, c.dport, proto, c.af, names);
  const exp = Math.max(0, Math.trunc(c.expires));
  const expire = `${String(Math.floor(exp / 60)).padStart(2, '0')}:${String(exp % 60).padStart(2, '0')}`;
  // ipvsadm sscanf()s the proc line: pe columns exist only when both words are there.
  const peName = firstWord(c.peName);
  const peData = firstWord(c.peData);
  const head = `${padEnd(c.protoName, 3)} ${padEnd(expire, 6)} ${padEnd(c.state, 11)} ${padEnd(cname, 18)} ${padEnd(vname, 18)} `;
  if (f.persistentConn && peName !== '' && peData !== '') {
    return `${head}${padEnd(dname, 16)} ${padEnd(peName, 18)} ${peData}\n`;
  }
  return `${head}${dname}\n`;
}

/** list_conn(): header and every entry in table order. */
export function connectionsText(conns: readonly ConnEntry[], f: ListFormat, names: NameLookup | null): string {
  return connHeaderText(f) + conns.map((c) => connLineText(c, f, names)).join('');
}

/** list_timeout() */
export function timeoutText(t: Timeouts): string {
  return `Timeout (tcp tcpfin udp): ${t.tcp | 0} ${t.tcpFin | 0} ${t.udp | 0}\n`;
}

/** list_daemon(): master then backup; optional fields only when the kernel reports them. */
export function daemonText(daemons: readonly SyncDaemon[]): string {
  let out = '';
  for (const state of ['master', 'backup'] as const) {
    const d = daemons.find((x) => x.state === state);
    if (d === undefined) continue;
    out += `${state} sync daemon (mcast=${d.mcastIfn}, syncid=${d.syncId | 0}`;
    if (d.syncMaxlen) out += `, maxlen=${d.syncMaxlen >>> 0}`;
    if (d.mcastGroup) out += `, group=${d.mcastGroup}`;
    if (d.mcastPort) out += `, port=${d.mcastPort >>> 0}`;
    if (d.mcastTtl) out += `, ttl=${d.mcastTtl >>> 0}`;
    out += ')\n';
  }
  return out;
}

/** ulvs extension: `-L --mark-rules`, one rule per line in table (match) order. */
export function markRulesText(rules: readonly MarkRule[]): string {
  let out = `${padEnd('Prot', 5)} ${padEnd('Destination', 43)} ${padEnd('Ports', 11)} Mark\n`;
  for (const r of rules) {
    out += `${padEnd(markProtoName(r.protocol), 5)} ${padEnd(`${r.addr}/${r.prefix}`, 43)} ${padEnd(markPortsText(r), 11)} ${r.mark >>> 0}\n`;
  }
  return out;
}
