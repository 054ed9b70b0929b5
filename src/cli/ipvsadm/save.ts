/**
 * `ipvsadm -S [-n]`: the table as ipvsadm command lines (print_service_entry
 * with FMT_RULE, print_tunnel_rule). No banner, no title; services and dests in
 * listing order; upper/lower thresholds are not saved (1.31 never saved them).
 * ulvs's fwmark classifier rules come first as `--add-mark-rule` lines, and only
 * when there are any, so a classic table saves byte-identically.
 */
import type { DestEntry, ServiceEntry } from '../../ctl/types.js';
import type { MarkRule } from '../../ctl/api.js';
import {
  FWD_DROUTE, FWD_LOCALNODE, FWD_MASQ, FWD_TUNNEL, PROTO_SCTP, PROTO_TCP, PROTO_UDP,
  SVC_F_ONEPACKET, SVC_F_PERSISTENT, SVC_F_SCHED_MASK,
} from '../../svc/types.js';
import { addrPortText, type NameLookup } from './names.js';
import { sortDests, sortServices } from './sort.js';
import { maskText, schedFlagsText } from './format.js';
import { TUN_NAMES } from './options.js';
import { markRuleWords } from './marks.js';

const TUN_FLAG_OPTS = ['--tun-nocsum', '--tun-csum', '--tun-remcsum'];

/** option_from_protocol() */
function serviceOption(proto: number): string {
  if (proto === PROTO_TCP) return '-t';
  if (proto === PROTO_UDP) return '-u';
  if (proto === PROTO_SCTP) return '--sctp-service';
  return '--xxx-service';
}

/** fwd_switch(): "Local" is saved as -g. */
function fwdSwitch(method: number): string {
  switch (method & 7) {
    case FWD_MASQ: return '-m';
    case FWD_TUNNEL: return '-i';
    case FWD_LOCALNODE:
    case FWD_DROUTE: return '-g';
    default: return '(null)';
  }
}

/** The `-t addr:port` / `-f mark [-6]` part shared by the -A line and its -a lines. */
export function ruleServiceText(se: ServiceEntry, names: NameLookup | null): string {
  if (se.fwmark !== 0) {
    // 1.31 prints the mark with %d (negative from 2^31).
    const m = se.fwmark | 0;
    return se.af === 6 ? `-f ${m} -6` : `-f ${m}`;
  }
  return `${serviceOption(se.protocol)} ${addrPortText(se.af, se.addr, se.port, se.protocol, names)}`;
}

function destRule(svcName: string, dname: string, d: DestEntry): string {
  const base = `-a ${svcName} -r ${dname} ${fwdSwitch(d.fwdMethod)} -w ${d.weight | 0}`;
  if ((d.fwdMethod & 7) !== FWD_TUNNEL) return base + '\n';
  const flag = TUN_FLAG_OPTS[d.tunFlags] ?? '(null)';
  switch (d.tunType) {
    case 2: return `${base} --tun-type ${TUN_NAMES[2]} ${flag}\n`;
    case 1: return `${base} --tun-type ${TUN_NAMES[1]} --tun-port ${d.tunPort} ${flag}\n`;
    case 0: return `${base} --tun-type ${TUN_NAMES[0]}\n`;
    default: return base + '\n';
  }
}

/** The -A line and the -a lines of one service. */
export function serviceRulesText(se: ServiceEntry, names: NameLookup | null): string {
  const svcName = ruleServiceText(se, names);
  let out = `-A ${svcName} -s ${se.schedName}`;
  if (se.flags & SVC_F_PERSISTENT) {
    out += ` -p ${se.timeout >>> 0}`;
    const m = maskText(se);
    if (m !== null) out += ` -M ${m}`;
  }
  if (se.pe) out += ` --pe ${se.pe}`;
  if (se.flags & SVC_F_ONEPACKET) out += ' -o';
  if (se.flags & SVC_F_SCHED_MASK) out += ` -b ${schedFlagsText(se)}`;
  out += '\n';
  for (const d of sortDests(se.dests)) {
    out += destRule(svcName, addrPortText(d.af, d.addr, d.port, se.protocol, names), d);
  }
  return out;
}

/** `--add-mark-rule PROTO ADDR/PREFIX PORTS MARK` lines, in rule order. */
export function markRulesSaveText(rules: readonly MarkRule[]): string {
  return rules.map((r) => `--add-mark-rule ${markRuleWords(r).join(' ')}\n`).join('');
}

/** The whole -S output. `names` null for -S -n. */
export function saveText(services: readonly ServiceEntry[], rules: readonly MarkRule[], names: NameLookup | null): string {
  return markRulesSaveText(rules) + sortServices(services).map((se) => serviceRulesText(se, names)).join('');
}
