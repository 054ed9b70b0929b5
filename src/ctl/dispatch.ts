/**
 * The daemon's one dispatch table: for every IpvsApi operation, who may call it
 * and how its JSON arguments are checked before the call. The mapped type makes a
 * missing operation a compile error; test/ctl/dispatch.test.ts also checks it at
 * run time against the operations LocalIpvsApi and the socket client implement.
 */
import type { IpvsApi } from './api.js';
import { CtlError } from './types.js';
import { isOpName, type OpArgs, type OpName } from './protocol.js';
import * as v from './validate.js';

/**
 * 'read': anyone who can reach the socket (the table's shape, timeouts, daemons,
 * mark rules). 'admin': root, the daemon's own user, or the configured group —
 * every change, and the connection listing (it shows clients' addresses).
 */
export type Access = 'read' | 'admin';

export interface Handler<K extends OpName> {
  access: Access;
  /** Checks and copies the request's `args` into the operation's parameters; throws CtlError(EINVAL). */
  parse(args: readonly unknown[]): OpArgs<K>;
}

function arity(args: readonly unknown[], n: number): void {
  if (args.length !== n) v.malformed(`expected ${n} argument${n === 1 ? '' : 's'}, got ${args.length}`);
}

const none = (args: readonly unknown[]): [] => {
  arity(args, 0);
  return [];
};

export const HANDLERS: { readonly [K in OpName]: Handler<K> } = {
  getInfo: { access: 'read', parse: none },
  addService: { access: 'admin', parse: (a) => (arity(a, 1), [v.serviceSpec(a[0])]) },
  editService: { access: 'admin', parse: (a) => (arity(a, 1), [v.serviceSpec(a[0])]) },
  delService: { access: 'admin', parse: (a) => (arity(a, 1), [v.serviceKey(a[0])]) },
  flush: { access: 'admin', parse: none },
  addDest: { access: 'admin', parse: (a) => (arity(a, 2), [v.serviceKey(a[0]), v.destSpec(a[1])]) },
  editDest: { access: 'admin', parse: (a) => (arity(a, 2), [v.serviceKey(a[0]), v.destSpec(a[1])]) },
  delDest: { access: 'admin', parse: (a) => (arity(a, 2), [v.serviceKey(a[0]), v.destSpec(a[1])]) },
  zero: { access: 'admin', parse: (a) => (arity(a, 1), [a[0] === null ? null : v.serviceKey(a[0])]) },
  getServices: { access: 'read', parse: none },
  getService: { access: 'read', parse: (a) => (arity(a, 1), [v.serviceKey(a[0])]) },
  getConnections: { access: 'admin', parse: none },
  setTimeouts: { access: 'admin', parse: (a) => (arity(a, 1), [v.timeouts(a[0])]) },
  getTimeouts: { access: 'read', parse: none },
  startDaemon: { access: 'admin', parse: (a) => (arity(a, 1), [v.syncDaemon(a[0])]) },
  stopDaemon: { access: 'admin', parse: (a) => (arity(a, 2), [v.syncState(a[0]), v.integer(a[1], 'syncId')]) },
  getDaemons: { access: 'read', parse: none },
  addMarkRule: { access: 'admin', parse: (a) => (arity(a, 1), [v.markRule(a[0])]) },
  delMarkRule: { access: 'admin', parse: (a) => (arity(a, 1), [v.markRule(a[0])]) },
  getMarkRules: { access: 'read', parse: none },
};

/**
 * Runs one request against `api`: unknown operation ENOSYS, not allowed EPERM,
 * malformed arguments EINVAL, otherwise whatever the operation resolves or rejects.
 */
export async function dispatch(api: IpvsApi, op: unknown, args: unknown, privileged: boolean): Promise<unknown> {
  if (!isOpName(op)) throw new CtlError('ENOSYS', `unknown operation ${JSON.stringify(op)?.slice(0, 64)}`);
  const h = HANDLERS[op] as Handler<OpName>;
  if (h.access === 'admin' && !privileged) throw new CtlError('EPERM', 'permission denied');
  if (args === undefined) args = [];
  if (!Array.isArray(args)) v.malformed('args must be an array');
  const parsed = h.parse(args);
  return (api[op] as (...a: unknown[]) => Promise<unknown>).apply(api, parsed);
}
