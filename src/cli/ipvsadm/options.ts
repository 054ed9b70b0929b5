/**
 * ipvsadm 1.31's option tables: the popt option list, the command names and
 * option "column" names used in messages, and the command-versus-option and
 * tunnel-type-versus-option legality tables. Column order matters: checks walk
 * the columns in this order and report the first violation.
 *
 * ulvs extensions add the columns `json` and `mark-rules` after the classic 34
 * and the commands `add-mark-rule`/`del-mark-rule`; every classic row/column
 * keeps its meaning.
 */
import type { PoptOption } from './popt.js';

export const OPT = {
  NUMERIC: 0,
  CONNECTION: 1,
  SERVICE: 2,
  SCHEDULER: 3,
  PERSISTENT: 4,
  NETMASK: 5,
  SERVER: 6,
  FORWARD: 7,
  WEIGHT: 8,
  UTHRESHOLD: 9,
  LTHRESHOLD: 10,
  MCAST: 11,
  TIMEOUT: 12,
  DAEMON: 13,
  STATS: 14,
  RATE: 15,
  THRESHOLDS: 16,
  PERSISTENTCONN: 17,
  NOSORT: 18,
  SYNCID: 19,
  EXACT: 20,
  ONEPACKET: 21,
  PE: 22,
  SCHED_FLAGS: 23,
  MCAST_GROUP: 24,
  MCAST_PORT: 25,
  MCAST_TTL: 26,
  SYNC_MAXLEN: 27,
  TUN_INFO: 28,
  TUN_TYPE: 29,
  TUN_PORT: 30,
  TUN_NOCSUM: 31,
  TUN_CSUM: 32,
  TUN_REMCSUM: 33,
  // ulvs extensions
  JSON: 34,
  MARK_RULES: 35,
} as const;

export const OPT_NAMES: readonly string[] = [
  'numeric', 'connection', 'service-address', 'scheduler', 'persistent', 'netmask',
  'real-server', 'forwarding-method', 'weight', 'u-threshold', 'l-threshold',
  'mcast-interface', 'timeout', 'daemon', 'stats', 'rate', 'thresholds',
  'persistent-conn', 'nosort', 'syncid', 'exact', 'ops', 'pe', 'sched-flags',
  'mcast-group', 'mcast-port', 'mcast-ttl', 'sync-maxlen', 'tun-info', 'tun-type',
  'tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum',
  'json', 'mark-rules',
];

export type CommandName =
  | 'add-service' | 'edit-service' | 'delete-service' | 'flush' | 'list'
  | 'add-server' | 'delete-server' | 'edit-server' | 'set' | 'start-daemon'
  | 'stop-daemon' | 'restore' | 'save' | 'zero'
  | 'add-mark-rule' | 'del-mark-rule';

/**
 * '+' required, 'x' illegal, '1' at most one of the '1' columns, ' ' optional.
 * Columns: the 34 of ipvsadm 1.31 (OPT order) then json, mark-rules.
 */
const ROWS: Record<CommandName, string> = {
  // OPT index:       0         1         2         3
  //                 0123456789012345678901234567890123     45
  'add-service':    'xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx' + 'xx',
  'edit-service':   'xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx' + 'xx',
  'delete-service': 'xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' + 'xx',
  'flush':          'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' + 'xx',
  'list':           ' 11xxxxxxxxx11       xxxxxxx xxxxx' + ' 1',
  'add-server':     'xx+xxx+    xxxxxxxxxxxxxxxxxx     ' + 'xx',
  'delete-server':  'xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx' + 'xx',
  'edit-server':    'xx+xxx+    xxxxxxxxxxxxxxxxxx     ' + 'xx',
  'set':            'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' + 'xx',
  'start-daemon':   'xxxxxxxxxxx xxxxxxx xxxx    xxxxxx' + 'xx',
  'stop-daemon':    'xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx' + 'xx',
  'restore':        'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' + 'xx',
  'save':           ' xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' + 'xx',
  'zero':           'xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' + 'xx',
  'add-mark-rule':  'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' + 'xx',
  'del-mark-rule':  'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' + 'xx',
};

export function legality(cmd: CommandName, column: number): string {
  return ROWS[cmd][column]!;
}

export const NUMBER_OF_OPT = OPT_NAMES.length;

/** Tunnel types (IP_VS_CONN_F_TUNNEL_TYPE_*) and their option table over tun-port, tun-nocsum, tun-csum, tun-remcsum. */
export const TUN_NAMES = ['ipip', 'gue', 'gre'] as const;
export const TUN_OPT_COLUMNS = [OPT.TUN_PORT, OPT.TUN_NOCSUM, OPT.TUN_CSUM, OPT.TUN_REMCSUM] as const;
export const TUN_ROWS: readonly string[] = [
  'xxxx', // ipip
  '+111', // gue
  'x11x', // gre
];

/** The popt table in ipvsadm's order (findOption takes the first match: "--list" is 'L'). */
export const POPT_TABLE: readonly PoptOption[] = [
  { long: 'add-service', short: 'A', arg: 'none', val: 'A' },
  { long: 'edit-service', short: 'E', arg: 'none', val: 'E' },
  { long: 'delete-service', short: 'D', arg: 'none', val: 'D' },
  { long: 'clear', short: 'C', arg: 'none', val: 'C' },
  { long: 'list', short: 'L', arg: 'none', val: 'L' },
  { long: 'list', short: 'l', arg: 'none', val: 'l' },
  { long: 'zero', short: 'Z', arg: 'none', val: 'Z' },
  { long: 'add-server', short: 'a', arg: 'none', val: 'a' },
  { long: 'edit-server', short: 'e', arg: 'none', val: 'e' },
  { long: 'delete-server', short: 'd', arg: 'none', val: 'd' },
  { long: 'set', short: null, arg: 'none', val: 'set' },
  { long: 'help', short: 'h', arg: 'none', val: 'h' },
  { long: 'version', short: 'v', arg: 'none', val: 'v' },
  { long: 'restore', short: 'R', arg: 'none', val: 'R' },
  { long: 'save', short: 'S', arg: 'none', val: 'S' },
  { long: 'start-daemon', short: null, arg: 'string', val: 'start-daemon' },
  { long: 'stop-daemon', short: null, arg: 'string', val: 'stop-daemon' },
  { long: 'tcp-service', short: 't', arg: 'string', val: 't' },
  { long: 'udp-service', short: 'u', arg: 'string', val: 'u' },
  { long: 'sctp-service', short: null, arg: 'string', val: 'sctp-service' },
  { long: 'fwmark-service', short: 'f', arg: 'string', val: 'f' },
  { long: 'scheduler', short: 's', arg: 'string', val: 's' },
  { long: 'persistent', short: 'p', arg: 'optional', val: 'p' },
  { long: 'netmask', short: 'M', arg: 'string', val: 'M' },
  { long: 'real-server', short: 'r', arg: 'string', val: 'r' },
  { long: 'masquerading', short: 'm', arg: 'none', val: 'm' },
  { long: 'ipip', short: 'i', arg: 'none', val: 'i' },
  { long: 'gatewaying', short: 'g', arg: 'none', val: 'g' },
  { long: 'weight', short: 'w', arg: 'string', val: 'w' },
  { long: 'u-threshold', short: 'x', arg: 'string', val: 'x' },
  { long: 'l-threshold', short: 'y', arg: 'string', val: 'y' },
  { long: 'numeric', short: 'n', arg: 'none', val: 'n' },
  { long: 'connection', short: 'c', arg: 'none', val: 'c' },
  { long: 'mcast-interface', short: null, arg: 'string', val: 'mcast-interface' },
  { long: 'syncid', short: null, arg: 'string', val: 'syncid' },
  { long: 'timeout', short: null, arg: 'none', val: 'timeout' },
  { long: 'daemon', short: null, arg: 'none', val: 'daemon' },
  { long: 'stats', short: null, arg: 'none', val: 'stats' },
  { long: 'rate', short: null, arg: 'none', val: 'rate' },
  { long: 'thresholds', short: null, arg: 'none', val: 'thresholds' },
  { long: 'persistent-conn', short: null, arg: 'none', val: 'persistent-conn' },
  { long: 'nosort', short: null, arg: 'none', val: 'nosort' },
  { long: 'sort', short: null, arg: 'none', val: 'sort' },
  { long: 'exact', short: 'X', arg: 'none', val: 'X' },
  { long: 'ipv6', short: '6', arg: 'none', val: '6' },
  { long: 'ops', short: 'o', arg: 'none', val: 'o' },
  { long: 'pe', short: null, arg: 'string', val: 'pe' },
  { long: 'sched-flags', short: 'b', arg: 'string', val: 'b' },
  { long: 'mcast-group', short: null, arg: 'string', val: 'mcast-group' },
  { long: 'mcast-port', short: null, arg: 'string', val: 'mcast-port' },
  { long: 'mcast-ttl', short: null, arg: 'string', val: 'mcast-ttl' },
  { long: 'sync-maxlen', short: null, arg: 'string', val: 'sync-maxlen' },
  { long: 'tun-info', short: null, arg: 'none', val: 'tun-info' },
  { long: 'tun-type', short: null, arg: 'string', val: 'tun-type' },
  { long: 'tun-port', short: null, arg: 'string', val: 'tun-port' },
  { long: 'tun-nocsum', short: null, arg: 'none', val: 'tun-nocsum' },
  { long: 'tun-csum', short: null, arg: 'none', val: 'tun-csum' },
  { long: 'tun-remcsum', short: null, arg: 'none', val: 'tun-remcsum' },
  // ulvs extensions (long names only, so no classic short option changes meaning).
  { long: 'json', short: null, arg: 'none', val: 'json' },
  { long: 'mark-rules', short: null, arg: 'none', val: 'mark-rules' },
  { long: 'add-mark-rule', short: null, arg: 'none', val: 'add-mark-rule' },
  { long: 'del-mark-rule', short: null, arg: 'none', val: 'del-mark-rule' },
];
